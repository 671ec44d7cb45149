"""The step kernels of cellkernels split by rows over n of numba's threads.

With more than one thread, the per-step product already runs on all of them (packed.matmul_threads);
these wrappers do the same for the elementwise step that follows it, so that it no longer runs on
one core while the others wait. Each thread calls the cellkernels step on its own rows
b0 <= b < b1: the results are those of the one-thread call, bit for bit.

The LSTM backward with peepholes adds every row's peephole gradients into one (3, H) array, so it
has no threaded form here: that case stays on one thread.
"""
from numba import njit, prange

from . import cellkernels as K
from .fastmath import JIT_OPTIONS

# numba's cache keys on this file's text alone: this line changes with cellkernels.py (which
# carries fastmath.py's hash), so an edit there recompiles these wrappers (tests check the hash).
CELLKERNELS_SHA = "677f2e7271475f23"


@njit(parallel=True, **JIT_OPTIONS)
def rnn_fwd(n, ax, ah, kind, h):
    B = h.shape[0]
    for t in prange(n):
        b0, b1 = t * B // n, (t + 1) * B // n
        K.rnn_fwd(ax[b0:b1], ah[b0:b1], kind, h[b0:b1])


@njit(parallel=True, **JIT_OPTIONS)
def rnn_bwd(n, dh, dh2, h, kind, da):
    B = h.shape[0]
    for t in prange(n):
        b0, b1 = t * B // n, (t + 1) * B // n
        K.rnn_bwd(dh[b0:b1], dh2[b0:b1], h[b0:b1], kind, da[b0:b1])


@njit(parallel=True, **JIT_OPTIONS)
def lstm_fwd(n, a, ah, c_prev, peep, m, c):
    B = c.shape[0]
    for t in prange(n):
        b0, b1 = t * B // n, (t + 1) * B // n
        K.lstm_fwd(a[b0:b1], ah[b0:b1], c_prev[b0:b1], peep, m[b0:b1], c[b0:b1])


@njit(parallel=True, **JIT_OPTIONS)
def lstm_bwd(n, dm, dm2, dc, act, c_prev, c, da):
    """lstm_bwd without peepholes (peep and dpeep None)."""
    B = c.shape[0]
    for t in prange(n):
        b0, b1 = t * B // n, (t + 1) * B // n
        K.lstm_bwd(dm[b0:b1], dm2[b0:b1], dc[b0:b1], act[b0:b1], c_prev[b0:b1], c[b0:b1], None,
                   da[b0:b1], None)


@njit(parallel=True, **JIT_OPTIONS)
def gru_fwd(n, a, ah, b_hn, h_prev, h, ah_n):
    B = h.shape[0]
    for t in prange(n):
        b0, b1 = t * B // n, (t + 1) * B // n
        K.gru_fwd(a[b0:b1], ah[b0:b1], b_hn, h_prev[b0:b1], h[b0:b1], ah_n[b0:b1])


@njit(parallel=True, **JIT_OPTIONS)
def gru_bwd(n, dh, dh2, dh3, rzn, ah_n, h_prev, dax, dah, dhz):
    B = h_prev.shape[0]
    for t in prange(n):
        b0, b1 = t * B // n, (t + 1) * B // n
        K.gru_bwd(dh[b0:b1], dh2[b0:b1], dh3[b0:b1], rzn[b0:b1], ah_n[b0:b1], h_prev[b0:b1],
                  dax[b0:b1], dah[b0:b1], dhz[b0:b1])
