"""One generation step for a few rows, fused: input row, h W_h, the cell's gates, the readout; sampling.

At B = 1 a step costs its matrix-vector products plus whatever runs around them; these kernels
leave almost nothing around them (rnnkit.models.generation drives them):

    a   = Table[id]          layer 0: Table = E W_x + b (V, G*H) precomputed, one row copied
        = x W_x + b          layers above: x is the new h of the layer below
    A_h = h W_h              seqloops.matmul (faster than a BLAS call for a few rows)
    h, c = the gates of a + A_h, by the same cellkernels code the sequence path runs
    h   = m W_hr             LSTM with a projection (m = o tanh(c))
    y   = h W_y + b_y        the readout

sample_plain draws one id per row from softmax(z / T) by the inverse CDF, without sorting:
    e_v = exp((z_v - max z) / T),   id = the first v with e_0 + ... + e_v > u (e_0 + ... + e_{V-1})
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload, register_jitable

from .cellkernels import gru_fwd, lstm_fwd, rnn_fwd
from .fastmath import JIT_OPTIONS
from .seqloops import matmul

# numba's cache keys on this file's text alone: this line changes with seqloops.py (which carries
# cellkernels.py's hash, which carries fastmath.py's), so an edit there recompiles these kernels.
SEQLOOPS_SHA = "2f5a3099b196a271"


@register_jitable
def _lookup(ids, hn, l, W, b, a):
    """a = W[ids], W a table of rows. False: an id out of range."""
    for r in range(a.shape[0]):
        i = ids[r]
        if i < 0 or i >= W.shape[0]:
            return False
        a[r] = W[i]
    return True


@register_jitable
def _project(ids, hn, l, W, b, a):
    """a = x W + b with x = hn[l - 1], the new h of the layer below."""
    matmul(hn[l - 1], W, a)
    for r in range(a.shape[0]):
        a[r] += b
    return True


def _input(ids, hn, l, W, b, a):
    """Layer l's a: the table rows of ids when ids is given, else x W + b (chosen at compile time)."""


@overload(_input, inline="always")
def _input_impl(ids, hn, l, W, b, a):
    return _project if ids is types.none else _lookup


@register_jitable
def _no_readout(h, W_y, b_y, y):
    """Not the top layer: no readout."""


@register_jitable
def _linear(h, W_y, b_y, y):
    """y = h W_y + b_y."""
    matmul(h, W_y, y)
    for r in range(y.shape[0]):
        y[r] += b_y


def _readout(h, W_y, b_y, y):
    """y = h W_y + b_y, or nothing when W_y is None (chosen at compile time)."""


@overload(_readout, inline="always")
def _readout_impl(h, W_y, b_y, y):
    return _no_readout if W_y is types.none else _linear


# Each step kernel runs layer l of a stack on state arrays (L, B, .): hs, cs in, hn, cn out (cs, cn
# None for RNN and GRU); ids given: layer 0 with W_x = Table, b = None; W_y given: the top layer,
# also y = hn[l] W_y + b_y. Returns False for an id out of range, True otherwise.
@njit(**JIT_OPTIONS)
def rnn_step(ids, W_x, b, W_h, kind, unused, l, hs, cs, hn, cn, W_y, b_y, y):
    """hn[l] = f(a + hs[l] W_h); kind 0/1/2 = tanh/relu/sigmoid."""
    a, ah = np.empty_like(hn[l]), np.empty_like(hn[l])             # (B, H)
    if not _input(ids, hn, l, W_x, b, a):
        return False
    matmul(hs[l], W_h, ah)
    rnn_fwd(a, ah, kind, hn[l])
    _readout(hn[l], W_y, b_y, y)
    return True


@njit(**JIT_OPTIONS)
def lstm_step(ids, W_x, b, W_h, peep, W_hr, l, hs, cs, hn, cn, W_y, b_y, y):
    """cn[l], m = the LSTM gates of a + hs[l] W_h; hn[l] = m, or m W_hr with a projection."""
    B, GH = hs.shape[1], W_h.shape[1]
    a, ah = np.empty((B, GH), W_h.dtype), np.empty((B, GH), W_h.dtype)   # (B, 4H)
    if not _input(ids, hn, l, W_x, b, a):
        return False
    matmul(hs[l], W_h, ah)
    if W_hr is None:
        lstm_fwd(a, ah, cs[l], peep, hn[l], cn[l])
    else:
        m = np.empty_like(cn[l])                                   # (B, H)
        lstm_fwd(a, ah, cs[l], peep, m, cn[l])
        matmul(m, W_hr, hn[l])
    _readout(hn[l], W_y, b_y, y)
    return True


@njit(**JIT_OPTIONS)
def gru_step(ids, W_x, b, W_h, b_hn, unused, l, hs, cs, hn, cn, W_y, b_y, y):
    """reset_after GRU: hn[l] from a and hs[l] W_h (+ b_hn inside r * (...))."""
    B, GH = hs.shape[1], W_h.shape[1]
    a, ah = np.empty((B, GH), W_h.dtype), np.empty((B, GH), W_h.dtype)   # (B, 3H)
    if not _input(ids, hn, l, W_x, b, a):
        return False
    matmul(hs[l], W_h, ah)
    ah_n = np.empty_like(hn[l])                                    # (B, H)
    gru_fwd(a, ah, b_hn, hs[l], hn[l], ah_n)
    _readout(hn[l], W_y, b_y, y)
    return True


@njit(**JIT_OPTIONS)
def sample_plain(z, T, u, ids):
    """ids[r] ~ softmax(z[r] / T) from the uniform u[r]; z (B, V). 0, or 1: NaN or +inf, 2: a row of -inf."""
    B, V = z.shape
    cdf = np.empty(V)                                              # (V,) float64
    for r in range(B):
        m = -np.inf
        for v in range(V):
            zv = z[r, v]
            if zv != zv or zv == np.inf:
                return 1
            m = max(m, zv)
        if m == -np.inf:
            return 2
        s, last = 0.0, 0
        for v in range(V):
            e = math.exp((np.float64(z[r, v]) - m) / T)
            if e > 0:
                last = v
            s += e
            cdf[v] = s
        target, k = u[r] * s, 0
        while k < last and cdf[k] <= target:
            k += 1
        ids[r] = k
    return 0
