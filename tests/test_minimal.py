"""minGRU and minLSTM: finite differences of the log-space scan's backward (x, h0, every parameter),
scan == step-by-step, the paper's equations as a plain loop, lengths, long sequences, argument
errors, and a small learning task (the adding problem)."""
import numpy as np
import pytest

from rnnkit.data.synthetic import make_adding
from rnnkit.errors import DTypeError, InputError, ShapeError
from rnnkit.gradcheck import check_module
from rnnkit.layers import Linear, Module
from rnnkit.layers.minimal import MinGRU, MinLSTM, log_scan, reverse_scan
from rnnkit.optim import Adam

T, B, D, H = 5, 3, 3, 4
CLASSES = [MinGRU, MinLSTM]


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def g(p):
    return np.where(p >= 0, p + 0.5, sigmoid(p))


def paper_loop(m, x, h0, lengths):
    """The paper's sequential equations, per layer, per sequence, per step, with per-gate weights."""
    inp, finals = x, []
    for l in range(m.num_layers):
        W, b = m.children[f"l{l}"].params["W_x"], m.children[f"l{l}"].params["b_x"]
        lin = [(W[:, j * H:(j + 1) * H], b[j * H:(j + 1) * H]) for j in range(W.shape[1] // H)]
        out, h_n = np.zeros((T, B, H)), h0[l].copy()
        for n in range(B):
            h = h0[l, n]
            for t in range(lengths[n]):
                k = [inp[t, n] @ W_j + b_j for W_j, b_j in lin]
                if isinstance(m, MinGRU):
                    z, h_tilde = sigmoid(k[0]), g(k[1])
                    h = (1 - z) * h + z * h_tilde
                else:
                    i, f, h_tilde = sigmoid(k[0]), sigmoid(k[1]), g(k[2])
                    h = f / (f + i) * h + i / (f + i) * h_tilde
                out[t, n] = h
            h_n[n] = h
        inp = out
        finals.append(h_n)
    return inp, np.stack(finals)


def data(seed=0, num_layers=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, D)), rng.uniform(0.05, 2.0, (num_layers, B, H))


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("num_layers,lengths", [(1, None), (2, [5, 2, 0]), (2, [3, 5, 1])])
def test_gradients(cls, num_layers, lengths, kernels):
    m = cls(D, H, num_layers=num_layers, dtype=np.float64, seed=1, kernels=kernels)
    x, h0 = data(1, num_layers)
    errs = check_module(m, lambda m, x, h0: m.forward(x, h0, lengths),
                        lambda m, d, c: dict(zip(("x", "h0"), m.backward(d[0], c, d[1]))),
                        {"x": x, "h0": h0}, rtol=1e-5, atol=1e-8)
    assert set(errs) == {"x", "h0"} | {f"l{l}.{p}" for l in range(num_layers) for p in ("W_x", "b_x")}


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_zero_state_saturated_batch_first(cls, kernels):
    m = cls(D, H, num_layers=2, batch_first=True, dtype=np.float64, seed=2, kernels=kernels)
    for _, p, _ in m.named_parameters():
        p *= 4                                     # gates near 0 and 1, g on both branches
    x = np.random.default_rng(2).standard_normal((B, T, D))
    check_module(m, lambda m, x: m.forward(x, None, [4, 5, 2]),
                 lambda m, d, c: {"x": m.backward(d[0], c, d[1])[0]}, {"x": x}, rtol=1e-5, atol=1e-8)


def test_reverse_scan_is_the_transposed_recurrence():
    rng = np.random.default_rng(3)
    la, dh = -rng.uniform(0.01, 3, (7, 2, 3)), rng.standard_normal((7, 2, 3))
    _, a_star = log_scan(la, np.zeros_like(la), np.zeros((2, 3)))
    want, acc = np.zeros_like(dh), np.zeros((2, 3))
    for t in reversed(range(7)):                   # g_t = dh_t + a_{t+1} g_{t+1}
        acc = dh[t] + (np.exp(la[t + 1]) * acc if t < 6 else 0)
        want[t] = acc
    np.testing.assert_allclose(reverse_scan(dh, a_star), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("zero_state", [False, True])
def test_scan_equals_step_by_step(cls, zero_state):
    m = cls(D, H, num_layers=2, dtype=np.float64, seed=3)
    x, h0 = data(3)
    h0 = None if zero_state else h0
    out, h_n, _ = m.forward(x, h0)
    h, steps = h0, []
    for t in range(T):
        h = m.step(x[t], h)
        steps.append(h[-1])
    np.testing.assert_allclose(np.stack(steps), out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, h_n, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_layer_equals_paper_loop_with_lengths(cls):
    m = cls(D, H, num_layers=2, dtype=np.float64, seed=4)
    x, h0 = data(4)
    lengths = [5, 2, 0]
    out, h_n, _ = m.forward(x, h0, lengths)
    want_out, want_h = paper_loop(m, x, h0, lengths)
    np.testing.assert_allclose(out, want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n, want_h, rtol=1e-10, atol=1e-12)
    assert np.all(out[2:, 1] == 0) and np.all(out[:, 2] == 0)      # zeros past the end
    np.testing.assert_array_equal(h_n[:, 2], h0[:, 2])             # length 0 keeps h0
    out2, state2 = m(x, h0, lengths)                               # inference path
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(state2, h_n)


@pytest.mark.parametrize("cls", CLASSES)
def test_batch_first_matches_time_major(cls):
    x, h0 = data(5)
    tm, bf = cls(D, H, num_layers=2, dtype=np.float64), cls(D, H, num_layers=2, batch_first=True,
                                                            dtype=np.float64)
    out, h_n, c = tm.forward(x, h0, [1, 5, 3])
    out_bf, h_bf, c_bf = bf.forward(x.transpose(1, 0, 2), h0, [1, 5, 3])
    np.testing.assert_array_equal(out_bf, out.transpose(1, 0, 2))
    np.testing.assert_array_equal(h_bf, h_n)
    G = np.random.default_rng(5).standard_normal(out.shape)
    dx, dh0 = tm.backward(G, c)
    dx_bf, dh0_bf = bf.backward(G.transpose(1, 0, 2).copy(), c_bf)
    np.testing.assert_allclose(dx_bf, dx.transpose(1, 0, 2), rtol=1e-12)
    np.testing.assert_allclose(dh0_bf, dh0, rtol=1e-12)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("cls", CLASSES)
def test_long_sequences_stay_finite_and_accurate_in_float32(cls, kernels):
    rng = np.random.default_rng(6)
    m64, m32 = cls(D, 8, num_layers=2, dtype=np.float64, kernels=kernels), cls(D, 8, num_layers=2,
                                                                               kernels=kernels)
    m64.load_state_dict({k: 3 * v for k, v in m64.state_dict().items()})  # strongly gated
    m32.load_state_dict(m64.state_dict())
    x, G = rng.standard_normal((2000, 2, D)), rng.standard_normal((2000, 2, 8))
    out64, h64, c64 = m64.forward(x)
    out32, h32, c32 = m32.forward(x.astype(np.float32))
    dx64, dh64 = m64.backward(G, c64)
    dx32, dh32 = m32.backward(G.astype(np.float32), c32)
    assert out32.dtype == dx32.dtype == h32.dtype == np.float32
    for a in (out32, h32, dx32, dh32):
        assert np.all(np.isfinite(a))
    assert np.all(out64 > 0)                       # log space: every state is positive
    unit = m64.units()[0]                          # a* is far below exp's range: the scan needs logs
    k = x @ unit.params["W_x"] + unit.params["b_x"]
    assert unit.log_scan_forward(k, np.zeros((2, 8)), None)[1]["a_star"].min() < -500
    assert np.abs(out32 - out64).max() < 1e-5 * np.abs(out64).max()
    assert np.abs(dx32 - dx64).max() < 1e-4 * np.abs(dx64).max()
    for _, p, gr in m32.named_parameters():
        assert np.all(np.isfinite(gr))


@pytest.mark.parametrize("cls", CLASSES)
def test_argument_errors(cls):
    m = cls(D, H, num_layers=2)
    x = np.zeros((T, B, D), np.float32)
    with pytest.raises(InputError, match="state"):
        m.forward(x, -np.ones((2, B, H), np.float32))
    with pytest.raises(InputError, match="NaN"):
        m.forward(x, np.full((2, B, H), np.nan, np.float32))
    with pytest.raises(ShapeError, match="state"):
        m.forward(x, np.ones((1, B, H), np.float32))
    with pytest.raises(ShapeError, match="input_size"):
        m.forward(np.zeros((T, B, D + 1), np.float32))
    with pytest.raises(ShapeError, match="time step"):
        m.forward(np.zeros((0, B, D), np.float32))
    with pytest.raises(DTypeError, match="x"):
        m.forward(x.astype(np.float64))
    with pytest.raises(InputError, match="lengths"):
        m.forward(x, None, [T + 1, 1, 1])
    with pytest.raises(InputError, match="h"):
        m.step(x[0], -np.ones((2, B, H), np.float32))
    with pytest.raises(InputError, match="num_layers"):
        cls(D, H, num_layers=0)
    _, _, cache = m.forward(x)
    with pytest.raises(ShapeError, match="dout"):
        m.backward(np.zeros((T, B, H + 1), np.float32), cache)


@pytest.mark.parametrize("cls", CLASSES)
def test_learns_the_adding_problem(cls):
    net = Module()
    rnn = net.add_child("rnn", cls(2, 8, seed=0))
    out = net.add_child("out", Linear(8, 1, seed=1))
    opt = Adam(net, lr=0.03)
    for it in range(300):
        x, y = make_adding(32, T=50, seed=it + 1)
        net.zero_grad()
        h, _, cache = rnn.forward(x)
        p, out_cache = out.forward(h[-1])
        dh = np.zeros_like(h)
        dh[-1] = out.backward(2 * (p - y) / p.size, out_cache)
        rnn.backward(dh, cache)
        opt.step()
    x, y = make_adding(500, T=50, seed=10**6)
    mse = float(np.mean((out(rnn(x)[0][-1]) - y) ** 2))
    assert mse < 0.05, mse                         # predicting the mean gives ~0.167
