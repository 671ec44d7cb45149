"""Diagnostics recorded during training: per-step gradient norms, gate saturation, hidden-state traces.

For every recurrent unit u (one layer, one direction: a layers.Recurrent, named by its module path,
e.g. "rnn.l0", "rnn.l0_reverse") on a recorded training step:

    grad_norm[t]    mean over the sequences b with t < lengths[b] of ||dL/dh_t[b]||        (T,)
                    dL/dh_t (B, H_out): the total gradient of the step's loss with respect to h_t,
                    from the output at t and, through the recurrence, from step t+1 on
    saturation[g]   [low, high]: the fractions of gate g's activations v over the real (t, b, j)
                    entries with v <= lo and v >= hi; sigmoid gates i, f, o (LSTM), r, z (GRU):
                    (lo, hi) = (0.05, 0.95); an RNN's h: tanh (-0.95, 0.95), sigmoid (0.05, 0.95),
                    relu (0, inf) (low = inactive units)
    trace           h_t[b, :units] for one sequence b (`sequence`), t < lengths[b]   (T_b, units)

Times t are the input's own order (a reverse direction's gradient flows from t = 0 on).
The numbers come from each unit's `probe` hook (rnnkit.layers.recurrent): the forward hands it
the cache, whose activated gates gate_activations() reads in every layout (rnnkit.cells, the numba
kernels' per-step caches, the fused whole-sequence caches); the backward hands it ||dL/dh_t||.
A probed step runs the reference loop rather than the fused kernels: the same math (in float32
the last bits may differ); a step without probes is untouched.

Recorder(model, every=N) is an on_step callback for rnnkit.train.fit: it records the first step of
the fit and every N-th step, keeps the records in `records` and appends them to
run_dir/diagnostics.jsonl (rank 0 only; one JSON object per line, flushed; on resume the lines
past the resumed step are dropped first, as in metrics.jsonl). A line:

    {"step": 50, "units": {"rnn.l0": {"mode": "lstm", "T": 64, "grad_norm": [...],
                                      "saturation": {"i": [low, high], ...}, "trace": [[...], ...]}}}

Decoders stepped one token at a time (EncoderDecoder's) bypass Recurrent.forward and are not seen.
plot_diagnostics() draws the records as PNGs (rnnkit.plots); `rnnkit inspect RUN --plots` calls it.
"""
import os

import numpy as np

from ._checks import check_int
from .checkpoint import MetricsLog, read_metrics
from .errors import InputError
from .layers.recurrent import Recurrent

DIAGNOSTICS = "diagnostics.jsonl"
BLOCKS = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}   # cache gate order
GATES = {"rnn": ("h",), "lstm": ("i", "f", "o"), "gru": ("r", "z")}               # the ones recorded
SIGMOID = (0.05, 0.95)
RNN_LIMITS = {"tanh": (-0.95, 0.95), "sigmoid": SIGMOID, "relu": (0.0, np.inf)}


# -- reading the caches ---------------------------------------------------------------------------
def step_gates(layer, step_cache):
    """One step's activated gates {name: (B, H)} from a per-step cache of rnnkit.cells or the kernels."""
    mode, H = layer.mode, layer.hidden_size
    if mode == "rnn":
        return {"h": step_cache}                                 # the cache is h itself
    names = BLOCKS[mode]
    c = step_cache[0] if mode == "lstm" else step_cache          # LSTM steps: (cell cache, m)
    if c[0].shape[-1] == len(names) * H:                         # kernels: one (B, G*H) [i|f|g|o]
        return {g: c[0][:, k * H:(k + 1) * H] for k, g in enumerate(names)}
    return dict(zip(names, c[:len(names)]))                      # cells, Cho GRU: (B, H) each


def fused_gates(layer, fused):
    """The activated gates {name: (T, B, H)} from a fused whole-sequence cache (rnnkit.kernels.sequence)."""
    mode, H = layer.mode, layer.hidden_size
    if mode == "rnn":
        return {"h": fused[-1]}                                  # (x, h0, out)
    act = fused[3] if mode == "lstm" else fused[2]               # (x, h0, c0, ACT, ..) / (x, h0, RZN, ..)
    return {g: act[..., k * H:(k + 1) * H] for k, g in enumerate(BLOCKS[mode])}


def gate_activations(layer, cache):
    """{gate: (T, B, H)} of a Recurrent's forward cache, in the loop's time order (reversed if reverse)."""
    if not isinstance(layer, Recurrent) or not isinstance(cache, dict):
        raise InputError(f"layer, cache: expected a Recurrent and its forward cache, got "
                         f"{type(layer).__name__} and {type(cache).__name__}")
    if "fused" in cache:
        return fused_gates(layer, cache["fused"])
    steps = [step_gates(layer, c) for c in cache["caches"]]
    return {g: np.stack([s[g] for s in steps]) for g in BLOCKS[layer.mode]}    # (T, B, H)


def limits(layer):
    """(lo, hi) of the layer's recorded gates: v is saturated low when v <= lo, high when v >= hi."""
    return RNN_LIMITS[layer.steps.nonlinearity] if layer.mode == "rnn" else SIGMOID


def saturation(layer, cache):
    """{gate: [low, high]}: fractions of the recorded gates' real entries at or past their limits."""
    acts, masks = gate_activations(layer, cache), cache.get("masks")
    out = {}
    for g in GATES[layer.mode]:
        v = acts[g] if masks is None else acts[g][masks[..., 0]]   # (T, B, H) or (n, H)
        lo, hi = limits(layer)
        n = max(v.size, 1)
        out[g] = [float(np.count_nonzero(v <= lo)) / n, float(np.count_nonzero(v >= hi)) / n]
    return out


def real_steps(cache, T, B):
    """(T, B) bool: the steps t < lengths[b] (masks are in input order: padding stays at the end)."""
    masks = cache.get("masks")
    return np.ones((T, B), bool) if masks is None else masks[..., 0]


def mean_grad_norm(norms, cache):
    """norms (T, B) in loop order -> (T,) mean over the real sequences at each t, in input order."""
    if cache["idx"] is not None:
        norms = np.take_along_axis(norms, cache["idx"], axis=0)    # (T, B) input order
    real = real_steps(cache, *norms.shape)
    n = real.sum(1)                                                 # (T,)
    total = np.where(real, norms, 0).sum(1)                         # (T,)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


# -- the probe on each unit and the recorder ------------------------------------------------------
def recurrent_units(model):
    """[(dotted module path, Recurrent)] of every recurrent unit in model, in module order."""
    found = []

    def walk(m, path):
        if isinstance(m, Recurrent):
            found.append((path or "(model)", m))
        for k, child in m.children.items():
            walk(child, f"{path}.{k}" if path else k)

    walk(model, "")
    return found


def _finite(values):
    """A list of floats with NaN/Inf as None (valid JSON)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64).ravel()]


class Probe:
    """A unit's hook for one recorded step: keeps the stats of its first cached forward and backward."""

    def __init__(self, units, sequence):
        self.stats, self.units, self.sequence = {}, units, sequence

    def forward(self, layer, out, cache):
        """Gate saturation and the hidden-state trace of one sequence."""
        if "saturation" in self.stats:
            return
        T, B = out.shape[:2]
        b = min(self.sequence, B - 1)
        T_b = int(real_steps(cache, T, B)[:, b].sum())
        trace = out[:T_b, b, :self.units]                                       # (T_b, units)
        self.stats.update(mode=layer.mode, T=T, saturation=saturation(layer, cache),
                          trace=[_finite(row) for row in trace])

    def backward(self, layer, norms, cache):
        """The mean ||dL/dh_t|| per time step."""
        if "grad_norm" not in self.stats:
            self.stats["grad_norm"] = _finite(mean_grad_norm(norms, cache))


class Recorder:
    """on_step callback for fit(): records the first step and every `every`-th (see the module docstring).

    `path` (default run_dir/diagnostics.jsonl, none without a run_dir) receives the records;
    `units` hidden units and sequence `sequence` of the batch are traced; `on_step` is called after
    (its return value stops training). Use it as a context manager or call close() after fit, so
    that no probe stays on the model.
    """

    def __init__(self, model, every=50, *, path=None, units=16, sequence=0, on_step=None):
        self.units = recurrent_units(model)
        if not self.units:
            raise InputError(f"model: expected a model with recurrent layers (RNN, LSTM, GRU), "
                             f"got {type(model).__name__} with none")
        self.every = check_int("every", every, low=1)
        self.n_units, self.sequence = check_int("units", units, low=1), check_int("sequence", sequence, low=0)
        if on_step is not None and not callable(on_step):
            raise InputError(f"on_step: expected a function (trainer, info) -> stop?, got {on_step!r:.60}")
        self.path, self.on_step, self.records, self.log, self.probes = path, on_step, [], None, None
        self.start()

    def start(self):
        """Put a fresh probe on every unit: the next training step is recorded."""
        self.probes = {name: Probe(self.n_units, self.sequence) for name, _ in self.units}
        for name, unit in self.units:
            unit.probe = self.probes[name]

    def stop(self, step):
        """Take the probes off; return the record of the probed step (None if nothing was seen)."""
        for _, unit in self.units:
            unit.probe = None
        probes, self.probes = self.probes, None
        seen = {name: p.stats for name, p in (probes or {}).items() if p.stats}
        return {"step": int(step), "units": seen} if seen else None

    def __call__(self, trainer, info):
        """After a step: finish its record if it was probed; probe the next if it is due."""
        if self.probes is not None:
            record = self.stop(info["step"])
            if record is not None:
                self.records.append(record)
                self._write(trainer, record)
        if (info["step"] + 1) % self.every == 0:
            self.start()
        return bool(self.on_step(trainer, info)) if self.on_step is not None else False

    def _write(self, trainer, record):
        """Append the record to the diagnostics file (rank 0 only); open it on the first record."""
        if self.log is None:
            path = self.path or (os.path.join(trainer.run_dir, DIAGNOSTICS) if trainer.run_dir else None)
            if path is None or not getattr(trainer, "writes", True):
                return
            self.log = MetricsLog(path, resume_step=record["step"] - 1)
        self.log.write(record)

    def close(self):
        """Take any probe off the model and close the file."""
        self.stop(0)
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_diagnostics(path):
    """The records of a diagnostics.jsonl file (a run folder or the file itself)."""
    p = os.fspath(path)
    return read_metrics(os.path.join(p, DIAGNOSTICS) if os.path.isdir(p) else p)


# -- pictures -------------------------------------------------------------------------------------
def plot_grad_norms(path, records):
    """Mean ||dL/dh_t|| against t (log y): each unit at the first (dashed) and latest record."""
    from .plots import line_plot
    series, styles = {}, {}
    for rec, style in ((records[0], "dashed"), (records[-1], "solid")):
        for name, s in rec["units"].items():
            if "grad_norm" in s:
                label = f"{name}, step {rec['step']}"
                series[label] = [np.nan if v is None else v for v in s["grad_norm"]]
                styles[label] = style
        if len(records) == 1:
            break
    if not series:
        return None
    return line_plot(path, series, title="gradient norm per time step", xlabel="time step t",
                     ylabel="mean ||dL/dh_t||", logy=True, styles=styles)


def plot_saturation(path, records):
    """Fraction of saturated gate activations (low + high) against the training step."""
    from .plots import line_plot
    series = {}
    for rec in records:
        for name, s in rec["units"].items():
            for g, (low, high) in s.get("saturation", {}).items():
                xs, ys = series.setdefault(f"{name} {g}", ([], []))
                xs.append(rec["step"])
                ys.append(low + high)
    if not series:
        return None
    return line_plot(path, series, title="gate saturation (<= 0.05 or >= 0.95; RNN: |h| >= 0.95)",
                     xlabel="step", ylabel="fraction saturated")


def plot_trace(path, name, rec):
    """Heatmap of one unit's latest hidden-state trace: time (rows) x units (columns)."""
    from .plots import heatmap
    h = np.array([[np.nan if v is None else v for v in row] for row in rec["units"][name]["trace"]])
    if h.size == 0 or not np.isfinite(h).any():
        return None
    m = float(np.nanmax(np.abs(h))) or 1.0
    lo = -m if np.nanmin(h) < 0 else 0.0
    return heatmap(path, h, title=f"{name} hidden state h_t, step {rec['step']}", xlabel="unit",
                   ylabel="time step t", cmap="coolwarm" if lo < 0 else "viridis", vmin=lo, vmax=m)


def plot_diagnostics(records, folder):
    """Write diag_grad_norm.png, diag_saturation.png and diag_hidden_<unit>.png; return their paths."""
    if not records:
        raise InputError("records: expected at least one diagnostics record, got none")
    paths = [plot_grad_norms(os.path.join(folder, "diag_grad_norm.png"), records),
             plot_saturation(os.path.join(folder, "diag_saturation.png"), records)]
    latest = {}
    for rec in records:
        for name, s in rec["units"].items():
            if "trace" in s:
                latest[name] = rec
    for name, rec in latest.items():
        file = "diag_hidden_" + name.replace(".", "_").replace("(", "").replace(")", "") + ".png"
        paths.append(plot_trace(os.path.join(folder, file), name, rec))
    return [p for p in paths if p is not None]
