"""Options with no PyTorch counterpart (peepholes, Cho's GRU) against their equations written out in NumPy,
and the unrolled layers against a manual loop over the readable cells."""
import numpy as np
import pytest

import rnnkit
from rnnkit import cells

T, B, D, H = 5, 3, 4, 6


def sig(a):
    return 1 / (1 + np.exp(-a))


def unit(m, k=0, d=0):
    return m.children[f"l{k}" + ("_reverse" if d else "")].params


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_peephole_lstm_equations(kernels):
    rng = np.random.default_rng(0)
    m = rnnkit.LSTM(D, H, peepholes=True, dtype=np.float64, kernels=kernels, seed=2)
    P = unit(m)
    x = rng.standard_normal((T, B, D))
    h, c = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    out, (hn, cn), _ = m.forward(x, (h[None], c[None]))
    Wxi, Wxf, Wxg, Wxo = np.split(P["W_x"], 4, axis=1)
    Whi, Whf, Whg, Who = np.split(P["W_h"], 4, axis=1)
    bi, bf, bg, bo = np.split(P["b_x"] + P["b_h"], 4)
    p_i, p_f, p_o = P["p"]
    for t in range(T):
        i = sig(x[t] @ Wxi + h @ Whi + bi + p_i * c)
        f = sig(x[t] @ Wxf + h @ Whf + bf + p_f * c)
        g = np.tanh(x[t] @ Wxg + h @ Whg + bg)
        c = f * c + i * g
        o = sig(x[t] @ Wxo + h @ Who + bo + p_o * c)
        h = o * np.tanh(c)
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hn[0], h, rtol=1e-12)
    np.testing.assert_allclose(cn[0], c, rtol=1e-12)


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_cho_gru_equations(kernels):
    rng = np.random.default_rng(1)
    m = rnnkit.GRU(D, H, reset_after=False, dtype=np.float64, kernels=kernels, seed=3)
    P = unit(m)
    x = rng.standard_normal((T, B, D))
    h = rng.standard_normal((B, H))
    out, hn, _ = m.forward(x, h[None])
    Wxr, Wxz, Wxn = np.split(P["W_x"], 3, axis=1)
    Whr, Whz, Whn = np.split(P["W_h"], 3, axis=1)
    bxr, bxz, bxn = np.split(P["b_x"], 3)
    bhr, bhz, bhn = np.split(P["b_h"], 3)
    for t in range(T):
        r = sig(x[t] @ Wxr + bxr + h @ Whr + bhr)
        z = sig(x[t] @ Wxz + bxz + h @ Whz + bhz)
        n = np.tanh(x[t] @ Wxn + bxn + (r * h) @ Whn + bhn)
        h = (1 - z) * n + z * h
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hn[0], h, rtol=1e-12)


def test_cho_and_reset_after_differ():
    x = np.random.default_rng(0).standard_normal((T, B, D))
    a = rnnkit.GRU(D, H, reset_after=True, dtype=np.float64)(x)[0]
    b = rnnkit.GRU(D, H, reset_after=False, dtype=np.float64)(x)[0]
    assert np.abs(a - b).max() > 1e-3


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
def test_rnn_layer_equals_manual_cell_loop(nonlinearity):
    rng = np.random.default_rng(4)
    m = rnnkit.RNN(D, H, nonlinearity=nonlinearity, dtype=np.float64, kernels="numba")
    P = unit(m)
    x = rng.standard_normal((T, B, D))
    out, _, _ = m.forward(x)
    h = np.zeros((B, H))
    for t in range(T):
        h, _ = cells.rnn_cell(x[t] @ P["W_x"] + P["b_x"] + h @ P["W_h"] + P["b_h"], nonlinearity)
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-14)


def test_lstm_reverse_layer_equals_manual_cell_loop_within_lengths():
    rng = np.random.default_rng(5)
    m = rnnkit.LSTM(D, H, bidirectional=True, dtype=np.float64)
    P = unit(m, 0, 1)
    x = rng.standard_normal((T, B, D))
    lengths = np.array([5, 2, 4])
    out, (hn, cn), _ = m.forward(x, lengths=lengths)
    for b, L in enumerate(lengths):
        h, c = np.zeros((1, H)), np.zeros((1, H))
        for t in reversed(range(L)):
            a = x[t, b:b + 1] @ P["W_x"] + P["b_x"] + h @ P["W_h"] + P["b_h"]
            h, c, _ = cells.lstm_cell(a, c)
            np.testing.assert_allclose(out[t, b, H:], h[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hn[1, b], h[0], rtol=1e-12)
        np.testing.assert_allclose(cn[1, b], c[0], rtol=1e-12)
        assert np.all(out[L:, b] == 0)


def test_gru_layer_equals_manual_cell_loop():
    rng = np.random.default_rng(6)
    m = rnnkit.GRU(D, H, dtype=np.float64, kernels="numba")
    P = unit(m)
    x = rng.standard_normal((T, B, D))
    out, _, _ = m.forward(x)
    h = np.zeros((B, H))
    for t in range(T):
        h, _ = cells.gru_cell(x[t] @ P["W_x"] + P["b_x"], h @ P["W_h"] + P["b_h"], h)
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-14)
