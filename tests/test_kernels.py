"""The numba kernels against the readable cells, and the fused whole-sequence path against the
reference unroll: every kernel, float32 and float64, every option the fused path takes."""
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit import cells
from rnnkit import kernels as K
from rnnkit.kernels import fastmath, packed, seqloops, sequence, threaded

pytestmark = pytest.mark.skipif(not K.available(), reason="numba is not installed")

B, H = 3, 37                                       # H not a multiple of the vector width


def close(a, b, dtype, what=""):
    """float64: equal to rounding; float32: within 1e-5 of the larger magnitude."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    scale = max(np.abs(b).max(), 1e-30)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(a - b).max() <= tol * scale, f"{what}: max diff {np.abs(a - b).max():.3g}"


def randn(rng, shape, dtype, scale=1.5):
    return (scale * rng.standard_normal(shape)).astype(dtype)


DTYPES = [np.float32, np.float64]


# -- fast math ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_fastmath_accuracy(name):
    from numba import njit

    fn = getattr(fastmath, name)

    @njit(**dict(fastmath.JIT_OPTIONS, cache=False))
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    x64 = np.concatenate([np.linspace(-40, 40, 40001), [0.0, 1e-30, -1e-30, np.inf, -np.inf]])
    ref = np.tanh(x64) if name == "tanh" else 0.5 * (1 + np.tanh(x64 / 2))
    for dtype, tol in ((np.float32, 5e-7), (np.float64, 4e-16)):
        x = x64.astype(dtype)
        out = np.empty_like(x)
        apply(x, out)
        assert out.dtype == dtype and np.all(np.isfinite(out))
        assert np.abs(out - ref).max() <= tol, dtype
    small = np.float32([1e-3, -2e-5, 3e-8])        # tanh keeps relative accuracy near 0
    out = np.empty_like(small)
    apply(small, out)
    if name == "tanh":
        np.testing.assert_allclose(out, np.tanh(small.astype(np.float64)), rtol=1e-6)


# -- kernel == cell -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nl", ["tanh", "relu", "sigmoid"])
def test_rnn_kernels(dtype, nl):
    rng = np.random.default_rng(0)
    a, dh = randn(rng, (B, H), dtype), randn(rng, (B, H), dtype)
    h, cache = K.rnn_cell(a, nl)
    h_ref, cache_ref = cells.rnn_cell(a, nl)
    close(h, h_ref, dtype, "h")
    close(K.rnn_cell_backward(dh, cache, nl), cells.rnn_cell_backward(dh, cache_ref, nl), dtype, "da")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_kernels(dtype, peepholes):
    rng = np.random.default_rng(1)
    a, c_prev = randn(rng, (B, 4 * H), dtype), randn(rng, (B, H), dtype)
    dm, dc = randn(rng, (B, H), dtype), randn(rng, (B, H), dtype)
    peep = randn(rng, (3, H), dtype, 0.5) if peepholes else None
    a_before = a.copy()
    m, c, cache = K.lstm_cell(a, c_prev, peep)
    m_ref, c_ref, cache_ref = cells.lstm_cell(a, c_prev, peep)
    assert np.array_equal(a, a_before)             # the cell signature leaves its input alone
    close(m, m_ref, dtype, "m")
    close(c, c_ref, dtype, "c")
    got = K.lstm_cell_backward(dm, dc, cache, peep)
    want = cells.lstm_cell_backward(dm, dc, cache_ref, peep)
    for name, g, w in zip(("da", "dc_prev", "dpeep"), got, want):
        if w is None:
            assert g is None
        else:
            close(g, w, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_kernels(dtype):
    rng = np.random.default_rng(2)
    ax, ah, h_prev = randn(rng, (B, 3 * H), dtype), randn(rng, (B, 3 * H), dtype), randn(rng, (B, H), dtype)
    dh = randn(rng, (B, H), dtype)
    h, cache = K.gru_cell(ax, ah, h_prev)
    h_ref, cache_ref = cells.gru_cell(ax, ah, h_prev)
    close(h, h_ref, dtype, "h")
    for name, g, w in zip(("dax", "dah", "dh_prev"), K.gru_cell_backward(dh, cache),
                          cells.gru_cell_backward(dh, cache_ref)):
        close(g, w, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cho_gru_kernels(dtype):
    rng = np.random.default_rng(3)
    a_rz, ax_n, ah_n = randn(rng, (B, 2 * H), dtype), randn(rng, (B, H), dtype), randn(rng, (B, H), dtype)
    h_prev, dh, drh = (randn(rng, (B, H), dtype) for _ in range(3))
    for g, w in zip(K.gru_rz(a_rz), cells.gru_rz(a_rz)):
        close(g, w, dtype, "r, z")
    r, z = cells.gru_rz(a_rz)
    for g, w in zip(K.gru_cho_cell(ax_n, ah_n, z, h_prev), cells.gru_cho_cell(ax_n, ah_n, z, h_prev)):
        close(g, w, dtype, "h, n")
    n = np.tanh(ax_n + ah_n)
    close(K.gru_cho_backward_n(dh, z, n), cells.gru_cho_backward_n(dh, z, n), dtype, "da_n")
    for g, w in zip(K.gru_cho_backward_rz(dh, drh, r, z, n, h_prev),
                    cells.gru_cho_backward_rz(dh, drh, r, z, n, h_prev)):
        close(g, w, dtype, "da_rz, dh_prev")


@pytest.mark.parametrize("shape", [(1, 5, 7), (3, 8, 33), (9, 13, 16)])
def test_seqloops_matmul(shape):
    Bm, Km, N = shape
    rng = np.random.default_rng(4)
    for dtype in DTYPES:
        x, W = randn(rng, (Bm, Km), dtype), randn(rng, (Km, N), dtype)
        out = np.full((Bm, N), np.nan, dtype)
        seqloops.matmul(x, W, out)
        close(out, x @ W, dtype, "x W")


# -- the fused whole-sequence path == the reference unroll ---------------------------------------------
LAYERS = [("rnn", dict(nonlinearity="tanh")), ("rnn", dict(nonlinearity="relu")),
          ("rnn", dict(nonlinearity="sigmoid")), ("lstm", {}), ("lstm", dict(peepholes=True)),
          ("gru", {})]


def _unit(mode, kw, dtype, kernels, reverse=False, D=5, Hs=6):
    from rnnkit.layers.recurrent import Recurrent
    return Recurrent(mode, D, Hs, reverse=reverse, dtype=dtype, kernels=kernels,
                     rng=np.random.default_rng(7), **kw)


def _run(unit, x, state, G, Gs):
    """Forward and backward once: outputs, final state, dx, d(initial state), every gradient."""
    out, st, cache = unit.forward(x, state)
    unit.zero_grad()
    dx, dst = unit.backward(G, cache, Gs)
    return [out, *st, dx, *dst] + [unit.grads[k].copy() for k in sorted(unit.grads)]


def _inputs(unit, T, Bs, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = randn(rng, (T, Bs, unit.input_size), dtype, 1.0)
    shapes = unit.state_shapes(Bs)
    state = tuple(randn(rng, s, dtype, 0.5) for s in shapes)
    G = randn(rng, (T, Bs, unit.output_size), dtype, 1.0)
    Gs = tuple(randn(rng, s, dtype, 1.0) for s in shapes)
    return x, state, G, Gs


def _loop(monkeypatch, loop):
    """Choose the fused layer's time loop: inside numba, or in Python with BLAS, with packed W_h on
    one thread, or with packed W_h and the step kernels split over two threads (the last two also
    take X W_x and dA W_x^T through packed.matmul_rows)."""
    monkeypatch.setattr(sequence, "SMALL_WORK", 1 << 60 if loop == "numba-loop" else 0)
    monkeypatch.setattr(sequence, "PACK_MIN_STEPS", 1 << 60 if loop == "blas-loop" else 0)
    monkeypatch.setattr(sequence, "PACK_MIN_ROWS", 1 << 60 if loop == "blas-loop" else 0)
    monkeypatch.setattr(packed, "threads", lambda: 2 if loop == "threaded-loop" else 1)


LOOPS = ["numba-loop", "blas-loop", "packed-loop", "threaded-loop"]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_fused_equals_reference_unroll(monkeypatch, layer, dtype, reverse, loop):
    mode, kw = LAYERS[layer]
    _loop(monkeypatch, loop)
    fast = _unit(mode, kw, dtype, "numba", reverse)
    ref = _unit(mode, kw, dtype, "numba", reverse)
    ref.fused = None                                 # the per-step reference loop, same kernels
    assert fast.fused is not None
    args = _inputs(fast, 7, 4, dtype)
    for i, (a, b) in enumerate(zip(_run(fast, *args), _run(ref, *args))):
        close(a, b, dtype, f"item {i}")
    out, state = fast.infer(args[0], args[1])        # inference keeps no cache, same numbers
    close(out, _run(ref, *args)[0], dtype, "infer out")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_fast_float32_within_1e4_of_float64_reference(monkeypatch, layer, loop):
    """The whole fast path (approximate tanh/sigmoid, fused loops) over 60 steps stays within 1e-4."""
    mode, kw = LAYERS[layer]
    _loop(monkeypatch, loop)
    fast = _unit(mode, kw, np.float32, "numba", D=16, Hs=24)
    ref = _unit(mode, kw, np.float64, "numpy", D=16, Hs=24)
    args = _inputs(ref, 60, 5, np.float64)
    got = _run(fast, *(tuple(a.astype(np.float32) for a in v) if isinstance(v, tuple)
                       else v.astype(np.float32) for v in args))
    for i, (a, b) in enumerate(zip(got, _run(ref, *args))):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 1e-4 * scale, f"item {i}"


def test_fused_path_is_chosen_only_where_it_applies():
    assert _unit("lstm", {}, np.float32, "numba").fused is not None
    assert _unit("lstm", dict(proj_size=3), np.float32, "numba").fused is None
    assert _unit("gru", dict(reset_after=False), np.float32, "numba").fused is None
    assert _unit("gru", {}, np.float32, "numpy").fused is None


def test_lengths_take_the_reference_unroll():
    unit = _unit("lstm", {}, np.float64, "numba")
    x, state, G, Gs = _inputs(unit, 6, 3, np.float64)
    out, _, cache = unit.forward(x, state, lengths=np.array([6, 2, 4]))
    assert "fused" not in cache and np.all(out[2:, 1] == 0)
    _, _, cache = unit.forward(x, state)
    assert "fused" in cache


def test_second_process_loads_compiled_kernels_from_cache():
    """numba's cache=True: after one run, a new process compiles nothing."""
    code = ("import numpy as np, rnnkit\n"
            "from rnnkit.kernels import cellkernels, seqloops\n"
            "for cls in (rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU):\n"
            "    for B in (1, 64):\n"
            "        m = cls(8, 16)\n"
            "        out, _, cache = m.forward(np.ones((3, B, 8), np.float32))\n"
            "        m.backward(np.ones_like(out), cache)\n"
            "ds = [d for mod in (cellkernels, seqloops) for d in vars(mod).values() if hasattr(d, 'stats')]\n"
            "print(sum(sum(d.stats.cache_misses.values()) for d in ds))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           timeout=300) for _ in range(2)]
    assert runs[1].returncode == 0, runs[1].stderr
    assert runs[1].stdout.split()[-1] == "0", runs[1].stdout


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("T,Bs", [(0, 3), (3, 0), (1, 1)])
def test_empty_and_single_step_sequences(kernels, T, Bs):
    for mode, kw in LAYERS + [("lstm", dict(proj_size=3)), ("gru", dict(reset_after=False))]:
        unit = _unit(mode, kw, np.float64, kernels)
        x, state, G, Gs = _inputs(unit, T, Bs, np.float64)
        out, st, cache = unit.forward(x, state)
        dx, dst = unit.backward(G, cache, Gs)
        assert out.shape == (T, Bs, unit.output_size) and dx.shape == x.shape
        if T == 0:                                   # nothing runs: the state passes through
            for a, b in zip(st + dst, state + Gs):
                assert np.array_equal(a, b)


def test_numba_cache_stamps_follow_the_kernel_sources():
    """numba's cache keys on a file's own text: a kernel file carries the hash of the file it calls."""
    import hashlib
    from rnnkit.kernels import cellkernels

    def sha(module):
        with open(module.__file__, "rb") as f:
            return hashlib.sha256(f.read().replace(b"\r\n", b"\n")).hexdigest()[:16]

    for holder, name, source in ((cellkernels, "FASTMATH_SHA", fastmath),
                                 (seqloops, "CELLKERNELS_SHA", cellkernels),
                                 (threaded, "CELLKERNELS_SHA", cellkernels)):
        assert getattr(holder, name) == sha(source), (
            f"{source.__name__} changed: set {holder.__name__}.{name} = {sha(source)!r} "
            f"so that numba recompiles the kernels cached from the old text")
