"""Finite differences (float64, random upstream gradients) for every cell and layer option:
the input, the initial state and every parameter."""
import itertools

import numpy as np
import pytest

import rnnkit
from rnnkit.gradcheck import check_module

T, B, D, H = 4, 3, 3, 4

CELLS = {
    "rnn_tanh": (rnnkit.RNN, dict(nonlinearity="tanh")),
    "rnn_relu": (rnnkit.RNN, dict(nonlinearity="relu")),
    "rnn_sigmoid": (rnnkit.RNN, dict(nonlinearity="sigmoid")),
    "lstm": (rnnkit.LSTM, {}),
    "lstm_peep": (rnnkit.LSTM, dict(peepholes=True)),
    "lstm_proj": (rnnkit.LSTM, dict(proj_size=2)),
    "lstm_peep_proj": (rnnkit.LSTM, dict(peepholes=True, proj_size=3)),
    "gru": (rnnkit.GRU, {}),
    "gru_cho": (rnnkit.GRU, dict(reset_after=False)),
}
OPTIONS = {  # name: (num_layers, bidirectional, lengths)
    "plain": (1, False, None),
    "lengths": (1, False, [4, 1, 3]),
    "bidirectional_lengths": (1, True, [2, 4, 3]),
    "stacked_bidirectional_lengths": (2, True, [3, 4, 1]),
}


def check(cls, kw, num_layers, bidirectional, lengths, kernels="numba", dropout=0.0, seed=0):
    rng = np.random.default_rng(seed)
    m = cls(D, H, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
            dtype=np.float64, seed=seed, kernels=kernels, **kw)
    lstm = cls is rnnkit.LSTM
    n, H_out = num_layers * (2 if bidirectional else 1), kw.get("proj_size") or H
    inputs = {"x": rng.standard_normal((T, B, D)), "h0": rng.standard_normal((n, B, H_out))}
    if lstm:
        inputs["c0"] = rng.standard_normal((n, B, H))
    lens = None if lengths is None else np.array(lengths)

    def forward(m, x, h0, c0=None):
        m.rng = np.random.default_rng(99)          # the same dropout masks on every call
        return m.forward(x, (h0, c0) if lstm else h0, lens)

    def backward(m, douts, cache):
        dx, ds = m.backward(douts[0], cache, douts[1])
        return dict(x=dx, h0=ds[0], c0=ds[1]) if lstm else dict(x=dx, h0=ds)

    errs = check_module(m, forward, backward, inputs, seed=seed, rtol=1e-5, atol=1e-8, max_checks=30)
    assert set(errs) >= {"x", "h0"} | {name for name, _, _ in m.named_parameters()}


@pytest.mark.parametrize("cell,option", list(itertools.product(CELLS, OPTIONS)))
def test_layer_gradients(cell, option):
    cls, kw = CELLS[cell]
    check(cls, kw, *OPTIONS[option])


@pytest.mark.parametrize("cell", list(CELLS))
def test_reference_path_gradients(cell):
    cls, kw = CELLS[cell]
    check(cls, kw, 2, True, [4, 2, 3], kernels="numpy")


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm_proj", "gru"])
def test_gradients_with_dropout_between_layers(cell):
    cls, kw = CELLS[cell]
    check(cls, kw, 3, True, None, dropout=0.4)


def test_batch_first_gradients():
    rng = np.random.default_rng(1)
    m = rnnkit.LSTM(D, H, batch_first=True, dtype=np.float64)
    x = rng.standard_normal((B, T, D))
    check_module(m, lambda m, x: m.forward(x, None, [1, 4, 2]),
                 lambda m, d, c: {"x": m.backward(d[0], c, d[1])[0]}, {"x": x}, rtol=1e-5)
