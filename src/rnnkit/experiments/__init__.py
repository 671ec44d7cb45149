"""Experiments that show what the classic texts claim, each one function with a table and a PNG.

    vanishing   ||dL_T/dh_t|| against the distance T - t for tanh-RNN, LSTM and GRU, at
                initialisation and after training; the adding problem at T = 50, 100, 200
                (Hochreiter & Schmidhuber 1997; Bengio, Simard & Frasconi 1994; Pascanu et al. 2013)
    negation    bag-of-words logistic regression against a recurrent classifier on sentences
                with negation and contrast ("not bad at all", "good but not great")
    cells       RNN, LSTM, GRU, LN-LSTM, LN-GRU, minGRU and minLSTM on one budget: a char-level
                language model (parameters, seconds per 100 steps, validation loss) and the
                adding problem at T = 100 (best validation MSE)

Every experiment is `run(quick=False, out_dir=".", seed=0, progress=True) -> dict` with at least
    "rows"      the table, a list of dicts (one per row, the same keys in each)
    "columns"   the keys of a row, in print order
    "png"       the path of the picture it wrote
It prints its table(s); `progress` shows the training progress bars. `quick=True` runs a much
smaller version (seconds) that shows the same direction, for tests. An experiment may take more
keyword options (cells: text=PATH); run() passes them on and rejects those it does not take.
"""
import importlib
import inspect
import os

from .._checks import check_choice, check_int
from ..errors import InputError

# experiment name -> module whose run() performs it (imported on first use)
REGISTRY = {
    "vanishing": "rnnkit.experiments.vanishing",
    "negation": "rnnkit.experiments.negation",
    "cells": "rnnkit.experiments.cells",
}


def names():
    """The registered experiment names, sorted."""
    return sorted(REGISTRY)


def get(name):
    """The run() function of experiment `name`."""
    check_choice("name", name, tuple(names()))
    return importlib.import_module(REGISTRY[name]).run


def run(name, quick=False, out_dir=".", seed=0, progress=True, **options):
    """Run experiment `name` (with its own keyword options) and return its results dict."""
    fn = get(name)
    takes = set(inspect.signature(fn).parameters) - {"quick", "out_dir", "seed", "progress"}
    for key in options:
        if key not in takes:
            raise InputError(f"{key}: not an option of experiment {name!r} (its options: "
                             f"{', '.join(sorted(takes)) or 'none'}), got {options[key]!r}")
    return fn(quick=quick, out_dir=out_dir, seed=seed, progress=progress, **options)


# -- shared by the experiments --------------------------------------------------------------------
def prepare(out_dir, seed):
    """Check the common arguments and create out_dir; return (out_dir, seed)."""
    seed = check_int("seed", seed, low=0)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise InputError(f"out_dir: expected a folder path, got {type(out_dir).__name__}")
    os.makedirs(out_dir, exist_ok=True)
    return os.fspath(out_dir), seed


def _cell(v):
    """A table cell as text: floats with 4 significant digits, the rest as str()."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(rows, columns, title=""):
    """rows (dicts) as a plain-text table with a header line, columns left-aligned."""
    cells = [[str(c) for c in columns]] + [[_cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(columns))]
    lines = ["  ".join(s.ljust(w) for s, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([title] if title else []) + lines)


def print_table(rows, columns, title=""):
    """Print format_table(rows, columns, title) followed by a blank line."""
    print(format_table(rows, columns, title) + "\n", flush=True)
