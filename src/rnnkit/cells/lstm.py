"""LSTM cell: one step, elementwise part. Gate order i, f, g, o (as PyTorch).

    a_t = x_t W_x + h_{t-1} W_h + b                          (B, 4H)  [a_i | a_f | a_g | a_o]
    i = σ(a_i + p_i ⊙ c_{t-1})        input gate              (peephole terms only with peepholes)
    f = σ(a_f + p_f ⊙ c_{t-1})        forget gate
    g = tanh(a_g)                     candidate
    c_t = f ⊙ c_{t-1} + i ⊙ g         cell state
    o = σ(a_o + p_o ⊙ c_t)            output gate
    m_t = o ⊙ tanh(c_t)               cell output; h_t = m_t, or h_t = m_t W_hr with a projection

Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000; peepholes: Gers & Schmidhuber 2000;
projection: Sak et al. 2014. The projection is a matrix product and lives in the unroll.
"""
import numpy as np

from ..functional import sigmoid


def lstm_cell(a, c_prev, peep=None):
    """a (B, 4H), c_prev (B, H), peep (3, H) or None -> m (B, H), c (B, H), cache."""
    H = c_prev.shape[-1]
    a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    if peep is not None:
        a_i, a_f = a_i + peep[0] * c_prev, a_f + peep[1] * c_prev
    i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
    c = f * c_prev + i * g
    if peep is not None:
        a_o = a_o + peep[2] * c
    o = sigmoid(a_o)
    tc = np.tanh(c)
    return o * tc, c, (i, f, g, o, c_prev, c, tc)


def lstm_cell_backward(dm, dc, cache, peep=None):
    """dm, dc (B, H) -> da (B, 4H), dc_prev (B, H), dpeep (3, H) or None."""
    i, f, g, o, c_prev, c, tc = cache
    da_o = dm * tc * o * (1 - o)                   # m = o * tanh(c)
    dc = dc + dm * o * (1 - tc * tc)
    if peep is not None:
        dc = dc + da_o * peep[2]                   # a_o += p_o * c
    da_i = dc * g * i * (1 - i)                    # c = f * c_prev + i * g
    da_f = dc * c_prev * f * (1 - f)
    da_g = dc * i * (1 - g * g)
    dc_prev = dc * f
    dpeep = None
    if peep is not None:                           # a_i += p_i * c_prev, a_f += p_f * c_prev
        dc_prev = dc_prev + da_i * peep[0] + da_f * peep[1]
        dpeep = np.stack([(da_i * c_prev).sum(0), (da_f * c_prev).sum(0), (da_o * c).sum(0)])
    return np.concatenate([da_i, da_f, da_g, da_o], axis=1), dc_prev, dpeep
