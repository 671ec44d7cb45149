"""numba kernels for the layer-normalised LSTM and GRU: LN of h W_h, the gates and LN(c), one pass per row.

The equations are those of rnnkit.layers.variant_steps (LNSteps with LNLSTMCore, GRUVariantSteps),
with LN as in rnnkit.cells.layernorm (eps = EPS):
    n_h = LN(h_{t-1} W_h),  a = n_h ⊙ g_h + ax          ax = LN(x W_x) ⊙ g_x + b   (precomputed)
    LSTM: i, f, g, o = σ, σ, tanh, σ of a's blocks;  c = f c_{t-1} + i g;  n_c = LN(c)
          m = o ⊙ tanh(n_c ⊙ g_c + b_c)              peepholes: a_i, a_f += p c_{t-1}, a_o += p_o c
    GRU (reset_after): ah = n_h ⊙ g_h + b_h;  r, z = σ(ax + ah);  n = tanh(ax_n + r ⊙ ah_n)
          h = (1 - z) n + z h_{t-1}
LN backward, written from the cached n and 1/σ:  da = (dn - mean(dn) - n mean(dn ⊙ n)) / σ,
with dn = dy ⊙ g; dg = Σ dy ⊙ n and db = Σ dy are added into the caller's arrays.

As in cellkernels: row functions (one sequence b), then steps over (B, ...) arrays the caller owns.
The forward steps overwrite their arguments to make the cache: the raw h W_h becomes n_h, ax becomes
the activated gates. Row statistics accumulate in float64 (also for float32 data) in helpers
compiled with reassociation, so that their reductions vectorise.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..cells.layernorm import EPS
from .cellkernels import _lstm_c_back, _lstm_c_fwd, _row
from .fastmath import JIT_OPTIONS, sigmoid, tanh

REDUCE_OPTIONS = dict(JIT_OPTIONS, fastmath={"contract", "reassoc"})
# numba's on-disk cache keys on this file's text alone: this line changes with cellkernels.py (which
# carries fastmath.py's hash in turn; tests/test_layernorm_kernels.py checks it).
CELLKERNELS_SHA = "677f2e7271475f23"


def _like(x, ref):
    """x converted to ref's float type (float64 statistics -> the data's precision)."""


@overload(_like, inline="always")
def _like_impl(x, ref):
    if isinstance(ref, types.Float) and ref.bitwidth == 32:
        return lambda x, ref: np.float32(x)
    return lambda x, ref: np.float64(x)


# -- row statistics ---------------------------------------------------------------------------------
@njit(**REDUCE_OPTIONS)
def _stats(a):
    """mean and 1/sqrt(var + eps) of a row (two passes, float64)."""
    N = a.shape[0]
    s = 0.0
    for j in range(N):
        s += a[j]
    mu = s / N
    v = 0.0
    for j in range(N):
        d = a[j] - mu
        v += d * d
    return mu, 1.0 / math.sqrt(v / N + EPS)


@njit(**REDUCE_OPTIONS)
def _sums(dn, n):
    """mean(dn), mean(dn ⊙ n) of a row (float64)."""
    s1, s2 = 0.0, 0.0
    for j in range(n.shape[0]):
        s1 += dn[j]
        s2 += dn[j] * n[j]
    return s1 / n.shape[0], s2 / n.shape[0]


@njit(**JIT_OPTIONS)
def _normalise(a):
    """a <- (a - mean) / σ in place; returns 1/σ in a's precision."""
    mu, rs = _stats(a)
    mu, rs = _like(mu, a[0]), _like(rs, a[0])
    for j in range(a.shape[0]):
        a[j] = (a[j] - mu) * rs
    return rs


@njit(**JIT_OPTIONS)
def _ln_back(dn, n, rs, da):
    """da = (dn - mean(dn) - n mean(dn ⊙ n)) rs; dn and da may be the same row."""
    m1, m2 = _sums(dn, n)
    m1, m2 = _like(m1, rs), _like(m2, rs)
    for j in range(n.shape[0]):
        da[j] = (dn[j] - m1 - n[j] * m2) * rs


# -- rows ---------------------------------------------------------------------------------------------
@njit(**JIT_OPTIONS)
def _ln_row(a, g, b, y):
    """a <- n = LN(a), y = n g + b; returns 1/σ."""
    rs = _normalise(a)
    for j in range(a.shape[0]):
        y[j] = a[j] * g[j] + b[j]
    return rs


@njit(**JIT_OPTIONS)
def _ln_row_back(dy, n, rs, g, dg, db):
    """dy <- d(LN input); dg += dy n, db += dy."""
    for j in range(n.shape[0]):
        db[j] += dy[j]
        dg[j] += dy[j] * n[j]
        dy[j] *= g[j]
    _ln_back(dy, n, rs, dy)


@njit(**JIT_OPTIONS)
def _ln_lstm_row(nh, ax, g_h, cp, p, g_c, b_c, m, c, nc):
    """nh <- LN(nh); ax <- i, f, g, o; c, nc = LN(c), m. Returns 1/σ of h W_h and of c."""
    H = cp.shape[0]
    rh = _normalise(nh)
    for j in range(H):
        a_i = nh[j] * g_h[j] + ax[j]
        a_f = nh[H + j] * g_h[H + j] + ax[H + j]
        a_g = nh[2 * H + j] * g_h[2 * H + j] + ax[2 * H + j]
        a_o = nh[3 * H + j] * g_h[3 * H + j] + ax[3 * H + j]
        i, f, g, o, cc = _lstm_c_fwd(a_i, a_f, a_g, a_o, cp, p, j)
        ax[j], ax[H + j], ax[2 * H + j], ax[3 * H + j] = i, f, g, o
        c[j], nc[j] = cc, cc
    rc = _normalise(nc)
    for j in range(H):
        m[j] = ax[3 * H + j] * tanh(nc[j] * g_c[j] + b_c[j])
    return rh, rc


@njit(**JIT_OPTIONS)
def _ln_c_back(dm, dm2, act, nc, rc, g_c, b_c, da, dg_c, db_c):
    """Output stage m = o tanh(LN(c) g_c + b_c): da's o block <- da_o, da's i block <- d LN(c)."""
    H = nc.shape[0]
    for j in range(H):
        o, tc = act[3 * H + j], tanh(nc[j] * g_c[j] + b_c[j])
        d = dm[j]
        if dm2 is not None:
            d += dm2[j]
        da[3 * H + j] = d * tc * o * (1 - o)                 # m = o tanh(y)
        dy = d * o * (1 - tc * tc)
        db_c[j] += dy                                        # y = n_c g_c + b_c
        dg_c[j] += dy * nc[j]
        da[j] = dy * g_c[j]
    _ln_back(da[:H], nc, rc, da[:H])


@njit(**JIT_OPTIONS)
def _ln_lstm_row_back(dc, act, cp, c, p, da, dp):
    """Gates: da's i block holds d c from LN(c) on entry; da <- d a, dc <- dc_prev."""
    H = cp.shape[0]
    for j in range(H):
        i, f, g = act[j], act[H + j], act[2 * H + j]
        da_o = da[3 * H + j]
        da[j], da[H + j], da[2 * H + j] = _lstm_c_back(dc[j] + da[j], da_o, i, f, g, cp, c, p, dc, dp, j)


@njit(**JIT_OPTIONS)
def _ln_h_back(da, nh, rh, g_h, dg_h, dah):
    """a = n_h g_h + ax: dg_h += da n_h; dah <- d(h W_h) through LN."""
    for j in range(nh.shape[0]):
        dg_h[j] += da[j] * nh[j]
        dah[j] = da[j] * g_h[j]
    _ln_back(dah, nh, rh, dah)


@njit(**JIT_OPTIONS)
def _ln_gru_row(nh, ax, g_h, b_h, hp, h):
    """nh <- LN(nh); ax <- r, z, n; h. Returns 1/σ of h W_h."""
    H = hp.shape[0]
    rh = _normalise(nh)
    for j in range(H):
        r = sigmoid(ax[j] + (nh[j] * g_h[j] + b_h[j]))
        z = sigmoid(ax[H + j] + (nh[H + j] * g_h[H + j] + b_h[H + j]))
        n = tanh(ax[2 * H + j] + r * (nh[2 * H + j] * g_h[2 * H + j] + b_h[2 * H + j]))
        ax[j], ax[H + j], ax[2 * H + j] = r, z, n
        h[j] = (1 - z) * n + z * hp[j]
    return rh


@njit(**JIT_OPTIONS)
def _ln_gru_row_back(dh, dh2, dh3, rzn, nh, rh, g_h, b_h, hp, dax, dah, dhz, dg_h, db_h):
    """dax, dah (3H) from d = dh (+ dh2 + dh3); dhz = d z; dg_h, db_h += LN(h W_h)'s gain, shift grads."""
    H = hp.shape[0]
    for j in range(H):
        r, z, n, d = rzn[j], rzn[H + j], rzn[2 * H + j], dh[j]
        if dh2 is not None:
            d += dh2[j] + dh3[j]
        ah_n = nh[2 * H + j] * g_h[2 * H + j] + b_h[2 * H + j]
        da_z = d * (hp[j] - n) * z * (1 - z)                 # h = (1 - z) n + z h_prev
        da_n = d * (1 - z) * (1 - n * n)                     # n = tanh(ax_n + r ah_n)
        da_r = da_n * ah_n * r * (1 - r)
        dax[j], dax[H + j], dax[2 * H + j] = da_r, da_z, da_n
        dah[j], dah[H + j], dah[2 * H + j] = da_r, da_z, da_n * r
        dhz[j] = d * z
    for j in range(3 * H):                                   # ah = n_h g_h + b_h
        db_h[j] += dah[j]
        dg_h[j] += dah[j] * nh[j]
        dah[j] *= g_h[j]
    _ln_back(dah, nh, rh, dah)


# -- steps: one row call per sequence b ------------------------------------------------------------
@njit(**JIT_OPTIONS)
def ln_fwd(a, g, b, y, rs):
    """Rows of a (N, F) <- LN(a); y = LN(a) g + b (N, F); rs (N,) <- 1/σ."""
    for k in range(a.shape[0]):
        rs[k] = _ln_row(a[k], g, b, y[k])


@njit(**JIT_OPTIONS)
def ln_bwd(dy, n, rs, g, dg, db):
    """Rows of dy (N, F) <- d(LN input); dg += Σ dy n, db += Σ dy."""
    for k in range(n.shape[0]):
        _ln_row_back(dy[k], n[k], rs[k], g, dg, db)


@njit(**JIT_OPTIONS)
def ln_lstm_fwd(nh, ax, g_h, c_prev, peep, g_c, b_c, m, c, nc, rh, rc):
    """nh (B, 4H) h W_h <- LN; ax (B, 4H) <- i, f, g, o; m, c, nc (B, H); rh, rc (B,) <- 1/σ."""
    for b in range(c.shape[0]):
        rh[b], rc[b] = _ln_lstm_row(nh[b], ax[b], g_h, c_prev[b], peep, g_c, b_c, m[b], c[b], nc[b])


@njit(**JIT_OPTIONS)
def ln_lstm_bwd(dm, dm2, dc, act, nh, c_prev, c, nc, rh, rc, g_h, peep, g_c, b_c,
                da, dah, dg_h, dpeep, dg_c, db_c):
    """da (B, 4H) = d a and dah (B, 4H) = d(h W_h) from dm (+ dm2); dc (B, H) <- dc_prev; grads added."""
    for b in range(c.shape[0]):
        _ln_c_back(dm[b], _row(dm2, b), act[b], nc[b], rc[b], g_c, b_c, da[b], dg_c, db_c)
        _ln_lstm_row_back(dc[b], act[b], c_prev[b], c[b], peep, da[b], dpeep)
        _ln_h_back(da[b], nh[b], rh[b], g_h, dg_h, dah[b])


@njit(**JIT_OPTIONS)
def ln_gru_fwd(nh, ax, g_h, b_h, h_prev, h, rh):
    """nh (B, 3H) h W_h <- LN; ax (B, 3H) <- r, z, n; h (B, H); rh (B,) <- 1/σ."""
    for b in range(h.shape[0]):
        rh[b] = _ln_gru_row(nh[b], ax[b], g_h, b_h, h_prev[b], h[b])


@njit(**JIT_OPTIONS)
def ln_gru_bwd(dh, dh2, dh3, rzn, nh, rh, g_h, b_h, h_prev, dax, dah, dhz, dg_h, db_h):
    """dax (B, 3H), dah (B, 3H) = d(h W_h) from d = dh (+ dh2 + dh3); dhz = d z; dg_h, db_h added."""
    for b in range(h_prev.shape[0]):
        _ln_gru_row_back(dh[b], _row(dh2, b), _row(dh3, b), rzn[b], nh[b], rh[b], g_h, b_h, h_prev[b],
                         dax[b], dah[b], dhz[b], dg_h, db_h)
