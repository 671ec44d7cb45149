"""minGRU / minLSTM: the numba scan (rnnkit.kernels.scan) against the NumPy log-space reference
(rnnkit.layers.minimal): outputs, h_n, dx, dh0 and every parameter gradient, float32 and float64."""
import numpy as np
import pytest

from rnnkit import kernels as K
from rnnkit.layers.minimal import MinGRU, MinLSTM

pytestmark = pytest.mark.skipif(not K.available(), reason="numba is not installed")

T, B, D, H = 9, 4, 5, 37                           # H not a multiple of the vector width
CLASSES = [MinGRU, MinLSTM]
DTYPES = [np.float32, np.float64]


def close(a, b, dtype, what):
    """float64: equal to rounding; float32: within 1e-5 of the larger magnitude."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    scale = max(np.abs(b).max(), 1e-30)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(a - b).max() <= tol * scale, f"{what}: max diff {np.abs(a - b).max():.3g} of {scale:.3g}"


def pair(cls, dtype, num_layers, scale=1.0, batch_first=False):
    """The same layer twice: numba scan, NumPy reference."""
    fast, ref = (cls(D, H, num_layers=num_layers, batch_first=batch_first, dtype=dtype, seed=7,
                     kernels=k) for k in ("numba", "numpy"))
    state = {n: scale * v for n, v in fast.state_dict().items()}
    for m in (fast, ref):
        m.load_state_dict(state)
    return fast, ref


def run(m, x, h0, lengths, dout, dstate):
    m.zero_grad()
    out, h_n, cache = m.forward(x, h0, lengths)
    dx, dh0 = m.backward(dout, cache, dstate)
    return dict(out=out, h_n=h_n, dx=dx, dh0=dh0, **{n: g for n, _, g in m.named_parameters()})


def inputs(dtype, num_layers, zero_state=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = None if zero_state else rng.uniform(0.05, 2.0, (num_layers, B, H)).astype(dtype)
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = rng.standard_normal((num_layers, B, H)).astype(dtype)
    return x, h0, dout, dstate


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("num_layers,lengths", [(1, None), (2, None), (1, [9, 3, 0, 5]),
                                                (2, [4, 9, 1, 0])])
def test_kernel_equals_reference(cls, dtype, num_layers, lengths):
    fast, ref = pair(cls, dtype, num_layers)
    args = inputs(dtype, num_layers, seed=num_layers)
    got, want = run(fast, *args[:2], lengths, *args[2:]), run(ref, *args[:2], lengths, *args[2:])
    assert got.keys() == want.keys() and len(got) == 4 + 2 * num_layers
    for name in want:
        assert got[name].dtype == dtype, name
        close(got[name], want[name], dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", CLASSES)
def test_kernel_equals_reference_saturated_zero_state_batch_first(cls, dtype):
    fast, ref = pair(cls, dtype, 2, scale=4.0, batch_first=True)   # gates near 0 and 1, g's two branches
    x, _, dout, dstate = inputs(dtype, 2, zero_state=True, seed=3)
    x, dout, lengths = x.transpose(1, 0, 2).copy(), dout.transpose(1, 0, 2).copy(), [9, 2, 5, 9]
    got, want = run(fast, x, None, lengths, dout, dstate), run(ref, x, None, lengths, dout, dstate)
    for name in want:
        close(got[name], want[name], dtype, name)


@pytest.mark.parametrize("cls", CLASSES)
def test_padded_steps_carry_the_state_exactly(cls):
    fast, _ = pair(cls, np.float32, 2)
    x, h0, _, _ = inputs(np.float32, 2, seed=4)
    out, h_n, cache = fast.forward(x, h0, [0, 3, 9, 1])
    np.testing.assert_array_equal(h_n[:, 0], h0[:, 0])             # length 0 keeps h0, bit for bit
    assert np.all(out[:, 0] == 0) and np.all(out[3:, 1] == 0) and np.all(out[1:, 3] == 0)
    h = cache["units"][0]["h"]                                     # the unit's carried states
    np.testing.assert_array_equal(h[-1, 1], h[2, 1])


def test_inference_path_equals_training_path():
    fast, _ = pair(MinLSTM, np.float32, 2)
    x, h0, _, _ = inputs(np.float32, 2, seed=5)
    out, h_n, _ = fast.forward(x, h0, [9, 2, 0, 4])
    out2, h_n2 = fast(x, h0, [9, 2, 0, 4])
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(h_n2, h_n)


def test_kernel_choice(monkeypatch):
    monkeypatch.delenv("RNNKIT_KERNELS", raising=False)
    assert MinGRU(D, H).units()[0].scan is K.scan
    assert MinGRU(D, H, kernels="numpy").units()[0].scan is None
    monkeypatch.setenv("RNNKIT_KERNELS", "numpy")
    assert MinLSTM(D, H).units()[0].scan is None
    assert MinLSTM(D, H, kernels="numba").units()[0].scan is K.scan


@pytest.mark.parametrize("cls", CLASSES)
def test_kernel_keeps_float64_precision_for_extreme_gates(cls):
    """|k| in the hundreds: the float32 layer's outputs equal a float64 loop on the same k to rounding."""
    fast, _ = pair(cls, np.float32, 1, scale=100.0)
    x, h0, _, _ = inputs(np.float32, 1, seed=6)
    out, _, cache = fast.forward(x, h0)
    k = cache["units"][0]["k"].astype(np.float64)                  # (T, B, G*H)
    assert np.abs(k).max() > 200
    sig = lambda v: 1 / (1 + np.exp(-v))
    h, want = h0[0].astype(np.float64), np.empty((T, B, H))
    for t in range(T):
        blocks = np.split(k[t], k.shape[-1] // H, axis=-1)
        h_tilde = np.where(blocks[-1] >= 0, blocks[-1] + 0.5, sig(blocks[-1]))
        if cls is MinGRU:
            a, b = sig(-blocks[0]), sig(blocks[0]) * h_tilde          # 1 - z without cancellation
        else:
            i, f = sig(blocks[0]), sig(blocks[1])
            a, b = f / (f + i), i / (f + i) * h_tilde
        want[t] = h = a * h + b
    np.testing.assert_allclose(out, want, rtol=3e-7, atol=1e-37)   # below float32's range: 0
