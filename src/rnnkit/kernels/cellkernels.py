"""numba kernels for rnnkit.cells; see that package for the equations each one implements."""
import math

import numpy as np
from numba import njit

_NL = {"tanh": 0, "relu": 1, "sigmoid": 2}
_opts = dict(cache=True, nogil=True)


@njit(inline="always")
def _sigmoid(a):
    if a >= 0:
        return 1 / (1 + math.exp(-a))
    e = math.exp(a)
    return e / (1 + e)


@njit(inline="always")
def _act(a, kind):
    if kind == 0:
        return math.tanh(a)
    if kind == 1:
        return a if a > 0 else a * 0
    return _sigmoid(a)


@njit(inline="always")
def _dact(h, kind):
    if kind == 0:
        return 1 - h * h
    if kind == 1:
        return 1.0 if h > 0 else 0.0
    return h * (1 - h)


# -- vanilla RNN ------------------------------------------------------------------------------------
@njit(**_opts)
def _rnn_fwd(a, kind, h):
    B, H = a.shape
    for b in range(B):
        for j in range(H):
            h[b, j] = _act(a[b, j], kind)


@njit(**_opts)
def _rnn_bwd(dh, h, kind, da):
    B, H = h.shape
    for b in range(B):
        for j in range(H):
            da[b, j] = dh[b, j] * _dact(h[b, j], kind)


def rnn_cell(a, nonlinearity="tanh"):
    """h = f(a); a (B, H) -> h (B, H), cache."""
    h = np.empty_like(a)
    _rnn_fwd(a, _NL[nonlinearity], h)
    return h, h


def rnn_cell_backward(dh, cache, nonlinearity="tanh"):
    """da = dh * f'(a), written from the cached output h."""
    da = np.empty_like(cache)
    _rnn_bwd(dh, cache, _NL[nonlinearity], da)
    return da


# -- LSTM -------------------------------------------------------------------------------------------
@njit(**_opts)
def _lstm_fwd(a, c_prev, peep, use_peep, m, c, act, tc):
    B, H = c_prev.shape
    for b in range(B):
        for j in range(H):
            cp = c_prev[b, j]
            ai, af, ag, ao = a[b, j], a[b, H + j], a[b, 2 * H + j], a[b, 3 * H + j]
            if use_peep:
                ai += peep[0, j] * cp
                af += peep[1, j] * cp
            i, f, g = _sigmoid(ai), _sigmoid(af), math.tanh(ag)
            cc = f * cp + i * g
            if use_peep:
                ao += peep[2, j] * cc
            o = _sigmoid(ao)
            t = math.tanh(cc)
            act[b, j], act[b, H + j], act[b, 2 * H + j], act[b, 3 * H + j] = i, f, g, o
            c[b, j], tc[b, j], m[b, j] = cc, t, o * t


@njit(**_opts)
def _lstm_bwd(dm, dc_in, act, c_prev, c, tc, peep, use_peep, da, dc_prev, dpeep):
    B, H = c_prev.shape
    for b in range(B):
        for j in range(H):
            i, f, g, o = act[b, j], act[b, H + j], act[b, 2 * H + j], act[b, 3 * H + j]
            t, cp = tc[b, j], c_prev[b, j]
            dao = dm[b, j] * t * o * (1 - o)
            dc = dc_in[b, j] + dm[b, j] * o * (1 - t * t)
            if use_peep:
                dc += dao * peep[2, j]
            dai = dc * g * i * (1 - i)
            daf = dc * cp * f * (1 - f)
            da[b, j], da[b, H + j] = dai, daf
            da[b, 2 * H + j], da[b, 3 * H + j] = dc * i * (1 - g * g), dao
            dcp = dc * f
            if use_peep:
                dcp += dai * peep[0, j] + daf * peep[1, j]
                dpeep[0, j] += dai * cp
                dpeep[1, j] += daf * cp
                dpeep[2, j] += dao * c[b, j]
            dc_prev[b, j] = dcp


def lstm_cell(a, c_prev, peep=None):
    """a (B, 4H), c_prev (B, H), peep (3, H) or None -> m (B, H), c (B, H), cache."""
    B, H = c_prev.shape
    use = peep is not None
    p = peep if use else np.zeros((3, H), a.dtype)
    m, c, tc = np.empty_like(c_prev), np.empty_like(c_prev), np.empty_like(c_prev)
    act = np.empty_like(a)                                         # (B, 4H) activated gates
    _lstm_fwd(a, c_prev, p, use, m, c, act, tc)
    return m, c, (act, c_prev, c, tc)


def lstm_cell_backward(dm, dc, cache, peep=None):
    """dm, dc (B, H) -> da (B, 4H), dc_prev (B, H), dpeep (3, H) or None."""
    act, c_prev, c, tc = cache
    use = peep is not None
    p = peep if use else np.zeros((3, 1), act.dtype)
    da, dc_prev = np.empty_like(act), np.empty_like(c_prev)
    dpeep = np.zeros((3, c_prev.shape[1]) if use else (3, 1), act.dtype)
    _lstm_bwd(dm, dc, act, c_prev, c, tc, p, use, da, dc_prev, dpeep)
    return da, dc_prev, dpeep if use else None


# -- GRU --------------------------------------------------------------------------------------------
@njit(**_opts)
def _gru_fwd(ax, ah, h_prev, h, r, z, n):
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            rr = _sigmoid(ax[b, j] + ah[b, j])
            zz = _sigmoid(ax[b, H + j] + ah[b, H + j])
            nn = math.tanh(ax[b, 2 * H + j] + rr * ah[b, 2 * H + j])
            r[b, j], z[b, j], n[b, j] = rr, zz, nn
            h[b, j] = (1 - zz) * nn + zz * h_prev[b, j]


@njit(**_opts)
def _gru_bwd(dh, r, z, n, ah, h_prev, dax, dah, dh_prev):
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            rr, zz, nn, d = r[b, j], z[b, j], n[b, j], dh[b, j]
            daz = d * (h_prev[b, j] - nn) * zz * (1 - zz)
            dan = d * (1 - zz) * (1 - nn * nn)
            dar = dan * ah[b, 2 * H + j] * rr * (1 - rr)
            dax[b, j], dax[b, H + j], dax[b, 2 * H + j] = dar, daz, dan
            dah[b, j], dah[b, H + j], dah[b, 2 * H + j] = dar, daz, dan * rr
            dh_prev[b, j] = d * zz


def gru_cell(ax, ah, h_prev):
    """reset_after form: ax, ah (B, 3H), h_prev (B, H) -> h (B, H), cache."""
    h, r, z, n = (np.empty_like(h_prev) for _ in range(4))
    _gru_fwd(ax, ah, h_prev, h, r, z, n)
    return h, (r, z, n, ah, h_prev)


def gru_cell_backward(dh, cache):
    """dh (B, H) -> dax (B, 3H), dah (B, 3H), dh_prev (B, H) through the gates only."""
    r, z, n, ah, h_prev = cache
    dax, dah, dh_prev = np.empty_like(ah), np.empty_like(ah), np.empty_like(h_prev)
    _gru_bwd(dh, r, z, n, ah, h_prev, dax, dah, dh_prev)
    return dax, dah, dh_prev


@njit(**_opts)
def _gru_rz(a_rz, r, z):
    B, H = r.shape
    for b in range(B):
        for j in range(H):
            r[b, j] = _sigmoid(a_rz[b, j])
            z[b, j] = _sigmoid(a_rz[b, H + j])


@njit(**_opts)
def _gru_cho_fwd(ax_n, ah_n, z, h_prev, h, n):
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            nn = math.tanh(ax_n[b, j] + ah_n[b, j])
            n[b, j] = nn
            h[b, j] = (1 - z[b, j]) * nn + z[b, j] * h_prev[b, j]


@njit(**_opts)
def _gru_cho_bwd_rz(dh, drh, r, z, n, h_prev, da_rz, dh_prev):
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            rr, zz, hp = r[b, j], z[b, j], h_prev[b, j]
            da_rz[b, j] = drh[b, j] * hp * rr * (1 - rr)
            da_rz[b, H + j] = dh[b, j] * (hp - n[b, j]) * zz * (1 - zz)
            dh_prev[b, j] = dh[b, j] * zz + drh[b, j] * rr


def gru_rz(a_rz):
    """Cho form, stage 1: a_rz (B, 2H) -> r, z (B, H)."""
    B, H2 = a_rz.shape
    r, z = np.empty((B, H2 // 2), a_rz.dtype), np.empty((B, H2 // 2), a_rz.dtype)
    _gru_rz(a_rz, r, z)
    return r, z


def gru_cho_cell(ax_n, ah_n, z, h_prev):
    """Cho form, stage 2 -> h (B, H), n."""
    h, n = np.empty_like(h_prev), np.empty_like(h_prev)
    _gru_cho_fwd(ax_n, ah_n, z, h_prev, h, n)
    return h, n


def gru_cho_backward_n(dh, z, n):
    """Cho form: dh -> da_n = dh (1 - z)(1 - n^2)."""
    return dh * (1 - z) * (1 - n * n)


def gru_cho_backward_rz(dh, drh, r, z, n, h_prev):
    """Cho form: drh = d(r h_prev) -> da_rz (B, 2H), dh_prev (B, H) (gates only)."""
    B, H = h_prev.shape
    da_rz, dh_prev = np.empty((B, 2 * H), h_prev.dtype), np.empty_like(h_prev)
    _gru_cho_bwd_rz(dh, drh, r, z, n, h_prev, da_rz, dh_prev)
    return da_rz, dh_prev
