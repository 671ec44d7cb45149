"""Vanilla (Elman) RNN cell: one step, elementwise part.

    a_t = x_t W_x + h_{t-1} W_h + b          (B, H)   the matrix products live in the unroll
    h_t = f(a_t),  f in {tanh, relu, sigmoid}

Backward, from the output: da_t = dh_t * f'(h_t), with f' written from h_t (1 - h^2, [h > 0], h(1 - h)).
Elman, "Finding structure in time", 1990.
"""
from ..functional import ACTIVATIONS


def rnn_cell(a, nonlinearity="tanh"):
    """h = f(a); a (B, H) -> h (B, H), cache."""
    f, _ = ACTIVATIONS[nonlinearity]
    h = f(a)
    return h, h


def rnn_cell_backward(dh, cache, nonlinearity="tanh"):
    """da = dh * f'(a), written from the cached output h."""
    _, df = ACTIVATIONS[nonlinearity]
    return dh * df(cache)
