"""cells: RNN, LSTM, GRU, their layer-norm forms, minGRU and minLSTM on two tasks, one budget each.

Cells (rnnkit.layers; the last four from rnnkit.layers.variants and rnnkit.layers.minimal):
    rnn, lstm, gru       tanh-RNN, LSTM (forget_bias=1.0, rnnkit's default), GRU (reset_after)
    lnlstm, lngru        the same LSTM / GRU with layer_norm=True (Ba et al. 2016)
    mingru, minlstm      Feng et al. 2024: gates from x_t only, trained by a log-space parallel scan

(a) A character-level language model (ManyToMany: embedding -> one recurrent layer -> softmax over
the characters) on a text: by default Python standard-library source (rnnkit.data.stdlib_corpus: on
every machine, nothing downloaded), else the UTF-8 file `text`; first 90% for training, last 10%
for validation; truncated BPTT over a stream of B lanes, Adam, gradient-norm clipping. Every cell
gets the same hidden size, steps, batch, window and learning rate; the LM has a loss every step and
no early stop, so equal budgets mean equal work and the loss curves compare directly.
(b) The adding problem at one length T (rnnkit.data.make_adding; training as in the `vanishing`
experiment, but with no early stop, so every cell gets the same steps): the best validation MSE.
Predicting the mean gives 2/12 ≈ 0.167.

Parameters of one recurrent layer, G gates (RNN 1, GRU 3, LSTM 4), input D, hidden H:
    W_x (D, G H) + W_h (H, G H) + b_x (G H) + b_h (G H) = G H (D + H + 2)
    layer norm adds gains g_x, g_h (G H each) and, for the LSTM, g_c, b_c (H each)
    minGRU / minLSTM: W_x (D, G H) + b_x (G H) = G H (D + 1), G = 2 / 3 (no W_h)
so a GRU has exactly 3/4 of an LSTM's recurrent parameters (the embedding and the output layer are
the same for every cell).

Table: parameters (recurrent layer, whole LM), seconds per 100 LM training steps, the LM's training
loss of the last logging interval and validation loss (nats per character), the adding MSE.
PNG: the LM training loss curves.
"""
import dataclasses
import os
import time

import numpy as np

from .. import optim
from ..data import StreamBatches, Vocab, read_text, stdlib_corpus
from ..models.many_to_many import ManyToMany
from ..models.many_to_one import ManyToOne
from ..plots import line_plot
from ..train import evaluate, fit
from . import prepare, print_table, vanishing

# name -> (cell, options) of the models' constructors
CELLS = {"rnn": ("rnn", {}), "lstm": ("lstm", {}), "gru": ("gru", {}),
         "lnlstm": ("lstm", {"layer_norm": True}), "lngru": ("gru", {"layer_norm": True}),
         "mingru": ("mingru", {}), "minlstm": ("minlstm", {})}
ADDING_FULL = vanishing.Settings(lengths=(100,), hidden=32, batch=64, lr=0.01, clip=1.0, steps=800,
                                 eval_every=50, target=0.0, n_train=10_000, n_val=1000)
ADDING_QUICK = vanishing.Settings(lengths=(30,), hidden=8, batch=16, lr=0.01, clip=1.0, steps=20,
                                  eval_every=10, target=0.0, n_train=512, n_val=64)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one run."""
    n_chars: int = 300_000        # characters of the built-in corpus
    text_chars: int = 0           # characters of a text file to read (0: all of it)
    embedding_dim: int = 32       # character vectors
    hidden: int = 128             # recurrent units of every cell
    batch: int = 32               # lanes of the stream
    seq_len: int = 64             # truncated-BPTT window
    lr: float = 0.003             # Adam's learning rate
    clip: float = 5.0             # global gradient-norm clip
    steps: int = 800              # LM training steps of every cell
    log_every: int = 40           # steps per point of the loss curve
    adding: vanishing.Settings = ADDING_FULL   # the adding problem (one T: adding.lengths[0])


FULL = Settings()
QUICK = Settings(n_chars=12_000, text_chars=12_000, hidden=16, batch=8, seq_len=16, steps=20, log_every=5,
                 adding=ADDING_QUICK)


def corpus_ids(s, seed, text=None):
    """The vocabulary and the id streams (train, validation): 90% / 10% of the corpus or text file."""
    if text is None:
        chars = stdlib_corpus(max_chars=s.n_chars, seed=seed)
    else:
        chars = read_text(text)
        chars = chars[:s.text_chars] if s.text_chars else chars
    vocab = Vocab(chars, level="char", pad=None, unk=None, bos=None, eos=None)
    ids = vocab.encode(chars)                                          # (N,)
    split = int(0.9 * len(ids))
    return vocab, ids[:split], ids[split:]


def train_lm(name, V, train_ids, val_ids, s, seed, progress):
    """Train one cell's language model; return its table row and loss curve (steps, losses)."""
    cell, options = CELLS[name]
    model = ManyToMany(vocab_size=V, embedding_dim=s.embedding_dim, cell=cell, hidden_size=s.hidden,
                       seed=seed, **options)
    data = StreamBatches(train_ids, s.batch, s.seq_len)
    x, y = data.window(0)
    model.objective({"x": x, "y": y})          # warm-up: compile the kernels outside the timing
    model.zero_grad()
    t0 = time.perf_counter()
    res = fit(model, optim.Adam(model, lr=s.lr), data,
              steps=s.steps, tbptt=True, clip_norm=s.clip, log_every=s.log_every, seed=seed,
              progress=progress)
    seconds = time.perf_counter() - t0
    val = evaluate(model, StreamBatches(val_ids, s.batch, s.seq_len), tbptt=True)
    curve = [(r["step"], r["loss"]) for r in res.history if r.get("loss") is not None]
    row = {"cell": name, "recurrent_params": model.rnn.num_parameters(),
           "params": model.num_parameters(), "s_per_100_steps": round(100 * seconds / res.steps, 2),
           "train_loss": curve[-1][1], "val_loss": val["loss"]}
    return row, curve


def train_adding(name, a, seed, progress):
    """Best validation MSE of one cell's ManyToOne regressor on the adding problem; mean-guess MSE."""
    cell, options = CELLS[name]
    T = a.lengths[0]
    model = ManyToOne(input_size=2, num_outputs=1, cell=cell, hidden_size=a.hidden, task="regress",
                      seed=seed, **options)
    row, _ = vanishing.train_adding(model, T, a, seed, progress)
    if progress:
        print(f"adding T={T} {name}: MSE {row['mse']:.4f} after {row['steps']} steps"
              f" ({row['seconds']} s)", flush=True)
    return row["mse"], row["mean_guess"]


def _plot(out_dir, curves):
    """The LM training curves (the variants dashed) as cells.png; its path."""
    series = {c: tuple(np.array(v, dtype=np.float64) for v in zip(*curve)) for c, curve in curves.items()}
    styles = {c: "solid" if c in ("rnn", "lstm", "gru") else "dashed" for c in curves}
    return line_plot(os.path.join(out_dir, "cells.png"), series, title="Char-level LM, same budget",
                     xlabel="step", ylabel="training loss (nats/char)", styles=styles)


def run(quick=False, out_dir=".", seed=0, progress=True, text=None):
    """Every cell on the char-level LM and the adding problem; prints the table, writes the LM curves.

    text: a UTF-8 file for the LM (default: the built-in standard-library corpus).
    """
    out_dir, seed = prepare(out_dir, seed)
    s = QUICK if quick else FULL
    vocab, train_ids, val_ids = corpus_ids(s, seed, text)
    rows, curves = [], {}
    for name in CELLS:
        row, curves[name] = train_lm(name, len(vocab), train_ids, val_ids, s, seed, progress)
        row["adding_mse"], mean_guess = train_adding(name, s.adding, seed, progress)
        rows.append(row)
    n = {r["cell"]: r["recurrent_params"] for r in rows}
    ratio = n["gru"] / n["lstm"]
    columns = ["cell", "recurrent_params", "params", "s_per_100_steps", "train_loss", "val_loss",
               "adding_mse"]
    source = os.path.basename(os.fspath(text)) if text is not None else "the standard library"
    a = s.adding
    print_table(rows, columns, f"Char-level LM on {len(train_ids) + len(val_ids):,} characters of {source}"
                f" (V={len(vocab)}, H={s.hidden}, {s.steps} steps of {s.batch}x{s.seq_len}; losses in"
                f" nats/char); adding problem T={a.lengths[0]} (H={a.hidden}, {a.steps} steps of"
                f" {a.batch}; best validation MSE, mean guess {mean_guess:.3f})")
    print(f"GRU / LSTM recurrent parameters: {n['gru']} / {n['lstm']} = {ratio:.4f}\n", flush=True)
    return {"rows": rows, "columns": columns, "png": _plot(out_dir, curves), "gru_lstm_ratio": ratio,
            "curves": curves, "adding_mean_guess": mean_guess, "settings": dataclasses.asdict(s)}
