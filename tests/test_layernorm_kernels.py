"""The layer-normalised LSTM and GRU on the numba kernels (rnnkit.kernels.lnkernels, lnsequence,
rnnkit.layers.ln_steps) against the NumPy reference steps (kernels="numpy"): outputs, final
states, dX, dstate and every parameter gradient, float64 to 1e-12 and float32 to 1e-5 of the
largest magnitude, through the fused whole-sequence runners and the step loop."""
import hashlib

import numpy as np
import pytest

import rnnkit
from rnnkit import kernels as K

pytestmark = pytest.mark.skipif(not K.available(), reason="numba is not installed")

T, B, D, H = 5, 3, 4, 7
DTYPES = [np.float64, np.float32]
CASES = {  # name: (options, lengths, training mode, fused whole-sequence path expected)
    "plain": (dict(), False, True, True),
    "stacked_bidirectional": (dict(num_layers=2, bidirectional=True), False, True, True),
    "lengths": (dict(num_layers=2, bidirectional=True), True, True, False),
    "recurrent_dropout": (dict(recurrent_dropout=0.3), False, True, False),
    "zoneout": (dict(zoneout=0.2), True, True, False),
    "zoneout_eval": (dict(zoneout=0.2), False, False, False),
    "input_dropout_weight_drop": (dict(input_dropout=0.3, weight_drop=0.3, learn_init=True), False, True,
                                  True),
    "everything": (dict(num_layers=2, bidirectional=True, input_dropout=0.2, recurrent_dropout=0.2,
                        weight_drop=0.2, zoneout=0.2), True, True, False),
}
LSTM_CASES = {
    "peepholes": (dict(peepholes=True, num_layers=2), False, True, True),
    "peepholes_lengths": (dict(peepholes=True, bidirectional=True), True, True, False),
    "projection": (dict(proj_size=3, num_layers=2), False, True, False),
    "zoneout_c": (dict(zoneout=0.1, zoneout_c=0.4), False, True, False),
}


def close(a, b, dtype, what):
    """float64: within 1e-12 of the larger magnitude; float32: within 1e-5."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    scale = max(np.abs(b).max(initial=0.0), 1e-30)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(a - b).max(initial=0.0) <= tol * scale, f"{what}: max diff {np.abs(a - b).max():.3g}"


def build(cls, options, kernels, dtype, train):
    m = cls(D, H, layer_norm=True, dtype=dtype, seed=4, kernels=kernels, **options)
    m.train(train)
    rng = np.random.default_rng(1)
    for name, p, _ in m.named_parameters():       # gains around 1, shifts and weights away from 0
        gain = name.split(".")[-1] in ("ln_x_g", "ln_h_g", "ln_c_g")
        p[...] = rng.uniform(0.5, 1.5, p.shape) if gain else 0.6 * rng.standard_normal(p.shape)
    return m


def run(cls, options, lengths, train, kernels, dtype):
    """Forward and backward with fixed masks -> (named results, the layer, its cache)."""
    m = build(cls, options, kernels, dtype, train)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    n, H_out = m.num_layers * m.dirs, m.proj_size or H
    shapes = [(n, B, H_out)] + ([(n, B, H)] if m.mode == "lstm" else [])
    state = None if m.init_names else tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    lens = np.array([5, 2, 4]) if lengths else None
    m.rng = np.random.default_rng(99)             # the same masks for both paths
    out, fin, cache = m.forward(x, state if state is None or m.mode == "lstm" else state[0], lens)
    fin = fin if isinstance(fin, tuple) else (fin,)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dfin = tuple(rng.standard_normal(s.shape).astype(dtype) for s in fin)
    m.zero_grad()
    dx, dstate = m.backward(dout, cache, dfin if m.mode == "lstm" else dfin[0])
    dstate = dstate if isinstance(dstate, tuple) else (dstate,)
    results = dict(out=out, dx=dx)
    results.update({f"state[{i}]": s for i, s in enumerate(fin)})
    if state is not None:
        results.update({f"dstate[{i}]": d for i, d in enumerate(dstate)})
    results.update({f"d{name}": g.copy() for name, _, g in m.named_parameters()})
    return results, m, cache


def check_paths(cls, case, dtype):
    options, lengths, train, fused = case
    fast, m, cache = run(cls, options, lengths, train, "numba", dtype)
    ref, _, _ = run(cls, options, lengths, train, "numpy", dtype)
    assert set(fast) == set(ref)
    for what in ref:
        close(fast[what], ref[what], dtype, what)
    assert all(("fused" in c) == fused for c in cache["units"])
    assert {"dl0.ln_h_g", "dl0.ln_x_g"} <= set(fast)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES) + list(LSTM_CASES))
def test_lstm_kernel_path_equals_numpy_path(case, dtype):
    check_paths(rnnkit.LSTM, {**CASES, **LSTM_CASES}[case], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_gru_kernel_path_equals_numpy_path(case, dtype):
    check_paths(rnnkit.GRU, CASES[case], dtype)


@pytest.mark.parametrize("product", ["blas", "packed", "packed-2-threads"])
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
@pytest.mark.parametrize("dtype", DTYPES)
def test_blas_step_loop_equals_numpy_path(cls, dtype, product, monkeypatch):
    """Steps above sequence.SMALL_WORK take the Python loop with BLAS or packed products, not the
    numba loop."""
    from rnnkit.kernels import packed, sequence
    monkeypatch.setattr(sequence, "SMALL_WORK", 0)
    monkeypatch.setattr(sequence, "PACK_MIN_STEPS", 1 << 60 if product == "blas" else 0)
    monkeypatch.setattr(packed, "threads", lambda: 2 if product == "packed-2-threads" else 1)
    check_paths(cls, CASES["stacked_bidirectional"], dtype)
    if cls is rnnkit.LSTM:
        check_paths(cls, LSTM_CASES["peepholes"], dtype)


@pytest.mark.parametrize("cls, options", [(rnnkit.LSTM, dict(peepholes=True)), (rnnkit.GRU, dict())])
def test_fused_path_gradients(cls, options):
    """Finite differences through the fused whole-sequence runners themselves."""
    from rnnkit.gradcheck import check_module
    m = build(cls, dict(options, num_layers=2, bidirectional=True), "numba", np.float64, False)
    rng = np.random.default_rng(6)
    inputs = dict(x=rng.standard_normal((T, B, D)), h0=rng.standard_normal((4, B, H)))
    if cls is rnnkit.LSTM:
        inputs["c0"] = rng.standard_normal((4, B, H))

    def forward(m, x, h0, c0=None):
        out, fin, cache = m.forward(x, h0 if c0 is None else (h0, c0))
        assert all("fused" in c for c in cache["units"])
        return (out, *(fin if isinstance(fin, tuple) else (fin,)), cache)

    def backward(m, d, cache):
        dx, ds = m.backward(d[0], cache, d[1] if len(d) == 2 else d[1:])
        return dict(zip(("x", "h0", "c0"), (dx, *(ds if isinstance(ds, tuple) else (ds,)))))

    errs = check_module(m, forward, backward, inputs, rtol=1e-5, atol=1e-8, max_checks=6)
    assert set(errs) == set(inputs) | {n for n, _, _ in m.named_parameters()}


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
@pytest.mark.parametrize("small_work", [None, 0])
def test_inference_without_cache_equals_the_cached_forward(cls, small_work, monkeypatch):
    from rnnkit.kernels import sequence
    if small_work is not None:
        monkeypatch.setattr(sequence, "SMALL_WORK", small_work)
    m = build(cls, dict(num_layers=2), "numba", np.float32, False)
    x = np.random.default_rng(3).standard_normal((T, B, D)).astype(np.float32)
    out, fin, _ = m.forward(x)
    out2, fin2 = m.infer(x)
    np.testing.assert_array_equal(out, out2)
    for a, b in zip(fin if isinstance(fin, tuple) else (fin,), fin2 if isinstance(fin2, tuple) else (fin2,)):
        np.testing.assert_array_equal(a, b)


def test_the_numpy_reference_is_chosen_by_the_environment(monkeypatch):
    from rnnkit.layers.ln_steps import LNGRUKernelSteps, LNLSTMKernelSteps
    from rnnkit.layers.variant_steps import GRUVariantSteps, LNSteps
    for cls, fast, ref in ((rnnkit.LSTM, LNLSTMKernelSteps, LNSteps), (rnnkit.GRU, LNGRUKernelSteps,
                                                                       GRUVariantSteps)):
        unit = cls(D, H, layer_norm=True).units()[0][2]
        assert isinstance(unit.steps, fast) and unit.fused is not None
        monkeypatch.setenv("RNNKIT_KERNELS", "numpy")
        unit = cls(D, H, layer_norm=True).units()[0][2]
        assert isinstance(unit.steps, ref) and unit.fused is None
        monkeypatch.delenv("RNNKIT_KERNELS")


def test_numba_cache_stamps_follow_the_kernel_sources():
    """numba's cache keys on a file's own text: a kernel file carries the hash of the files it calls."""
    from rnnkit.kernels import cellkernels, lnkernels, lnsequence, seqloops

    def sha(module):
        with open(module.__file__, "rb") as f:
            return hashlib.sha256(f.read().replace(b"\r\n", b"\n")).hexdigest()[:16]

    for holder, name, source in ((lnkernels, "CELLKERNELS_SHA", cellkernels),
                                 (lnsequence, "LNKERNELS_SHA", lnkernels),
                                 (lnsequence, "SEQLOOPS_SHA", seqloops)):
        assert getattr(holder, name) == sha(source), (
            f"{source.__name__} changed: set {holder.__name__}.{name} = {sha(source)!r} "
            f"so that numba recompiles the kernels cached from the old text")
