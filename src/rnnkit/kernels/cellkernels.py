"""numba kernels for rnnkit.cells: the same math, one fused pass over (B, H) per call.

Three layers, each built on the one before:
    rows    one sequence's elements j = 0 .. H-1 of one step, rnnkit.cells' equations per scalar
    steps   a (B, H) step: one row call per b, into arrays the caller owns. An optional second
            addend (`ah`, `dh2`; None leaves it out, decided at compile time) fuses the sum of the
            input and recurrent parts, or of two upstream gradients, into the same pass.
    cells   the signatures of rnnkit.cells (the tests assert kernel == cell)
The forward steps overwrite their pre-activation argument with the activated gates: the cache
then costs no extra (B, G*H) array. rnnkit.kernels.sequence runs the steps over whole sequences.

Why rows: LLVM vectorises a j loop only after a run-time check that no output overlaps an input.
Over a whole (B, G*H) array the G gate blocks of every row interleave, so a check hoisted out of
the b loop fails and the scalar loop runs; per row the blocks are disjoint and the check passes.
tanh and sigmoid come from fastmath: vectorised rational approximations in float32, exact in
float64.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .fastmath import JIT_OPTIONS, sigmoid, tanh

_NL = {"tanh": 0, "relu": 1, "sigmoid": 2}
# numba's on-disk cache keys on this file's text alone, so the compiled kernels would outlive an
# edit of fastmath.py: this line changes with it (tests/test_kernels.py checks the hash).
FASTMATH_SHA = "cab96d21242c96a7"


def _row(a, b):
    """a[b], or None when a is None (chosen at compile time)."""


@overload(_row, inline="always")
def _row_impl(a, b):
    if a is types.none:
        return lambda a, b: None
    return lambda a, b: a[b]


@njit(inline="always")
def _act(a, kind):
    if kind == 0:
        return tanh(a)
    if kind == 1:
        return a if a > 0 else a * 0
    return sigmoid(a)


@njit(inline="always")
def _dact(h, kind):
    if kind == 0:
        return 1 - h * h
    if kind == 1:
        return h * 0 + (1 if h > 0 else 0)
    return h * (1 - h)


# -- rows -------------------------------------------------------------------------------------------
@njit(**JIT_OPTIONS)
def _rnn_row(ax, ah, kind, h):
    for j in range(h.shape[0]):
        a = ax[j]
        if ah is not None:
            a += ah[j]
        h[j] = _act(a, kind)


@njit(**JIT_OPTIONS)
def _rnn_row_back(dh, dh2, h, kind, da):
    for j in range(h.shape[0]):
        d = dh[j]
        if dh2 is not None:
            d += dh2[j]
        da[j] = d * _dact(h[j], kind)


@njit(inline="always")
def _lstm_c_fwd(a_i, a_f, a_g, a_o, cp, p, j):
    """The gates and c = f c_prev + i g of unit j from its pre-activations: (i, f, g, o, c_j).

    Peepholes (p not None): a_i += p_i c_prev, a_f += p_f c_prev, a_o += p_o c.
    """
    if p is not None:
        a_i, a_f = a_i + p[0, j] * cp[j], a_f + p[1, j] * cp[j]
    i, f, g = sigmoid(a_i), sigmoid(a_f), tanh(a_g)
    cc = f * cp[j] + i * g
    if p is not None:
        a_o = a_o + p[2, j] * cc
    return i, f, g, sigmoid(a_o), cc


@njit(**JIT_OPTIONS)
def _lstm_row(a, ah, cp, p, m, c):
    H = cp.shape[0]
    for j in range(H):
        a_i, a_f, a_g, a_o = a[j], a[H + j], a[2 * H + j], a[3 * H + j]
        if ah is not None:
            a_i, a_f, a_g, a_o = a_i + ah[j], a_f + ah[H + j], a_g + ah[2 * H + j], a_o + ah[3 * H + j]
        i, f, g, o, cc = _lstm_c_fwd(a_i, a_f, a_g, a_o, cp, p, j)
        a[j], a[H + j], a[2 * H + j], a[3 * H + j] = i, f, g, o
        c[j], m[j] = cc, o * tanh(cc)


@njit(inline="always")
def _lstm_c_back(dcj, da_o, i, f, g, cp, c, p, dc, dp, j):
    """From d c_j (and d a_o) back through c = f c_prev + i g: (d a_i, d a_f, d a_g); dc[j] <- d c_prev.

    Peepholes (p not None): a_o += p_o c adds to d c; a_i += p_i c_prev, a_f += p_f c_prev add to
    d c_prev; dp gets the three peephole gradients.
    """
    if p is not None:
        dcj += da_o * p[2, j]                                 # a_o += p_o c
    da_i = dcj * g * i * (1 - i)                              # c = f c_prev + i g
    da_f = dcj * cp[j] * f * (1 - f)
    dc[j] = dcj * f
    if p is not None:
        dc[j] += da_i * p[0, j] + da_f * p[1, j]
        dp[0, j] += da_i * cp[j]
        dp[1, j] += da_f * cp[j]
        dp[2, j] += da_o * c[j]
    return da_i, da_f, dcj * i * (1 - g * g)


@njit(**JIT_OPTIONS)
def _lstm_row_back(dm, dm2, dc, act, cp, c, p, da, dp):
    H = cp.shape[0]
    for j in range(H):
        i, f, g, o = act[j], act[H + j], act[2 * H + j], act[3 * H + j]
        d, tc = dm[j], tanh(c[j])
        if dm2 is not None:
            d += dm2[j]
        da_o = d * tc * o * (1 - o)                           # m = o tanh(c)
        dcj = dc[j] + d * o * (1 - tc * tc)
        da[j], da[H + j], da[2 * H + j] = _lstm_c_back(dcj, da_o, i, f, g, cp, c, p, dc, dp, j)
        da[3 * H + j] = da_o


@njit(**JIT_OPTIONS)
def _gru_row(a, ah, b_hn, hp, h, ah_n):
    H = hp.shape[0]
    for j in range(H):
        r = sigmoid(a[j] + ah[j])
        z = sigmoid(a[H + j] + ah[H + j])
        hn = ah[2 * H + j]
        if b_hn is not None:
            hn += b_hn[j]
        n = tanh(a[2 * H + j] + r * hn)
        a[j], a[H + j], a[2 * H + j], ah_n[j] = r, z, n, hn
        h[j] = (1 - z) * n + z * hp[j]


@njit(**JIT_OPTIONS)
def _gru_row_back(dh, dh2, dh3, rzn, ah_n, hp, dax, dah, dhz):
    H = hp.shape[0]
    for j in range(H):
        r, z, n, d = rzn[j], rzn[H + j], rzn[2 * H + j], dh[j]
        if dh2 is not None:
            d += dh2[j] + dh3[j]
        da_z = d * (hp[j] - n) * z * (1 - z)                 # h = (1 - z) n + z h_prev
        da_n = d * (1 - z) * (1 - n * n)                     # n = tanh(ax_n + r ah_n)
        da_r = da_n * ah_n[j] * r * (1 - r)
        dax[j], dax[H + j], dax[2 * H + j] = da_r, da_z, da_n
        dah[j], dah[H + j], dah[2 * H + j] = da_r, da_z, da_n * r
        dhz[j] = d * z


# -- steps: one row call per sequence b ------------------------------------------------------------
@njit(**JIT_OPTIONS)
def rnn_fwd(ax, ah, kind, h):
    """h = f(ax + ah), kind 0/1/2 = tanh/relu/sigmoid."""
    for b in range(h.shape[0]):
        _rnn_row(ax[b], _row(ah, b), kind, h[b])


@njit(**JIT_OPTIONS)
def rnn_bwd(dh, dh2, h, kind, da):
    """da = (dh + dh2) f'(h)."""
    for b in range(h.shape[0]):
        _rnn_row_back(dh[b], _row(dh2, b), h[b], kind, da[b])


@njit(**JIT_OPTIONS)
def lstm_fwd(a, ah, c_prev, peep, m, c):
    """a (B, 4H) <- i, f, g, o of a + ah; c, m (B, H). peep (3, H) or None."""
    for b in range(c.shape[0]):
        _lstm_row(a[b], _row(ah, b), c_prev[b], peep, m[b], c[b])


@njit(**JIT_OPTIONS)
def lstm_bwd(dm, dm2, dc, act, c_prev, c, peep, da, dpeep):
    """da (B, 4H) from dm (+ dm2); dc (B, H) <- dc_prev; with peep (3, H), dpeep (3, H) += its grads."""
    for b in range(c.shape[0]):
        _lstm_row_back(dm[b], _row(dm2, b), dc[b], act[b], c_prev[b], c[b], peep, da[b], dpeep)


@njit(**JIT_OPTIONS)
def gru_fwd(a, ah, b_hn, h_prev, h, ah_n):
    """reset_after: a (B, 3H) <- r, z, n; h, ah_n (B, H). b_hn (H,) is added to ah's n block, or None."""
    for b in range(h.shape[0]):
        _gru_row(a[b], ah[b], b_hn, h_prev[b], h[b], ah_n[b])


@njit(**JIT_OPTIONS)
def gru_bwd(dh, dh2, dh3, rzn, ah_n, h_prev, dax, dah, dhz):
    """dax, dah (B, 3H) from d = dh (+ dh2 + dh3, or None); dhz = d z, the gates' part of dh_prev."""
    for b in range(h_prev.shape[0]):
        _gru_row_back(dh[b], _row(dh2, b), _row(dh3, b), rzn[b], ah_n[b], h_prev[b], dax[b], dah[b],
                      dhz[b])


@njit(**JIT_OPTIONS)
def gru_rz_fwd(a_rz, r, z):
    """Cho form, stage 1: r, z = σ(a_rz's two blocks)."""
    B, H = r.shape
    for b in range(B):
        for j in range(H):
            r[b, j] = sigmoid(a_rz[b, j])
            z[b, j] = sigmoid(a_rz[b, H + j])


@njit(**JIT_OPTIONS)
def gru_cho_fwd(ax_n, ah_n, z, h_prev, h, n):
    """Cho form, stage 2: n = tanh(ax_n + ah_n), h = (1 - z) n + z h_prev."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            nn = tanh(ax_n[b, j] + ah_n[b, j])
            n[b, j] = nn
            h[b, j] = (1 - z[b, j]) * nn + z[b, j] * h_prev[b, j]


@njit(**JIT_OPTIONS)
def gru_cho_bwd_rz(dh, drh, r, z, n, h_prev, da_rz, dh_prev):
    """Cho form, backward of stage 1 (gates only)."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            rr, zz, hp = r[b, j], z[b, j], h_prev[b, j]
            da_rz[b, j] = drh[b, j] * hp * rr * (1 - rr)
            da_rz[b, H + j] = dh[b, j] * (hp - n[b, j]) * zz * (1 - zz)
            dh_prev[b, j] = dh[b, j] * zz + drh[b, j] * rr


# -- cells: the signatures of rnnkit.cells ------------------------------------------------------------
def rnn_cell(a, nonlinearity="tanh"):
    """h = f(a); a (B, H) -> h (B, H), cache."""
    h = np.empty_like(a)                                           # (B, H)
    rnn_fwd(a, None, _NL[nonlinearity], h)
    return h, h


def rnn_cell_backward(dh, cache, nonlinearity="tanh"):
    """da = dh * f'(a), written from the cached output h."""
    da = np.empty_like(cache)                                      # (B, H)
    rnn_bwd(dh, None, cache, _NL[nonlinearity], da)
    return da


def lstm_cell(a, c_prev, peep=None):
    """a (B, 4H), c_prev (B, H), peep (3, H) or None -> m (B, H), c (B, H), cache."""
    m, c = np.empty_like(c_prev), np.empty_like(c_prev)           # (B, H)
    act = a.copy()                                                 # (B, 4H) becomes i, f, g, o
    lstm_fwd(act, None, c_prev, peep, m, c)
    return m, c, (act, c_prev, c)


def lstm_cell_backward(dm, dc, cache, peep=None):
    """dm, dc (B, H) -> da (B, 4H), dc_prev (B, H), dpeep (3, H) or None."""
    act, c_prev, c = cache
    da, dc_prev = np.empty_like(act), dc.copy()                    # (B, 4H), (B, H)
    dpeep = np.zeros_like(peep) if peep is not None else None      # (3, H)
    lstm_bwd(dm, None, dc_prev, act, c_prev, c, peep, da, dpeep)
    return da, dc_prev, dpeep


def gru_cell(ax, ah, h_prev):
    """reset_after form: ax, ah (B, 3H), h_prev (B, H) -> h (B, H), cache."""
    h, ah_n = np.empty_like(h_prev), np.empty_like(h_prev)         # (B, H)
    rzn = ax.copy()                                                # (B, 3H) becomes r, z, n
    gru_fwd(rzn, ah, None, h_prev, h, ah_n)
    return h, (rzn, ah_n, h_prev)


def gru_cell_backward(dh, cache):
    """dh (B, H) -> dax (B, 3H), dah (B, 3H), dh_prev (B, H) through the gates only."""
    rzn, ah_n, h_prev = cache
    dax, dah, dh_prev = np.empty_like(rzn), np.empty_like(rzn), np.empty_like(h_prev)
    gru_bwd(dh, None, None, rzn, ah_n, h_prev, dax, dah, dh_prev)
    return dax, dah, dh_prev


def gru_rz(a_rz):
    """Cho form, stage 1: a_rz (B, 2H) -> r, z (B, H)."""
    B, H2 = a_rz.shape
    r, z = np.empty((B, H2 // 2), a_rz.dtype), np.empty((B, H2 // 2), a_rz.dtype)   # (B, H)
    gru_rz_fwd(a_rz, r, z)
    return r, z


def gru_cho_cell(ax_n, ah_n, z, h_prev):
    """Cho form, stage 2 -> h (B, H), n."""
    h, n = np.empty_like(h_prev), np.empty_like(h_prev)           # (B, H)
    gru_cho_fwd(ax_n, ah_n, z, h_prev, h, n)
    return h, n


def gru_cho_backward_n(dh, z, n):
    """Cho form: dh -> da_n = dh (1 - z)(1 - n^2)."""
    return dh * (1 - z) * (1 - n * n)


def gru_cho_backward_rz(dh, drh, r, z, n, h_prev):
    """Cho form: drh = d(r h_prev) -> da_rz (B, 2H), dh_prev (B, H) (gates only)."""
    B, H = h_prev.shape
    da_rz, dh_prev = np.empty((B, 2 * H), h_prev.dtype), np.empty_like(h_prev)   # (B, 2H), (B, H)
    gru_cho_bwd_rz(dh, drh, r, z, n, h_prev, da_rz, dh_prev)
    return da_rz, dh_prev
