"""GRU cell: one step, elementwise part. Gate order r, z, n (as PyTorch).

The input part ax = x W_x + b_x and the recurrent part ah = h W_h + b_h (each (B, 3H)) stay
separate, because the reset gate acts between them.

reset_after=True (PyTorch, cuDNN):
    r = σ(ax_r + ah_r),  z = σ(ax_z + ah_z)
    n = tanh(ax_n + r ⊙ ah_n)                        ah_n = h_{t-1} W_hn + b_hn
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

reset_after=False (Cho et al. 2014): the reset gate scales h before its matrix product,
    n = tanh(ax_n + (r ⊙ h_{t-1}) W_hn + b_hn)
so a step has two stages around that product: gru_rz gives r and z, gru_cho_cell the rest.
"""
import numpy as np

from ..functional import sigmoid


def gru_cell(ax, ah, h_prev):
    """reset_after form: ax, ah (B, 3H), h_prev (B, H) -> h (B, H), cache."""
    H = h_prev.shape[-1]
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    ah_n = ah[:, 2 * H:]
    n = np.tanh(ax[:, 2 * H:] + r * ah_n)
    h = (1 - z) * n + z * h_prev
    return h, (r, z, n, ah_n, h_prev)


def gru_cell_backward(dh, cache):
    """dh (B, H) -> dax (B, 3H), dah (B, 3H), dh_prev (B, H) through the gates only."""
    r, z, n, ah_n, h_prev = cache
    dn = dh * (1 - z)                              # h = (1 - z) n + z h_prev
    da_z = dh * (h_prev - n) * z * (1 - z)
    da_n = dn * (1 - n * n)                        # n = tanh(ax_n + r ah_n)
    da_r = da_n * ah_n * r * (1 - r)
    dax = np.concatenate([da_r, da_z, da_n], axis=1)
    dah = np.concatenate([da_r, da_z, da_n * r], axis=1)
    return dax, dah, dh * z


def gru_rz(a_rz):
    """Cho form, stage 1: a_rz (B, 2H) = ax_rz + ah_rz -> r, z (B, H)."""
    H = a_rz.shape[-1] // 2
    return sigmoid(a_rz[:, :H]), sigmoid(a_rz[:, H:])


def gru_cho_cell(ax_n, ah_n, z, h_prev):
    """Cho form, stage 2: ah_n = (r h_prev) W_hn + b_hn -> h (B, H), n."""
    n = np.tanh(ax_n + ah_n)
    return (1 - z) * n + z * h_prev, n


def gru_cho_backward_n(dh, z, n):
    """Cho form, backward of stage 2: dh (B, H) -> da_n (B, H), the gradient into ax_n and ah_n."""
    return dh * (1 - z) * (1 - n * n)              # h = (1 - z) n + z h_prev, n = tanh(ax_n + ah_n)


def gru_cho_backward_rz(dh, drh, r, z, n, h_prev):
    """Cho form, backward of stage 1: drh = d(r ⊙ h_prev) -> da_rz (B, 2H), dh_prev (B, H) (gates only)."""
    da_z = dh * (h_prev - n) * z * (1 - z)
    da_r = drh * h_prev * r * (1 - r)              # rh = r * h_prev
    return np.concatenate([da_r, da_z], axis=1), dh * z + drh * r
