"""Property-based sweep of the public API with bad input (hypothesis, derandomized).

Every generated case either ends in one of rnnkit's own exceptions (rnnkit.errors: a ValueError
subclass whose message starts with the name of the bad argument) or returns a result that is
checked: shapes, finiteness where the inputs were finite, and values against a reference.
Anything else (IndexError, KeyError, a plain numpy ValueError) fails the test.

Documented behaviour on non-finite input: NaN in an input gives NaN in the outputs it reaches
(propagation, as IEEE arithmetic and PyTorch); NaN in logits makes the cross-entropy NaN; sampling
refuses NaN and +inf logits (NonFiniteError). A finite result from a NaN input is a bug.
Empty sequences (T = 0 or B = 0): empty outputs, and the initial state is the final state.
"""
import json
import math
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit import decode, losses, optim
from rnnkit.checkpoint import read_checkpoint
from rnnkit.data import (StreamBatches, Vocab, length_mask, pad_sequences, read_labelled, read_text,
                         word_tokenize)
from rnnkit.errors import FileFormatError, NonFiniteError, RnnkitError, StateDictError
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.models.many_to_one import ManyToOne
from rnnkit.models.one_to_many import OneToMany
from rnnkit.train import fit


def sweep(n):
    """Hypothesis settings of a sweep: n cases, reproducible, no deadline, no example database."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def attempt(fn, bad):
    """Run fn(): (True, result), or (False, error) for an rnnkit error naming an argument in `bad`.

    bad: the names of the arguments that are wrong (an error must name one of them); an empty
    set means every argument is fine, so an error fails the test.
    """
    try:
        return True, fn()
    except RnnkitError as e:
        assert isinstance(e, (ValueError, TypeError)), f"{type(e).__name__} is no ValueError/TypeError"
        named = str(e).split(":")[0]
        assert bad, f"valid input raised {type(e).__name__}: {e}"
        assert named.startswith(tuple(bad)), f"error names {named!r}, expected one of {sorted(bad)}: {e}"
        return False, e


def assert_failed(ok, bad):
    """A case with bad arguments must not succeed."""
    assert not (ok and bad), f"bad {sorted(bad)} accepted"


FLOATS = np.float32
BAD_DTYPES = [np.float64, np.float16, np.int64, np.bool_, np.complex64, object]
CELLS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
D, H = 3, 4
_LAYERS = {}


def layer(cell, num_layers, bidirectional, batch_first):
    """A cached layer (forward does not change it)."""
    key = (cell, num_layers, bidirectional, batch_first)
    if key not in _LAYERS:
        _LAYERS[key] = CELLS[cell](D, H, num_layers, bidirectional, batch_first)
    return _LAYERS[key]


def states(s):
    """A state as a tuple of arrays."""
    return s if isinstance(s, tuple) else (s,)


# -- layers: forward --------------------------------------------------------------------------------
@st.composite
def layer_case(draw):
    """A layer and (x, state, lengths), each maybe wrong; returns (module, args, bad names, T, B, lengths)."""
    m = layer(draw(st.sampled_from(sorted(CELLS))), draw(st.integers(1, 2)), draw(st.booleans()),
              draw(st.booleans()))
    T, B, bad = draw(st.integers(1, 4)), draw(st.integers(1, 3)), set()
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    shape, dtype = [T, B, D], FLOATS
    kind = draw(st.sampled_from(["ok"] * 6 + ["dtype", "ndim", "D", "list", "none"]))
    if kind == "dtype":
        dtype = draw(st.sampled_from(BAD_DTYPES))
    elif kind == "ndim":
        shape = shape[:2] if draw(st.booleans()) else shape + [1]
    elif kind == "D":
        shape[2] = draw(st.sampled_from([1, 2, 4]))
    x = rng.standard_normal(shape).astype(dtype)                             # (T, B, D) time-major
    if m.batch_first and len(shape) == 3:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    x = {"list": x.tolist(), "none": None}.get(kind, x)
    bad |= {"x"} if kind != "ok" else set()
    lengths, lkind = None, draw(st.sampled_from(["none", "ok", "ok", "neg", "long", "count", "frac",
                                                 "intfloat", "bool", "2d", "str"]))
    if lkind != "none":
        lengths = rng.integers(0, T + 1, size=B)                             # (B,)
        lengths = {"neg": lengths - T - 1, "long": lengths + T + 1, "frac": lengths + 0.5,
                   "count": rng.integers(0, T + 1, size=B + draw(st.sampled_from([-1, 1]))),
                   "intfloat": lengths.astype(np.float64), "bool": lengths > 0,
                   "2d": lengths[None], "str": lengths.astype(str)}.get(lkind, lengths)
        lengths = lengths.tolist() if draw(st.booleans()) else lengths
        bad |= {"lengths"} if lkind not in ("ok", "intfloat") else set()
    n, skind = m.num_layers * m.dirs, draw(st.sampled_from(["none", "ok", "ok", "B", "dtype", "struct"]))
    s0 = tuple(rng.standard_normal((n, B, H)).astype(FLOATS) for _ in range(m._n_states()))
    pack = (lambda s: s) if m.mode == "lstm" else (lambda s: s[0])    # (h, c) for LSTM, else h
    state = {"none": None, "ok": pack(s0), "B": pack(tuple(s[:, :0] for s in s0)),
             "dtype": pack(tuple(s.astype(np.float64) for s in s0)),
             "struct": s0[0] if m.mode == "lstm" else s0 + s0}[skind]
    bad |= {"state"} if skind not in ("none", "ok") else set()
    return m, (x, state, lengths), bad, T, B


@given(layer_case())
@sweep(500)
def test_layer_forward_sweep(case):
    m, (x, state, lengths), bad, T, B = case
    ok, res = attempt(lambda: m.forward(x, state, lengths), bad)
    assert_failed(ok, bad)
    if not ok:
        return
    out, final, _ = res
    tm = out.transpose(1, 0, 2) if m.batch_first else out                   # (T, B, dirs*H)
    assert tm.shape == (T, B, m.dirs * H) and np.all(np.isfinite(out))
    L = np.full(B, T) if lengths is None else np.asarray(lengths).astype(int)   # (B,)
    h_n = states(final)[0]
    assert all(s.shape == (m.num_layers * m.dirs, B, H) for s in states(final))
    top = (m.num_layers - 1) * m.dirs
    for b in range(B):
        assert not tm[L[b]:, b].any(), "padded steps must output zeros"
        if L[b] == 0:                      # no real step: the final state is the initial state
            init = np.zeros_like(h_n[:, b]) if state is None else states(state)[0][:, b]
            np.testing.assert_array_equal(h_n[:, b], init)
            continue
        np.testing.assert_allclose(h_n[top, b], tm[L[b] - 1, b, :H], rtol=1e-6)
        if m.dirs == 2:                    # the reverse direction ends at step 0
            np.testing.assert_allclose(h_n[top + 1, b], tm[0, b, H:], rtol=1e-6)


# -- layers: backward -------------------------------------------------------------------------------
@given(st.data())
@sweep(200)
def test_layer_backward_sweep(data):
    m = layer(data.draw(st.sampled_from(sorted(CELLS))), data.draw(st.integers(1, 2)),
              data.draw(st.booleans()), data.draw(st.booleans()))
    T, B = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    x = rng.standard_normal((B, T, D) if m.batch_first else (T, B, D)).astype(FLOATS)
    out, state, cache = m.forward(x)
    bad, dout = set(), rng.standard_normal(out.shape).astype(FLOATS)
    kind = data.draw(st.sampled_from(["ok"] * 4 + ["T", "H", "dtype", "ndim"]))
    if kind != "ok":
        bad.add("dout")
        dout = {"T": dout[:-1] if not m.batch_first else dout[:, :-1], "H": dout[..., :-1],
                "dtype": dout.astype(data.draw(st.sampled_from(BAD_DTYPES))), "ndim": dout[0]}[kind]
    ckind = data.draw(st.sampled_from(["ok"] * 6 + ["none", "dict", "str"]))
    if ckind != "ok":
        bad.add("cache")
        cache = {"none": None, "dict": {}, "str": "cache"}[ckind]
    dstate, dkind = None, data.draw(st.sampled_from(["none", "ok", "H"]))
    if dkind != "none":
        dstate = tuple(rng.standard_normal(s.shape).astype(FLOATS) for s in states(state))
        dstate = tuple(s[..., :-1] for s in dstate) if dkind == "H" else dstate
        dstate = dstate if m.mode == "lstm" else dstate[0]
        bad |= {"dstate"} if dkind == "H" else set()
    ok, res = attempt(lambda: m.backward(dout, cache, dstate), bad)
    assert_failed(ok, bad)
    if ok:
        dx, dinit = res
        assert dx.shape == x.shape and np.all(np.isfinite(dx))
        assert [s.shape for s in states(dinit)] == [s.shape for s in states(state)]


# -- PyTorch-layout state dicts -----------------------------------------------------------------------
def _torch_modules():
    return [rnnkit.LSTM(D, H, 2, proj_size=2), rnnkit.GRU(D, H, bidirectional=True), rnnkit.RNN(D, H),
            rnnkit.Linear(D, H), rnnkit.Embedding(5, D)]


@given(st.data())
@sweep(200)
def test_load_torch_state_dict_sweep(data):
    i = data.draw(st.integers(0, 4))
    m, src = _torch_modules()[i], _torch_modules()[i]
    for _, p, _ in src.named_parameters():
        p[...] = np.random.default_rng(1).standard_normal(p.shape)
    sd, before = src.torch_state_dict(), m.state_dict()
    key = data.draw(st.sampled_from(sorted(sd)))
    kind = data.draw(st.sampled_from(["ok", "ok", "int", "f64", "drop", "extra", "shape", "str",
                                      "object", "complex", "bool", "list", "none", "array"]))
    if kind in ("int", "f64"):
        sd[key] = sd[key].astype(np.int64 if kind == "int" else np.float64)
    elif kind in ("str", "object", "complex", "bool"):
        sd[key] = sd[key].astype({"str": str, "object": object, "complex": complex, "bool": bool}[kind])
    elif kind in ("drop", "extra", "shape"):
        sd = {k: v for k, v in sd.items() if k != key or kind != "drop"}
        sd.update({"extra": {"extra.weight": np.zeros(2)}, "shape": {key: sd.get(key, np.zeros(1)).T[..., None]}}
                  .get(kind, {}))
    sd = {"list": list(sd.items()), "none": None, "array": np.zeros(3)}.get(kind, sd)
    bad = set() if kind in ("ok", "int", "f64") else {"state_dict"}
    ok, _ = attempt(lambda: m.load_torch_state_dict(sd), bad)
    assert_failed(ok, bad)
    if ok:
        for k, v in m.torch_state_dict().items():
            np.testing.assert_array_equal(v, np.asarray(sd[k]).astype(v.dtype))
    else:                                  # a failed load leaves the module as it was
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v, before[k])


# -- models: objective on bad batches ------------------------------------------------------------------
V, C = 6, 3
MODELS = {
    "m2m": ManyToMany(vocab_size=V, embedding_dim=4, hidden_size=5, cell="gru"),
    "m2m_regress": ManyToMany(input_size=D, output_size=2, hidden_size=5, task="regress"),
    "m2o": ManyToOne(vocab_size=V, embedding_dim=4, hidden_size=5, num_outputs=C, readout="mean"),
    "o2m": OneToMany(input_size=D, vocab_size=V, embedding_dim=4, hidden_size=5, cell="rnn"),
}


@st.composite
def model_case(draw):
    """A model and a batch (maybe wrong) -> (model, batch, bad names, T, B)."""
    name = draw(st.sampled_from(sorted(MODELS)))
    T, B, bad = draw(st.integers(1, 4)), draw(st.integers(1, 3)), set()
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    ids = rng.integers(0, V, size=(T, B))                                    # (T, B)
    x = rng.standard_normal((T, B, D)).astype(FLOATS) if name == "m2m_regress" else ids
    y = {"m2m": ids, "o2m": ids, "m2o": rng.integers(0, C, size=B),
         "m2m_regress": rng.standard_normal((T, B, 2)).astype(FLOATS)}[name]
    batch = {"v": rng.standard_normal((B, D)).astype(FLOATS), "y": y} if name == "o2m" else {"x": x, "y": y}
    key = "v" if name == "o2m" else "x"
    kind = draw(st.sampled_from(["ok"] * 4 + ["oov", "neg", "frac", "ndim", "y_oov", "y_shape",
                                              "y_float", "missing", "extra", "not_dict"]))
    if kind in ("oov", "neg", "frac", "ndim"):
        if name == "o2m":                  # its inputs are y shifted right
            batch["y"] = {"oov": y + V, "neg": y - V, "frac": y + 0.5, "ndim": y[0]}[kind]
            bad |= {"y", "ids", "targets", "x"}
        elif name == "m2m_regress":          # real vectors: wrong dtype, width or rank
            batch["x"] = {"oov": x.astype(np.float64), "neg": ids, "frac": x[..., :2], "ndim": x[0]}[kind]
            bad |= {"x"}
        else:
            batch["x"] = {"oov": x + V, "neg": x - V, "frac": x + 0.5, "ndim": x[0]}[kind]
            bad |= {"x", "ids"}
    elif kind.startswith("y_") and name != "m2m_regress":
        batch["y"] = {"y_oov": y + 10, "y_shape": y[..., :-1], "y_float": y + 0.5}[kind]
        bad |= {"y", "targets", "ids", "x"}
    elif kind.startswith("y_"):
        batch["y"] = {"y_oov": y[..., :1], "y_shape": y[:-1], "y_float": y.astype(str)}[kind]
        bad |= {"y", "target"}
    elif kind in ("missing", "extra", "not_dict"):
        batch = {"missing": {k: v for k, v in batch.items() if k != key},
                 "extra": {**batch, "lenghts": np.full(B, T)}, "not_dict": list(batch.values())}[kind]
        bad.add("batch")
    if draw(st.booleans()) and isinstance(batch, dict):
        lkind = draw(st.sampled_from(["ok", "ok", "zero", "long", "count"]))
        low = 1 if name == "m2o" else 0
        batch["lengths"] = {"ok": rng.integers(low, T + 1, size=B), "zero": np.zeros(B, np.int64),
                            "long": np.full(B, T + 1), "count": np.full(B + 1, T)}[lkind]
        bad |= {"lengths"} if lkind in ("long", "count") or (lkind == "zero" and name == "m2o") else set()
    return MODELS[name], batch, bad, T, B


@given(model_case())
@sweep(300)
def test_model_objective_sweep(case):
    model, batch, bad, T, B = case
    model.zero_grad()
    ok, res = attempt(lambda: model.objective(batch), bad)
    assert_failed(ok, bad)
    if not ok:
        return
    loss_sum, count, metrics, _ = res
    L = batch.get("lengths", np.full(B, T))
    want = B if isinstance(model, ManyToOne) else int(np.sum(L))
    assert count == want and math.isfinite(loss_sum) and loss_sum >= 0
    assert 0 <= metrics.get("correct", 0) <= count
    assert all(np.all(np.isfinite(g)) for _, _, g in model.named_parameters())


# -- losses ------------------------------------------------------------------------------------------
def _ce_reference(z, y, w, reduction):
    """Cross-entropy in float64 from the definition."""
    z = z.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    e = -np.take_along_axis(logp, np.clip(y, 0, z.shape[-1] - 1).astype(int)[..., None], -1)[..., 0]
    total, n = float(np.sum(w * e)), float(w.sum())
    B = z.shape[1] if z.ndim >= 3 else z.shape[0] if z.ndim == 2 else 1
    return {"sum": total, "mean": total / n if n else 0.0, "batch_mean": total / B if n else 0.0}[reduction]


@given(st.data())
@sweep(300)
def test_cross_entropy_sweep(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    shape = tuple(data.draw(st.lists(st.integers(0, 3), min_size=0, max_size=2)))
    Vc, bad = data.draw(st.integers(0, 4)), set()
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float32, np.float16, np.int64, complex]))
    logits = rng.standard_normal(shape + (Vc,)).astype(dtype)                 # (..., V)
    bad |= {"logits"} if Vc == 0 or dtype not in (np.float32, np.float64) else set()
    if data.draw(st.integers(0, 5)) == 0 and logits.size and dtype in (np.float32, np.float64):
        logits.flat[data.draw(st.integers(0, logits.size - 1))] = np.nan
    ignore = data.draw(st.sampled_from([None, None, -100, 0, "x", 1.5]))
    bad |= {"ignore_index"} if ignore in ("x", 1.5) else set()
    tkind = data.draw(st.sampled_from(["ok", "ok", "ok", "high", "neg", "shape", "float"]))
    y = rng.integers(0, max(Vc, 1), size=shape)                              # (...)
    if ignore == -100 and y.size:
        y.flat[0] = -100
    y = {"high": y + max(Vc, 1), "neg": y - 5, "shape": y[..., None], "float": y + 0.5}.get(tkind, y)
    bad |= {"targets"} if tkind == "shape" or (tkind != "ok" and y.size) else set()   # empty: no bad value
    mkind = data.draw(st.sampled_from(["none", "ok", "bool", "shape", "two", "str"]))
    mask = {"none": None, "ok": rng.integers(0, 2, size=shape).astype(np.float32),
            "bool": rng.integers(0, 2, size=shape) > 0, "shape": np.ones(shape + (2,)),
            "two": np.full(shape, 2.0), "str": np.full(shape, "1")}[mkind]
    bad |= {"mask"} if mkind in ("shape", "str") or (mkind == "two" and mask.size) else set()
    reduction = data.draw(st.sampled_from(["mean", "sum", "batch_mean", "avg"]))
    bad |= {"reduction"} if reduction == "avg" else set()
    ok, res = attempt(lambda: losses.cross_entropy(logits, y, mask, ignore, reduction), bad)
    assert_failed(ok, bad)
    if not ok:
        return
    loss, dlogits = res
    assert dlogits.shape == logits.shape
    if np.isnan(logits).any():             # documented: NaN anywhere in the logits -> NaN loss
        assert math.isnan(loss)
        return
    counted = np.ones(shape) if ignore is None else (y != ignore).astype(float)
    w = counted * (1.0 if mask is None else np.asarray(mask, float))
    np.testing.assert_allclose(loss, _ce_reference(logits, y, w, reduction), rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(dlogits))


@given(st.data())
@sweep(150)
def test_mse_sweep(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    shape = tuple(data.draw(st.lists(st.integers(0, 3), min_size=0, max_size=3)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int64, np.float16]))
    pred = rng.standard_normal(shape).astype(dtype)
    bad = {"pred"} if dtype not in (np.float32, np.float64) else set()
    tkind = data.draw(st.sampled_from(["ok", "ok", "int", "shape", "str", "bool"]))
    target = rng.standard_normal(shape)
    target = {"int": np.round(target).astype(np.int64), "shape": target[..., None],
              "str": target.astype(str), "bool": target > 0}.get(tkind, target)
    bad |= {"target"} if tkind in ("shape", "str", "bool") else set()
    mkind = data.draw(st.sampled_from(["none", "full", "position", "shape", "two"]))
    mask = {"none": None, "full": rng.integers(0, 2, size=shape), "two": np.full(shape, 2),
            "position": rng.integers(0, 2, size=shape[:-1]) if shape else None,
            "shape": np.ones(shape + (3,))}[mkind]
    bad |= {"mask"} if mkind == "shape" or (mkind == "two" and mask.size) else set()
    reduction = data.draw(st.sampled_from(["mean", "sum", "batch_mean"]))
    ok, res = attempt(lambda: losses.mse(pred, target, mask, reduction), bad)
    assert_failed(ok, bad)
    if ok:
        loss, dpred = res
        w = np.ones(shape) if mask is None else np.broadcast_to(
            np.asarray(mask, float).reshape(np.shape(mask) + (1,) * (len(shape) - np.ndim(mask))), shape)
        e = w * (pred.astype(np.float64) - np.asarray(target, np.float64)) ** 2
        n = float(w.sum())
        Bn = shape[1] if len(shape) >= 2 else shape[0] if len(shape) == 1 else 1
        want = {"sum": e.sum(), "mean": e.sum() / n if n else 0.0, "batch_mean": e.sum() / Bn if n else 0.0}
        np.testing.assert_allclose(loss, want[reduction], rtol=1e-5, atol=1e-7)
        assert np.shape(dpred) == shape and np.all(np.isfinite(dpred))


# -- optimizers and schedules ----------------------------------------------------------------------
ABSURD = [-1.0, math.nan, math.inf, -math.inf, "0.1", None, True, 1e300, 0.0, 0.5, 1.0, 2.0]
HYPER = {   # name -> (values to draw from, is it valid?)
    "lr": (ABSURD + [1e-3], lambda v: _real(v) and v >= 0),
    "momentum": (ABSURD, lambda v: _real(v) and v >= 0),
    "dampening": (ABSURD, lambda v: _real(v) and 0 <= v <= 1),
    "weight_decay": (ABSURD, lambda v: _real(v) and v >= 0),
    "eps": (ABSURD + [1e-8], lambda v: _real(v) and v > 0),
    "alpha": (ABSURD, lambda v: _real(v) and 0 <= v <= 1),
    "lr_decay": (ABSURD, lambda v: _real(v) and v >= 0),
    "initial_accumulator_value": (ABSURD, lambda v: _real(v) and v >= 0),
    "nesterov": ([False, True, "yes", None], lambda v: v in (False, True) and v is not None),
    "centered": ([False, True, 2], lambda v: isinstance(v, bool)),
    "amsgrad": ([False, True, "no"], lambda v: isinstance(v, bool)),
    "betas": ([(0.9, 0.999), (0.0, 0.0), (0.9, 1.0), (1.0, 0.9), (-0.1, 0.9), (math.nan, 0.9), (0.9,),
               0.9, "ab", (0.5, 1e-300)], lambda v: isinstance(v, tuple) and len(v) == 2
              and all(_real(b) and 0 <= b < 1 for b in v)),
}
OPTIMIZERS = {"SGD": ["momentum", "dampening", "nesterov", "weight_decay"],
              "Adagrad": ["lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
              "RMSprop": ["alpha", "eps", "weight_decay", "momentum", "centered"],
              "Adam": ["betas", "eps", "weight_decay", "amsgrad"],
              "AdamW": ["betas", "eps", "weight_decay", "amsgrad"]}


def _real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _first_step(name, p, g, lr, h):
    """The parameters after one step of optimizer `name` from zero state, in float64."""
    wd = h.get("weight_decay", 0.01 if name == "AdamW" else 0.0)
    if name == "AdamW":
        p, wd = p * (1 - lr * wd), 0.0
    g = g + wd * p
    if name == "SGD":
        mu = h.get("momentum", 0.0)
        return p - lr * (g + mu * g if h.get("nesterov") else g)
    if name == "Adagrad":
        return p - lr * g / (np.sqrt(h.get("initial_accumulator_value", 0.0) + g * g) + h.get("eps", 1e-10))
    if name == "RMSprop":
        a = h.get("alpha", 0.99)
        v = (1 - a) * g * g
        m = (1 - a) * g if h.get("centered") else 0.0
        return p - lr * g / (np.sqrt(v - m * m) + h.get("eps", 1e-8))
    b1, b2 = h.get("betas", (0.9, 0.999))
    m, v = (1 - b1) * g, (1 - b2) * g * g
    return p - lr / (1 - b1) * m / (np.sqrt(v) / math.sqrt(1 - b2) + h.get("eps", 1e-8))


@given(st.data())
@sweep(300)
def test_optimizer_hyperparameter_sweep(data):
    name = data.draw(st.sampled_from(sorted(OPTIMIZERS)))
    lin = rnnkit.Linear(3, 2, seed=data.draw(st.integers(0, 9)))
    keys = ["lr"] + data.draw(st.lists(st.sampled_from(OPTIMIZERS[name]), unique=True, max_size=3))
    h = {k: data.draw(st.sampled_from(HYPER[k][0])) for k in keys}
    bad = {k for k in keys if not HYPER[k][1](h[k])}
    if name == "SGD" and not bad and h.get("nesterov") and (h.get("momentum", 0) == 0 or h.get("dampening", 0)):
        bad.add("nesterov")
    bad |= {"betas[0]", "betas[1]"} if "betas" in bad else set()
    ok, opt = attempt(lambda: getattr(optim, name)(lin, **h), bad)
    assert_failed(ok, bad)
    if not ok:
        return
    p0 = {k: p.astype(np.float64) for k, p, _ in lin.named_parameters()}
    for _, _, g in lin.named_parameters():
        g[...] = np.random.default_rng(3).standard_normal(g.shape)
    ids = {k: id(p) for k, p, _ in lin.named_parameters()}
    with np.errstate(all="ignore"):
        opt.step()
        if any(_real(v) and abs(v) > 1e30 for v in h.values()):
            return                         # beyond float32: IEEE overflow, caught by the trainer's checks
        for k, p, g in lin.named_parameters():
            want = _first_step(name, p0[k], g.astype(np.float64), h["lr"], h)
            assert id(p) == ids[k], "optimizers update parameters in place"
            np.testing.assert_allclose(p, want.astype(np.float32), rtol=2e-4,
                                       atol=1e-6 * (1 + np.abs(want - p0[k]).max()))


SCHEDULES = {"StepLR": {"step_size": [1, 3, 0, -1, 2.5, None], "gamma": [0.1, 1.0, 0.0, -1.0, math.nan]},
             "CosineAnnealing": {"T_max": [1, 10, 0, "10"], "eta_min": [0.0, 1e-4, -1.0, math.inf]},
             "Warmup": {"warmup_steps": [1, 5, 0, -3, 1.0]},
             "ReduceOnPlateau": {"factor": [0.5, 0.0, 1.0, 2.0, -0.5], "patience": [0, 3, -1, 1.5],
                                 "mode": ["min", "max", "avg"], "cooldown": [0, 2, -2]}}


def _schedule_ok(key, v):
    """Whether a schedule argument value is valid."""
    if key in ("step_size", "T_max", "warmup_steps"):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1
    if key in ("patience", "cooldown"):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if key == "mode":
        return v in ("min", "max")
    low_open = key == "gamma"
    return _real(v) and (v > 0 if low_open else v >= 0) and (key != "factor" or v < 1)


@given(st.data())
@sweep(150)
def test_schedule_sweep(data):
    name = data.draw(st.sampled_from(sorted(SCHEDULES)))
    opt = optim.SGD(rnnkit.Linear(2, 2), lr=0.1)
    kw = {k: data.draw(st.sampled_from(vals)) for k, vals in SCHEDULES[name].items()}
    bad = {k for k, v in kw.items() if not _schedule_ok(k, v)}
    ok, sched = attempt(lambda: getattr(optim, name)(opt, **kw), bad)
    assert_failed(ok, bad)
    if ok:
        for _ in range(5):
            sched.step(data.draw(st.sampled_from([1.0, 0.5, 2.0])))
            assert math.isfinite(opt.lr) and 0 <= opt.lr <= 0.1 + 1e-12


@pytest.mark.parametrize("params", [None, 3, "abc", {}, [], [("w", np.zeros(2), np.zeros(3))],
                                    [("w", np.zeros(2, int), np.zeros(2, int))], [(1, 2)]])
def test_optimizer_params_argument(params):
    ok, _ = attempt(lambda: optim.Adam(params), {"params", "param", "grad"})
    assert not ok


# -- sampling --------------------------------------------------------------------------------------
TEMPERATURES = [0, 0.5, 1.0, 1e-300, 1e300, -1.0, math.nan, math.inf, "1", None, True]
TOP_K = [None, 1, 2, 50, 0, -1, 2.5, True]
TOP_P = [None, 0.5, 1.0, 1e-300, 0.0, 1.5, math.nan, -0.1, "0.9"]


@given(st.data())
@sweep(300)
def test_sampling_sweep(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    B, Vs = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 5))
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.float16, np.int64, complex, object]))
    z = (rng.standard_normal((B, Vs)) * 3).astype(dtype)                     # (B, V)
    ndim_bad = data.draw(st.integers(0, 9)) == 0
    z = z[0] if ndim_bad and B else z
    bad = {"logits"} if (ndim_bad and B) or Vs == 0 or dtype not in (np.float64, np.float32, np.float16) else set()
    if z.ndim == 2 and z.size and not bad:
        for _ in range(data.draw(st.integers(0, 3))):
            z[data.draw(st.integers(0, B - 1)), data.draw(st.integers(0, Vs - 1))] = data.draw(
                st.sampled_from([-np.inf, -np.inf, np.inf, np.nan]))
        if np.isnan(z).any() or np.isposinf(z).any() or not np.isfinite(z).any(axis=1).all():
            bad.add("logits")
    T, k, p = (data.draw(st.sampled_from(v)) for v in (TEMPERATURES, TOP_K, TOP_P))
    bad |= {"temperature"} if not (_real(T) and T >= 0) else set()
    bad |= {"top_k"} if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and k >= 1) else set()
    bad |= {"top_p"} if p is not None and not (_real(p) and 0 < p <= 1) else set()
    with np.errstate(over="ignore"):
        ok, probs = attempt(lambda: decode.sampling_probs(z, T, k, p), bad)
        assert_failed(ok, bad)
        if not ok:
            return
        ids = decode.sample_logits(z, T, k, p, rng=data.draw(st.integers(0, 9)))
    assert probs.shape == (B, Vs) and ids.shape == (B,) and ids.dtype == np.int64
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1)
    assert np.all(probs[np.isneginf(z)] == 0), "a -inf logit is a forbidden id"
    assert np.all(probs[np.arange(B), ids] > 0), "sampled an id of probability 0"
    if k is not None:
        assert np.all((probs > 0).sum(axis=1) <= k)
    if T == 0:
        np.testing.assert_array_equal(ids, z.argmax(axis=1))


@given(st.data())
@sweep(100)
def test_generate_sweep(data):
    Vg = 5
    step = lambda ids, s: (np.log(np.arange(1, Vg + 1, dtype=float))[None].repeat(len(ids), 0), s)
    first = data.draw(st.sampled_from([np.array([0, 1]), np.array([-1, 0]), np.array([[0]]), [0.5], []]))
    max_len = data.draw(st.sampled_from([1, 3, 0, -2, 2.0, None]))
    stop = data.draw(st.sampled_from([None, 4, -1, "4"]))
    bad = {"first_ids"} if isinstance(first, list) and first == [0.5] or (
        isinstance(first, np.ndarray) and (first.ndim != 1 or (first < 0).any())) else set()
    bad |= {"max_len"} if not (isinstance(max_len, int) and max_len >= 1) else set()
    bad |= {"stop_id"} if stop is not None and not (isinstance(stop, int) and stop >= 0) else set()
    ok, res = attempt(lambda: decode.generate(step, None, first, max_len, stop_id=stop, seed=1), bad)
    assert_failed(ok, bad)
    if ok:
        ids, lengths, _ = res
        assert ids.shape[1] == len(first) and ids.shape[0] <= max_len and np.all((ids >= 0) & (ids < Vg))
        assert np.all(lengths <= ids.shape[0])


# -- data: files, tokenizers, vocabularies, batching -------------------------------------------------
@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield d


@given(st.binary(max_size=40) | st.text(max_size=20).map(lambda t: t.encode("utf-8")))
@sweep(200)
def test_read_text_sweep(folder, raw):
    path = os.path.join(folder, "text.txt")
    with open(path, "wb") as f:
        f.write(raw)
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        want = body.decode("utf-8")
    except UnicodeDecodeError:
        want = None
    bad = {"path"} if want is None or not want.strip() else set()
    ok, text = attempt(lambda: read_text(path), bad)
    assert_failed(ok, bad)
    assert not ok or text == want
    ok, text = attempt(lambda: read_text(path, errors="replace"), {"path"} if not body.strip() else set())
    assert not ok or text == body.decode("utf-8", "replace")


FIELD = st.sampled_from(["good", "bad", "fine film", "", " ", "1", "0", "a,b", "x\ty", '"q', "\u00e9", "null"])


@given(st.data())
@sweep(200)
def test_read_labelled_sweep(folder, data):
    fmt = data.draw(st.sampled_from(["tsv", "csv", "jsonl", "sst"]))
    rows = data.draw(st.lists(st.tuples(FIELD, FIELD), max_size=5))
    header = data.draw(st.booleans())
    objs = [{"text": data.draw(st.sampled_from([t, t, None])),
             "label": data.draw(st.sampled_from([l, l, None, 1, 1.0]))} for t, l in rows]
    if fmt == "jsonl":
        lines = [json.dumps(o) for o in objs]
    elif fmt == "sst":
        lines = [f"{l} {t}" for t, l in rows]
    else:
        sep = "\t" if fmt == "tsv" else ","
        lines = ([f"text{sep}label"] if header else []) + [f"{t}{sep}{l}" for t, l in rows]
    raw = "\n".join(lines).encode("utf-8")
    if data.draw(st.integers(0, 7)) == 0:
        raw += b"\xff\xfe"                                                  # not UTF-8
    path = os.path.join(folder, f"data.{'txt' if fmt == 'sst' else fmt}")
    with open(path, "wb") as f:
        f.write(raw)
    ok, res = attempt(lambda: read_labelled(path, format=fmt if fmt == "sst" else None), {"path", path})
    if fmt == "jsonl":                     # valid: UTF-8, every text and label non-empty, two classes
        labels = {str(int(o["label"])) if isinstance(o["label"], float) else str(o["label"]).strip()
                  for o in objs}
        good = raw.endswith(b"}") or not raw.endswith(b"\xfe")
        good = good and all(o["text"] and o["text"].strip() and o["label"] is not None
                            and str(o["label"]).strip() for o in objs) and len(labels) >= 2
        assert ok == good, f"jsonl {objs}: {res}"
    if ok:
        texts, labels, classes = res
        assert len(texts) == len(labels) >= 2 and len(classes) >= 2
        assert labels.dtype == np.int64 and set(labels.tolist()) <= set(range(len(classes)))
        assert all(t.strip() for t in texts) and len(set(classes)) == len(classes)


@given(st.text(max_size=30), st.sampled_from(["char", "word"]), st.booleans(), st.booleans(),
       st.integers(1, 3), st.sampled_from([None, 0, 1, 3, 5, 50]))
@sweep(200)
def test_vocab_sweep(text, level, lowercase, specials, min_freq, max_size):
    kw = {} if specials else dict(pad=None, unk=None, bos=None, eos=None)
    n_special = 4 if specials else 0
    toks = word_tokenize(text, lowercase) if level == "word" else list(text.lower() if lowercase else text)
    bad = {"max_size"} if max_size is not None and max_size < max(n_special, 1) else set()
    if not bad and not specials and not any(toks.count(t) >= min_freq for t in toks):
        bad.add("tokens")                                                  # nothing left: empty vocabulary
    ok, v = attempt(lambda: Vocab(text, level=level, lowercase=lowercase, min_freq=min_freq,
                                  max_size=max_size, **kw), bad)
    assert_failed(ok, bad)
    if not ok:
        return
    assert Vocab.from_json(json.loads(json.dumps(v.to_json()))) == v
    known = all(t in v for t in toks)
    ok, ids = attempt(lambda: v.encode(text), set() if known or specials else {"tokens"})
    if ok:
        assert ids.dtype == np.int64 and np.all((ids >= 0) & (ids < len(v)))
        if known:
            assert v.decode(ids, as_list=True) == toks
    for junk in (None, 3, b"abc", {"a": 1}):
        assert not attempt(lambda: v.encode(junk), {"tokens"})[0]
    assert not attempt(lambda: v.decode([len(v)]), {"ids"})[0]


@given(st.data())
@sweep(200)
def test_batching_sweep(data):
    seqs = data.draw(st.lists(st.lists(st.integers(-3, 9), max_size=4), max_size=4))
    bad = {"seqs"} if not seqs else set()
    ok, res = attempt(lambda: pad_sequences(seqs, pad=-7), bad)
    assert_failed(ok, bad)
    if ok:
        ids, lengths = res
        assert ids.shape == (max(map(len, seqs)), len(seqs)) and lengths.tolist() == list(map(len, seqs))
        for b, s in enumerate(seqs):
            assert ids[:len(s), b].tolist() == s and np.all(ids[len(s):, b] == -7)
    lengths = data.draw(st.lists(st.integers(-1, 5), max_size=4))
    T = data.draw(st.sampled_from([None, 0, 3, 6, -1]))
    bad = {"lengths"} if any(v < 0 for v in lengths) else set()
    bad |= {"T"} if not bad and T is not None and T < max(lengths, default=0) else set()
    ok, mask = attempt(lambda: length_mask(lengths, T), bad)
    assert_failed(ok, bad)
    if ok:
        assert mask.shape == (max(lengths, default=0) if T is None else T, len(lengths))
        assert mask.sum(axis=0).tolist() == lengths
    n, Bs, k = data.draw(st.integers(0, 30)), data.draw(st.integers(0, 4)), data.draw(st.integers(0, 6))
    bad = {"batch_size"} if Bs < 1 else {"seq_len"} if k < 1 else {"ids"} if n < Bs + 1 else set()
    ok, it = attempt(lambda: StreamBatches(np.arange(n), Bs, k), bad | {"ids"} if bad else bad)
    assert_failed(ok, bad)
    if ok:
        windows = [it.window(j) for j in range(len(it))]
        X = np.concatenate([x for x, _ in windows])                         # (L, B) lanes
        assert X.shape == ((n - 1) // Bs, Bs) and np.all(np.concatenate([y for _, y in windows]) == X + 1)


# -- model files -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(folder):
    path = os.path.join(folder, "model.rnnkit")
    rnnkit.save(MODELS["m2m"], path)
    with open(path, "rb") as f:
        return f.read()


@given(st.data())
@sweep(250)
def test_load_random_and_damaged_bytes(folder, model_file, data):
    kind = data.draw(st.sampled_from(["random", "truncate", "flip", "insert", "pickle", "zip", "length"]))
    raw = bytearray(model_file)
    if kind == "random":
        raw = bytearray(data.draw(st.binary(max_size=200)))
    elif kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "insert":
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    elif kind == "length":
        raw[:8] = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
    else:
        raw = bytearray((b"\x80\x04\x95" if kind == "pickle" else b"PK\x03\x04") + bytes(raw[3:]))
    path = os.path.join(folder, "damaged.rnnkit")
    with open(path, "wb") as f:
        f.write(bytes(raw))
    try:
        model = rnnkit.load(path)
    except FileFormatError as e:
        assert str(e).startswith(path)
        return
    assert bytes(raw) == model_file, "a damaged file loaded"
    for (_, a, _), (_, b, _) in zip(model.named_parameters(), MODELS["m2m"].named_parameters()):
        np.testing.assert_array_equal(a, b)


# -- empty sequences, non-finite input, ragged lists ---------------------------------------------------
EMPTY_SHAPES = [(0, 2), (3, 0), (0, 0)]

@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("T, B", EMPTY_SHAPES)
def test_empty_sequences_return_the_initial_state(cell, T, B):
    m = CELLS[cell](D, H, num_layers=2, bidirectional=True)
    s0 = tuple(np.full((4, B, H), 0.5, FLOATS) for _ in range(m._n_states()))
    s0 = s0 if cell == "lstm" else s0[0]
    out, final, cache = m.forward(np.zeros((T, B, D), FLOATS), s0)
    assert out.shape == (T, B, 2 * H)
    for a, b in zip(states(final), states(s0)):
        np.testing.assert_array_equal(a, b)
    dx, dinit = m.backward(np.zeros_like(out), cache, s0)
    assert dx.shape == (T, B, D)
    if T == 0:                             # no step: the final-state gradient is the initial state's
        for a, b in zip(states(dinit), states(s0)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["m2m", "o2m"])
def test_models_on_empty_sequences_count_nothing(name):
    ids = np.zeros((0, 2), np.int64)                                         # (T = 0, B)
    batch = {"v": np.zeros((2, D), FLOATS), "y": ids} if name == "o2m" else {"x": ids, "y": ids}
    loss_sum, count, metrics, _ = MODELS[name].objective(batch)
    assert (loss_sum, count, metrics["correct"]) == (0.0, 0, 0)


def _nan_input(T=6, B=3, t0=2, b0=1):
    x = np.random.default_rng(5).standard_normal((T, B, D)).astype(FLOATS)   # (T, B, D)
    x[t0, b0, 0] = np.nan
    return x, t0, b0


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_nan_input_propagates_to_the_outputs_it_reaches(cell, kernels):
    x, t0, b0 = _nan_input()
    out, state = CELLS[cell](D, H, kernels=kernels).infer(x)
    assert np.all(np.isnan(out[t0:, b0])), "every later output of that sequence depends on the NaN"
    assert np.all(np.isfinite(out[:t0])) and np.all(np.isfinite(np.delete(out, b0, axis=1)))
    assert all(np.all(np.isnan(s[:, b0])) for s in states(state))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_inf_input_gives_the_same_outputs_with_both_kernels(cell):
    x = np.random.default_rng(6).standard_normal((5, 2, D)).astype(FLOATS)   # (T, B, D)
    x[1, 0, 2], x[3, 1, 0] = np.inf, -np.inf
    a, _ = CELLS[cell](D, H, kernels="numpy").infer(x)
    b, _ = CELLS[cell](D, H, kernels="numba").infer(x)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call", [
    lambda: pad_sequences([[1, [2]]]),
    lambda: rnnkit.LSTM(D, H).forward(np.zeros((2, 2, D), FLOATS), lengths=[[1], [1, 2]]),
    lambda: losses.cross_entropy([[0.5, 1.0], [0.2]], [0, 1]),
], ids=["pad_sequences", "lengths", "logits"])
def test_ragged_lists_raise_rnnkit_errors(call):
    ok, _ = attempt(call, {"seqs", "lengths", "logits"})
    assert not ok


@pytest.mark.parametrize("state", [None, 3, [("W", np.zeros((3, 2)))]])
def test_load_state_dict_of_a_non_dict(state):
    with pytest.raises(StateDictError, match="state_dict"):
        rnnkit.Linear(3, 2).load_state_dict(state)


# -- NaN in the data of a real training run ------------------------------------------------------------
@pytest.mark.parametrize("where, kernels", [("y", "numba"), ("x", "numpy"), ("x", "numba")])
def test_nan_in_a_batch_is_skipped_or_stops_naming_the_step(tmp_path, where, kernels):
    """(With numba, a NaN in x reaches the trainer through the weight gradients X^T dA.)"""
    rng = np.random.default_rng(8)
    batches = [{"x": rng.standard_normal((5, 2, D)).astype(FLOATS),
                "y": rng.standard_normal((5, 2, 2)).astype(FLOATS)} for _ in range(4)]   # (T, B, .)
    batches[1][where][2, 1, 0] = np.nan

    def model():
        return ManyToMany(input_size=D, output_size=2, hidden_size=5, task="regress", kernels=kernels)
    m = model()
    res = fit(m, optim.Adam(m), batches, steps=4, nonfinite="skip", progress=False,
              run_dir=tmp_path / "skip", checkpoint_every=1)
    assert res.skipped == 1 and res.steps == 4
    arrays, _ = read_checkpoint(tmp_path / "skip" / "last.ckpt")
    assert all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f")
    m = model()
    with pytest.raises(NonFiniteError, match="step 2"):
        fit(m, optim.Adam(m), batches, steps=4, nonfinite="stop", progress=False,
            run_dir=tmp_path / "stop", checkpoint_every=1)
    assert read_checkpoint(tmp_path / "stop" / "last.ckpt")[1]["trainer"]["step"] == 1
