"""Fused whole-sequence forward and backward of the layer-normalised LSTM and GRU (reset_after).

The computation of VariantRecurrent's step loop with layer_norm (rnnkit.layers.variant_steps; the
tests assert equality), arranged as rnnkit.kernels.sequence arranges the plain cells:

    XW = X W_x                       one GEMM; ln_fwd: XW <- N_x = LN(XW), AX = N_x g_x + b
                                     (b = b_x + b_h for the LSTM, b_x for the GRU)
    for t: NH[t] = h_{t-1} W_h       into the cache array (sequence.step_product: W_h packed once)
           kernel(NH[t], AX[t], ..)  NH[t] <- its LN, AX[t] <- the activated gates, h_t into out[t]
    for t = T-1 .. 0: kernel writes dA[t] (d a) and dAH[t] (d h W_h); then dh = dAH[t] W_h^T
    ln_bwd turns dA into d(X W_x) in place; dW_x = X^T dXW, dX = dXW W_x^T, dW_h = H_prev^T dAH

Steps with fewer than sequence.SMALL_WORK multiply-adds in h W_h run the whole time loop inside
numba (seqloops.matmul for h W_h). Not here: lengths, zoneout, recurrent dropout, the LSTM's
projection (rnnkit.layers.ln_steps runs those step by step on the same row kernels).
"""
import numpy as np
from numba import njit

from . import lnkernels as K
from .fastmath import JIT_OPTIONS
from .seqloops import matmul
from .sequence import _contiguous, _small, step_product

# numba's cache keys on this file's text alone: these lines change with lnkernels.py (which carries
# fastmath.py's hash) and seqloops.py, so an edit there recompiles these loops (tests check them).
LNKERNELS_SHA = "958b919a67b21297"
SEQLOOPS_SHA = "2f5a3099b196a271"


def ln_runner(mode, peepholes=False, proj=False):
    """The fused runner of a layer-normalised unit, or None where only the step loop applies."""
    if mode == "lstm" and not proj:
        return LNLSTMFused(peepholes)
    if mode == "gru":
        return LNGRUFused()
    return None


def ln_projection(P, x, b):
    """AX = LN(X W_x) g_x + b -> AX (T, B, G*H), cache (N_x (T*B, G*H), 1/σ (T*B,))."""
    T, B, D = x.shape
    N = x.reshape(T * B, D) @ P["W_x"]                             # (T*B, G*H) becomes LN(X W_x)
    AX, rs = np.empty_like(N), np.empty(T * B, N.dtype)            # (T*B, G*H), (T*B,)
    K.ln_fwd(N, P["ln_x_g"], b, AX, rs)
    return AX.reshape(T, B, -1), (N, rs)


def ln_projection_back(P, G, x, dAX, cache, fold):
    """Backward of ln_projection (dAX is overwritten): adds db_x (db_h too if fold), dg_x, dW_x -> dX."""
    T, B, D = x.shape
    N, rs = cache
    dXW = dAX.reshape(T * B, -1)                                   # (T*B, G*H) becomes d(X W_x)
    db = np.zeros(N.shape[1], N.dtype)                             # (G*H,)
    K.ln_bwd(dXW, N, rs, P["ln_x_g"], G["ln_x_g"], db)
    G["b_x"] += db
    if fold:
        G["b_h"] += db
    G["W_x"] += x.reshape(T * B, D).T @ dXW
    return (dXW @ P["W_x"].T).reshape(T, B, D)


def _recurrent_grad(G, h0, out, dAH):
    """dW_h += H_prev^T dAH with H_prev = [h_0; out[:T-1]] (two GEMMs, no stacking)."""
    T, B, H_out = out.shape
    G["W_h"] += h0.T @ dAH[0]
    if T > 1:
        G["W_h"] += out[:-1].reshape((T - 1) * B, H_out).T @ dAH[1:].reshape((T - 1) * B, -1)


class LNLSTMFused:
    """LN-LSTM with optional peepholes; the cache keeps i, f, g, o, LN(h W_h), c, LN(c), the 1/σ."""

    def __init__(self, peepholes):
        self.peepholes = peepholes

    def forward(self, P, x, state, need_cache):
        """x (T, B, D), state (h0, c0) -> out (T, B, H), (h_T, c_T), cache."""
        h0, c0 = _contiguous(*state)
        peep = P["p"] if self.peepholes else None
        AX, xcache = ln_projection(P, x, P["b_x"] + P["b_h"])     # (T, B, 4H)
        T, B, H = AX.shape[0], c0.shape[0], c0.shape[1]
        k = 1 if need_cache else 0                                 # without a cache: one buffer
        NH = np.empty((T * k or 1, B, 4 * H), x.dtype)            # (T, B, 4H)
        out, C = np.empty((T, B, H), x.dtype), np.empty((T, B, H), x.dtype)   # (T, B, H)
        NC, R = np.empty((T * k or 1, B, H), x.dtype), np.empty((T * k or 1, 2, B), x.dtype)
        g_h, g_c, b_c = P["ln_h_g"], P["ln_c_g"], P["ln_c_b"]
        if _small(B, H, 4 * H):
            ln_lstm_forward(AX, P["W_h"], h0, c0, g_h, peep, g_c, b_c, NH, out, C, NC, R, k)
        else:
            h, c, mul = h0, c0, step_product(P["W_h"], T)
            for t in range(T):
                s = t * k
                mul(h, NH[s])
                K.ln_lstm_fwd(NH[s], AX[t], g_h, c, peep, g_c, b_c, out[t], C[t], NC[s], R[s, 0], R[s, 1])
                h, c = out[t], C[t]
        cache = (x, h0, c0, AX, C, out, NH, NC, R, xcache) if need_cache else None
        return out, (out[-1].copy(), C[-1].copy()), cache

    def backward(self, P, G, dout, dstate, cache):
        """dout (T, B, H), dstate (dh_T, dc_T) -> dx, (dh_0, dc_0); adds parameter gradients."""
        x, h0, c0, ACT, C, out, NH, NC, R, xcache = cache
        dout, g, dc = _contiguous(dout, dstate[0].copy(), dstate[1].copy())
        peep = P["p"] if self.peepholes else None
        H = C.shape[2]
        dpeep = np.zeros_like(peep) if self.peepholes else None   # (3, H)
        dg_h, dg_c, db_c = np.zeros(4 * H, x.dtype), np.zeros(H, x.dtype), np.zeros(H, x.dtype)
        dA, dAH = np.empty_like(ACT), np.empty_like(ACT)           # (T, B, 4H)
        g_h, g_c, b_c = P["ln_h_g"], P["ln_c_g"], P["ln_c_b"]
        if _small(C.shape[1], H, 4 * H):
            ln_lstm_backward(dout, g, dc, ACT, NH, c0, C, NC, R, np.ascontiguousarray(P["W_h"].T), g_h,
                             peep, g_c, b_c, dA, dAH, dg_h, dpeep, dg_c, db_c)
        else:
            mul = step_product(P["W_h"].T, C.shape[0])             # dh = dAH_t W_h^T
            for t in reversed(range(C.shape[0])):
                K.ln_lstm_bwd(dout[t], g, dc, ACT[t], NH[t], C[t - 1] if t else c0, C[t], NC[t], R[t, 0],
                              R[t, 1], g_h, peep, g_c, b_c, dA[t], dAH[t], dg_h, dpeep, dg_c, db_c)
                mul(dAH[t], g)
        G["ln_h_g"] += dg_h
        G["ln_c_g"] += dg_c
        G["ln_c_b"] += db_c
        if self.peepholes:
            G["p"] += dpeep
        _recurrent_grad(G, h0, out, dAH)
        return ln_projection_back(P, G, x, dA, xcache, fold=True), (g, dc)


class LNGRUFused:
    """LN-GRU, reset_after; the cache keeps r, z, n (over AX), LN(h W_h) and its 1/σ."""

    def forward(self, P, x, state, need_cache):
        """x (T, B, D), state (h0,) -> out (T, B, H), (h_T,), cache."""
        h0, = _contiguous(*state)
        AX, xcache = ln_projection(P, x, P["b_x"])                 # (T, B, 3H)
        T, B, H = AX.shape[0], h0.shape[0], h0.shape[1]
        k = 1 if need_cache else 0
        NH, R = np.empty((T * k or 1, B, 3 * H), x.dtype), np.empty((T * k or 1, B), x.dtype)  # (T, B, 3H)
        out = np.empty((T, B, H), x.dtype)                         # (T, B, H)
        if _small(B, H, 3 * H):
            ln_gru_forward(AX, P["W_h"], h0, P["ln_h_g"], P["b_h"], NH, out, R, k)
        else:
            h, mul = h0, step_product(P["W_h"], T)
            for t in range(T):
                mul(h, NH[t * k])
                K.ln_gru_fwd(NH[t * k], AX[t], P["ln_h_g"], P["b_h"], h, out[t], R[t * k])
                h = out[t]
        cache = (x, h0, AX, NH, R, out, xcache) if need_cache else None
        return out, (out[-1].copy(),), cache

    def backward(self, P, G, dout, dstate, cache):
        """dout (T, B, H), dstate (dh_T,) -> dx (T, B, D), (dh_0,); adds parameter gradients."""
        x, h0, RZN, NH, R, out, xcache = cache
        dout, g = _contiguous(dout, dstate[0].copy())
        dz, dz_next = np.zeros_like(g), np.empty_like(g)           # (B, H) the z part of dh_prev
        dAX, dAH = np.empty_like(RZN), np.empty_like(RZN)          # (T, B, 3H)
        dg_h, db_h = np.zeros_like(P["b_h"]), np.zeros_like(P["b_h"])   # (3H,)
        T, B, H = out.shape
        if _small(B, H, 3 * H):
            dz = ln_gru_backward(dout, g, dz, dz_next, RZN, NH, R, P["ln_h_g"], P["b_h"], h0, out,
                                 np.ascontiguousarray(P["W_h"].T), dAX, dAH, dg_h, db_h)
        else:
            mul = step_product(P["W_h"].T, T)                      # dh = dAH_t W_h^T
            for t in reversed(range(T)):
                K.ln_gru_bwd(dout[t], g, dz, RZN[t], NH[t], R[t], P["ln_h_g"], P["b_h"],
                             out[t - 1] if t else h0, dAX[t], dAH[t], dz_next, dg_h, db_h)
                mul(dAH[t], g)
                dz, dz_next = dz_next, dz
        G["ln_h_g"] += dg_h
        G["b_h"] += db_h
        _recurrent_grad(G, h0, out, dAH)
        return ln_projection_back(P, G, x, dAX, xcache, fold=False), (g + dz,)


# -- the time loops inside numba, for small steps ----------------------------------------------------
@njit(**JIT_OPTIONS)
def ln_lstm_forward(AX, W_h, h0, c0, g_h, peep, g_c, b_c, NH, out, C, NC, R, k):
    """LNLSTMFused.forward's loop; k = 0 keeps one buffer for NH, NC, R (no cache)."""
    h, c = h0, c0
    for t in range(AX.shape[0]):
        s = t * k
        matmul(h, W_h, NH[s])
        K.ln_lstm_fwd(NH[s], AX[t], g_h, c, peep, g_c, b_c, out[t], C[t], NC[s], R[s, 0], R[s, 1])
        h, c = out[t], C[t]


@njit(**JIT_OPTIONS)
def ln_lstm_backward(dout, g, dc, ACT, NH, c0, C, NC, R, W_hT, g_h, peep, g_c, b_c,
                     dA, dAH, dg_h, dpeep, dg_c, db_c):
    """LNLSTMFused.backward's loop; g, dc end as d h0, d c0."""
    for t in range(dout.shape[0] - 1, -1, -1):
        c_prev = C[t - 1] if t > 0 else c0
        K.ln_lstm_bwd(dout[t], g, dc, ACT[t], NH[t], c_prev, C[t], NC[t], R[t, 0], R[t, 1], g_h, peep,
                      g_c, b_c, dA[t], dAH[t], dg_h, dpeep, dg_c, db_c)
        matmul(dAH[t], W_hT, g)


@njit(**JIT_OPTIONS)
def ln_gru_forward(AX, W_h, h0, g_h, b_h, NH, out, R, k):
    """LNGRUFused.forward's loop; k = 0 keeps one buffer for NH, R (no cache)."""
    h = h0
    for t in range(AX.shape[0]):
        matmul(h, W_h, NH[t * k])
        K.ln_gru_fwd(NH[t * k], AX[t], g_h, b_h, h, out[t], R[t * k])
        h = out[t]


@njit(**JIT_OPTIONS)
def ln_gru_backward(dout, g, dz, dz_next, RZN, NH, R, g_h, b_h, h0, out, W_hT, dAX, dAH, dg_h, db_h):
    """LNGRUFused.backward's loop. Returns the last dz."""
    for t in range(dout.shape[0] - 1, -1, -1):
        h_prev = out[t - 1] if t > 0 else h0
        K.ln_gru_bwd(dout[t], g, dz, RZN[t], NH[t], R[t], g_h, b_h, h_prev, dAX[t], dAH[t], dz_next,
                     dg_h, db_h)
        matmul(dAH[t], W_hT, g)
        dz, dz_next = dz_next, dz
    return dz
