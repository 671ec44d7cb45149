"""The minGRU / minLSTM scan of rnnkit.layers.minimal fused per lane (b, j): one pass each way.

The NumPy reference solves h_t = a_t h_{t-1} + b_t for all t at once in log space, the form a
parallel scan needs. Here each lane runs its own time loop, where the same recurrence is exact in
linear space: a_t + b_t / h̃_t = 1 (z and 1 - z, or f' and i') makes h_t a convex combination of
h_{t-1} and h̃_t = g(k_h), so nothing overflows and nothing cancels. Every lane works in float64
whatever the layer's dtype (k, h and dk keep it):
    forward   a_t, b_t from k_t;  h_t = a_t h_{t-1} + b_t
    backward  g_t = dh_t + a_{t+1} g_{t+1}    (t = T-1 .. 0; = Σ_{s>=t} dh_s exp(a*_s - a*_t))
              minGRU:  dk_z = g_t z (1 - z) (h̃_t - h_{t-1}),      dk_h = g_t z g'(k_h)
              minLSTM: dd = g_t f' i' (h̃_t - h_{t-1}),  dk_i = (1 - i) dd,  dk_f = -(1 - f) dd,
                       dk_h = g_t i' g'(k_h)                 (d = log(i / f), i' = σ(d), f' = σ(-d))
              dh_0 = a_1 g_1 (the first step's a)
The backward recomputes the gates from k, so the forward keeps nothing but h. The gates come from
exp alone: minLSTM's f' = f / (f + i) with f and i scaled by the larger of exp(min(k, 0)), which
keeps full relative precision where f and i underflow. _exp is a vectorisable float64 exp
(Cody-Waite reduction, Taylor polynomial to r^13 by Estrin's scheme, 2^n written into the exponent
bits; within 2 ulp of libm), so the lane loops compile to AVX code. Padded steps (real[t, b]
false: t >= lengths[b]) have a = 1, b = 0: the forward copies h_{t-1} (h_0 exactly), the backward
carries g and writes dk = 0. Blocks of k: [z, h] (minGRU, G = 2) or [i, f, h] (minLSTM, G = 3).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .fastmath import JIT_OPTIONS

LOG2E, SHIFT = 1.4426950408889634, 6755399441055744.0        # 1 / ln 2; 1.5 * 2^52 rounds to integers
LN2_HI, LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10   # fdlibm's split of ln 2
EXP_C = tuple(1 / math.factorial(n) for n in range(14))     # 1/0! ... 1/13!


@intrinsic
def _bits(typingctx, x):
    """The int64 holding a float64's bits."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, n):
    """The float64 whose bits are an int64's."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(inline="always")
def _exp(x):
    """exp(x) for x <= 0; 0 below -708 (where exp is subnormal or 0); NaN passes through."""
    y = -708.0 if x < -708.0 else x
    t = y * LOG2E + SHIFT                          # n = round(y / ln 2) sits in t's low bits
    n = t - SHIFT
    r = (y - n * LN2_HI) - n * LN2_LO              # |r| <= ln 2 / 2: e^r = Σ r^i / i!, i <= 13
    r2 = r * r
    r4 = r2 * r2                                   # Estrin's scheme: short dependency chains
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13 = EXP_C
    p = (c0 + c1 * r + (c2 + c3 * r) * r2 + (c4 + c5 * r + (c6 + c7 * r) * r2) * r4
         + (c8 + c9 * r + (c10 + c11 * r) * r2 + (c12 + c13 * r) * r4) * (r4 * r4))
    e = p * _float((_bits(t) + 1023) << 52)        # times 2^n
    return 0.0 if x < -708.0 else e


@njit(inline="always")
def _sigmoid_pair(x):
    """σ(x), σ(-x) from one exp."""
    e = _exp(-abs(x))
    q = 1 / (1 + e)
    return (q, e * q) if x >= 0 else (e * q, q)


@njit(inline="always")
def _g(p):
    """g(p), g'(p): p + 0.5 and 1 above 0, σ(p) and σ(p) σ(-p) below."""
    s, s_c = _sigmoid_pair(p)
    return (p + 0.5, 1.0) if p >= 0 else (s, s * s_c)


@njit(inline="always")
def _minlstm_gates(k_i, k_f):
    """f' = f / (f + i), i' = i / (f + i), 1 - i, 1 - f."""
    e_i, e_f = _exp(-abs(k_i)), _exp(-abs(k_f))
    i_c = (e_i if k_i >= 0 else 1.0) / (1 + e_i)  # σ(-k) = e^min(-k, 0) / (1 + e^-|k|)
    f_c = (e_f if k_f >= 0 else 1.0) / (1 + e_f)
    u = min(k_f, 0.0) - min(k_i, 0.0)              # f / i = e^u (1 + e_i) / (1 + e_f)
    r = _exp(-abs(u))
    F, I = (1 + e_i, r * (1 + e_f)) if u >= 0 else (r * (1 + e_i), 1 + e_f)   # ∝ f, i
    s = 1 / (F + I)
    return F * s, I * s, i_c, f_c


# -- rows: the lanes j of one sequence b at one step ---------------------------------------------------
@njit(**JIT_OPTIONS)
def _mingru_row(k, hs, h):
    H = hs.shape[0]
    for j in range(H):
        z, a = _sigmoid_pair(np.float64(k[j]))
        h_tilde, _ = _g(np.float64(k[H + j]))
        hs[j] = a * hs[j] + z * h_tilde            # h = (1 - z) h_prev + z g(k_h)
        h[j] = hs[j]


@njit(**JIT_OPTIONS)
def _mingru_row_back(k, dh, hp, gt, an, dk):
    H = gt.shape[0]
    for j in range(H):
        z, a = _sigmoid_pair(np.float64(k[j]))
        h_tilde, dg = _g(np.float64(k[H + j]))
        gj = dh[j] + an[j] * gt[j]                 # g_t = dh_t + a_{t+1} g_{t+1}
        dk[j] = gj * z * a * (h_tilde - hp[j])
        dk[H + j] = gj * z * dg
        gt[j], an[j] = gj, a


@njit(**JIT_OPTIONS)
def _minlstm_row(k, hs, h):
    H = hs.shape[0]
    for j in range(H):
        f_n, i_n, _, _ = _minlstm_gates(np.float64(k[j]), np.float64(k[H + j]))
        h_tilde, _ = _g(np.float64(k[2 * H + j]))
        hs[j] = f_n * hs[j] + i_n * h_tilde        # h = f' h_prev + i' g(k_h)
        h[j] = hs[j]


@njit(**JIT_OPTIONS)
def _minlstm_row_back(k, dh, hp, gt, an, dk):
    H = gt.shape[0]
    for j in range(H):
        f_n, i_n, i_c, f_c = _minlstm_gates(np.float64(k[j]), np.float64(k[H + j]))
        h_tilde, dg = _g(np.float64(k[2 * H + j]))
        gj = dh[j] + an[j] * gt[j]                 # g_t = dh_t + a_{t+1} g_{t+1}
        dd = gj * f_n * i_n * (h_tilde - hp[j])    # d = log(i / f): dh / dd = f' i' (h̃ - h_prev)
        dk[j], dk[H + j] = i_c * dd, -f_c * dd     # d = softplus(-k_f) - softplus(-k_i)
        dk[2 * H + j] = gj * i_n * dg
        gt[j], an[j] = gj, f_n


# -- whole sequences ---------------------------------------------------------------------------------
@njit(**JIT_OPTIONS)
def scan_forward(k, h0, real, h):
    """k (T, B, G*H), h0 (B, H) >= 0, real (T, B) bool -> h (T, B, H), written in place."""
    T, B, H = h.shape
    hs = h0.astype(np.float64)                                     # (B, H) float64 state
    for t in range(T):
        for b in range(B):
            if not real[t, b]:                     # a = 1, b = 0: the state is carried
                h[t, b] = h[t - 1, b] if t > 0 else h0[b]
            elif k.shape[2] == 2 * H:
                _mingru_row(k[t, b], hs[b], h[t, b])
            else:
                _minlstm_row(k[t, b], hs[b], h[t, b])


@njit(**JIT_OPTIONS)
def scan_backward(dh, k, h, h0, real, dk, dh0):
    """dh, h (T, B, H), k (T, B, G*H), h0 (B, H), real (T, B) -> dk (T, B, G*H), dh0 (B, H) in place."""
    T, B, H = h.shape
    gt = np.zeros((B, H))                                          # (B, H) float64: g_t
    an = np.zeros((B, H))                                          # (B, H) float64: a_{t+1}
    for t in range(T - 1, -1, -1):
        hp = h[t - 1] if t > 0 else h0
        for b in range(B):
            if not real[t, b]:                     # a = 1 is a constant, b = 0: no gradient
                for j in range(H):
                    gt[b, j] = dh[t, b, j] + an[b, j] * gt[b, j]
                    an[b, j] = 1.0
                dk[t, b] = 0
            elif k.shape[2] == 2 * H:
                _mingru_row_back(k[t, b], dh[t, b], hp[b], gt[b], an[b], dk[t, b])
            else:
                _minlstm_row_back(k[t, b], dh[t, b], hp[b], gt[b], an[b], dk[t, b])
    for b in range(B):
        for j in range(H):
            dh0[b, j] = gt[b, j] * an[b, j]        # h_1 = a_1 h_0 + b_1


def _real(mask, T, B):
    """(T, B) bool: True on real steps (mask (T, B, 1) or None: all real)."""
    if mask is None:
        return np.ones((T, B), np.bool_)                           # (T, B)
    return np.ascontiguousarray(mask[:, :, 0], np.bool_)           # (T, B)


def minimal_forward(k, h0, mask):
    """k (T, B, G*H), h0 (B, H) >= 0, mask (T, B, 1) bool or None -> h (T, B, H) in k's dtype."""
    T, B, _ = k.shape
    h = np.empty((T, B, h0.shape[1]), k.dtype)                     # (T, B, H)
    scan_forward(np.ascontiguousarray(k), np.ascontiguousarray(h0), _real(mask, T, B), h)
    return h


def minimal_backward(dh, k, h, h0, mask):
    """dh (T, B, H), the gradient on every h_t -> dk (T, B, G*H), dh0 (B, H)."""
    T, B, H = h.shape
    dk, dh0 = np.empty_like(k), np.empty((B, H), dh.dtype)         # (T, B, G*H), (B, H)
    scan_backward(np.ascontiguousarray(dh), k, h, np.ascontiguousarray(h0), _real(mask, T, B), dk, dh0)
    return dk, dh0
