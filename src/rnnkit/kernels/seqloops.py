"""Whole-sequence time loops inside numba, for steps too small to pay Python's per-step overhead.

Each loop is the per-step loop of rnnkit.kernels.sequence with the matrix product h W_h done by
`matmul` below instead of NumPy's BLAS: for a handful of rows (B H_out G H below
sequence.SMALL_WORK multiply-adds) a step then costs microseconds, with no Python in between.
Arrays are time-major and C-contiguous; every output array is preallocated by the caller.
"""
import numpy as np
from numba import njit

from .cellkernels import gru_bwd, gru_fwd, lstm_bwd, lstm_fwd, rnn_bwd, rnn_fwd
from .fastmath import JIT_OPTIONS

# numba's cache keys on this file's text alone: this line changes with cellkernels.py (which
# carries fastmath.py's hash), so an edit there recompiles these loops (tests check the hash).
CELLKERNELS_SHA = "677f2e7271475f23"


@njit(**JIT_OPTIONS)
def matmul(x, W, out):
    """out = x W for a few rows x (B, K), W (K, N): rows of W, four at a time, scaled into each out row.

    Each W row is read once for all B rows and four of them share one pass over out[b];
    the j loop vectorises. Faster than a BLAS call below about B = 8.
    """
    B, K = x.shape
    N, K4 = W.shape[1], K - K % 4
    out[:] = 0
    for k in range(0, K4, 4):
        w0, w1, w2, w3 = W[k], W[k + 1], W[k + 2], W[k + 3]
        for b in range(B):
            x0, x1, x2, x3, o = x[b, k], x[b, k + 1], x[b, k + 2], x[b, k + 3], out[b]
            for j in range(N):
                o[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
    for k in range(K4, K):
        w = W[k]
        for b in range(B):
            xk, o = x[b, k], out[b]
            for j in range(N):
                o[j] += xk * w[j]


@njit(**JIT_OPTIONS)
def rnn_forward(AX, W_h, h0, kind, out):
    """out[t] = f(AX[t] + out[t-1] W_h), out[-1] = h0."""
    ah = np.empty_like(h0)                                         # (B, H)
    h = h0
    for t in range(AX.shape[0]):
        matmul(h, W_h, ah)
        rnn_fwd(AX[t], ah, kind, out[t])
        h = out[t]


@njit(**JIT_OPTIONS)
def rnn_backward(dout, g, out, W_hT, kind, dA):
    """dA[t] = (dout[t] + g) f'(out[t]), then g = dA[t] W_h^T; g ends as d h0."""
    for t in range(dout.shape[0] - 1, -1, -1):
        rnn_bwd(dout[t], g, out[t], kind, dA[t])
        matmul(dA[t], W_hT, g)


@njit(**JIT_OPTIONS)
def lstm_forward(AX, W_h, h0, c0, peep, out, C):
    """out[t], C[t] = the LSTM step of AX[t] + out[t-1] W_h; AX[t] becomes i, f, g, o."""
    ah = np.empty_like(AX[0])                                      # (B, 4H)
    h, c = h0, c0
    for t in range(AX.shape[0]):
        matmul(h, W_h, ah)
        lstm_fwd(AX[t], ah, c, peep, out[t], C[t])
        h, c = out[t], C[t]


@njit(**JIT_OPTIONS)
def lstm_backward(dout, g, dc, ACT, C, c0, W_hT, peep, dA, dpeep):
    """dA[t] from dout[t] + g and dc, then g = dA[t] W_h^T; g, dc end as d h0, d c0."""
    for t in range(dout.shape[0] - 1, -1, -1):
        c_prev = C[t - 1] if t > 0 else c0
        lstm_bwd(dout[t], g, dc, ACT[t], c_prev, C[t], peep, dA[t], dpeep)
        matmul(dA[t], W_hT, g)


@njit(**JIT_OPTIONS)
def gru_forward(AX, W_h, b_hn, h0, out, AHn):
    """out[t] = the GRU step of AX[t] and out[t-1] W_h (+ b_hn); AX[t] becomes r, z, n."""
    ah = np.empty_like(AX[0])                                      # (B, 3H)
    h = h0
    for t in range(AX.shape[0]):
        matmul(h, W_h, ah)
        gru_fwd(AX[t], ah, b_hn, h, out[t], AHn[t])
        h = out[t]


@njit(**JIT_OPTIONS)
def gru_backward(dout, g, dz, dz_next, RZN, AHn, h0, out, W_hT, dAX, dAH):
    """dAX[t], dAH[t] from dout[t] + g + dz; g = dAH[t] W_h^T, dz = the z part. Returns the last dz."""
    for t in range(dout.shape[0] - 1, -1, -1):
        h_prev = out[t - 1] if t > 0 else h0
        gru_bwd(dout[t], g, dz, RZN[t], AHn[t], h_prev, dAX[t], dAH[t], dz_next)
        matmul(dAH[t], W_hT, g)
        dz, dz_next = dz_next, dz
    return dz
