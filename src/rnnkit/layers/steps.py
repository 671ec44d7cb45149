"""One time step of each cell with its matrix products: the part of the unroll that differs by cell.

Each Steps object has
    step(P, ax, state)              -> h, new_state, cache       ax = x_t W_x + b (B, G*H), precomputed
    step_back(P, dh, drest, cache)  -> dax, dah, dh_prev, drest_prev, extra
    param_grads(P, G, Hprev, dAH, caches, extras)   adds dW_h, db_h (and cell extras) as GEMMs over T*B
P and G map parameter names to arrays and gradients; state is (h,) or (h, c). The elementwise math
comes from `fns`: either rnnkit.cells (readable NumPy) or rnnkit.kernels (numba), same signatures.
`fold_bias`: b_h can be added once into ax instead of every step; `shared`: dax is dah.
"""
import numpy as np


def _rows(a):
    """(T, B, F) -> (T*B, F) view."""
    return a.reshape(-1, a.shape[-1])


class RNNSteps:
    """h_t = f(x_t W_x + h_{t-1} W_h + b)."""
    n_gates, n_states, fold_bias, shared = 1, 1, True, True

    def __init__(self, fns, nonlinearity):
        self.fns, self.nonlinearity = fns, nonlinearity

    def step(self, P, ax, state):
        a = state[0] @ P["W_h"]                    # (B, H)
        a += ax
        h, cache = self.fns.rnn_cell(a, self.nonlinearity)
        return h, (h,), cache

    def step_back(self, P, dh, drest, cache):
        da = self.fns.rnn_cell_backward(dh, cache, self.nonlinearity)
        return da, da, da @ P["W_h"].T, (), None

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        G["W_h"] += _rows(Hprev).T @ _rows(dAH)
        G["b_h"] += _rows(dAH).sum(0)


class LSTMSteps:
    """LSTM with optional peepholes ("p", (3, H)) and projection ("W_hr", (H, P))."""
    n_gates, n_states, fold_bias, shared = 4, 2, True, True

    def __init__(self, fns, peepholes, proj):
        self.fns, self.peepholes, self.proj = fns, peepholes, proj

    def step(self, P, ax, state):
        h_prev, c_prev = state
        a = h_prev @ P["W_h"]                      # (B, 4H)
        a += ax
        m, c, cache = self.fns.lstm_cell(a, c_prev, P["p"] if self.peepholes else None)
        h = m @ P["W_hr"] if self.proj else m      # (B, P) with a projection
        return h, (h, c), (cache, m)

    def step_back(self, P, dh, drest, cache):
        cell_cache, _ = cache
        dm = dh @ P["W_hr"].T if self.proj else dh
        da, dc_prev, dpeep = self.fns.lstm_cell_backward(dm, drest[0], cell_cache,
                                                         P["p"] if self.peepholes else None)
        return da, da, da @ P["W_h"].T, (dc_prev,), (dpeep, dh if self.proj else None)

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        G["W_h"] += _rows(Hprev).T @ _rows(dAH)
        G["b_h"] += _rows(dAH).sum(0)
        if self.peepholes:
            G["p"] += np.sum([e[0] for e in extras], axis=0)
        if self.proj:
            M = np.stack([c[1] for c in caches])   # (T, B, H)
            dH = np.stack([e[1] for e in extras])  # (T, B, P)
            G["W_hr"] += _rows(M).T @ _rows(dH)


class GRUSteps:
    """GRU, reset_after form: n = tanh(ax_n + r * (h W_hn + b_hn))."""
    n_gates, n_states, fold_bias, shared = 3, 1, False, False

    def __init__(self, fns):
        self.fns = fns

    def step(self, P, ax, state):
        h_prev = state[0]
        ah = h_prev @ P["W_h"]                     # (B, 3H)
        ah += P["b_h"]
        h, cache = self.fns.gru_cell(ax, ah, h_prev)
        return h, (h,), cache

    def step_back(self, P, dh, drest, cache):
        dax, dah, dh_prev = self.fns.gru_cell_backward(dh, cache)
        dh_prev += dah @ P["W_h"].T
        return dax, dah, dh_prev, (), None

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        G["W_h"] += _rows(Hprev).T @ _rows(dAH)
        G["b_h"] += _rows(dAH).sum(0)


class ChoGRUSteps:
    """GRU, Cho et al. 2014 form: n = tanh(ax_n + (r * h) W_hn + b_hn). b_h is folded into ax."""
    n_gates, n_states, fold_bias, shared = 3, 1, True, True

    def __init__(self, fns):
        self.fns = fns

    def step(self, P, ax, state):
        h_prev = state[0]
        W_h, H = P["W_h"], h_prev.shape[1]
        a_rz = h_prev @ W_h[:, :2 * H]             # (B, 2H)
        a_rz += ax[:, :2 * H]
        r, z = self.fns.gru_rz(a_rz)
        rh = r * h_prev
        ah_n = rh @ W_h[:, 2 * H:]                 # (B, H); b_hn is already in ax
        h, n = self.fns.gru_cho_cell(ax[:, 2 * H:], ah_n, z, h_prev)
        return h, (h,), (r, z, n, h_prev, rh)

    def step_back(self, P, dh, drest, cache):
        r, z, n, h_prev, _ = cache
        W_h, H = P["W_h"], h_prev.shape[1]
        da_n = self.fns.gru_cho_backward_n(dh, z, n)
        drh = da_n @ W_h[:, 2 * H:].T
        da_rz, dh_prev = self.fns.gru_cho_backward_rz(dh, drh, r, z, n, h_prev)
        dh_prev += da_rz @ W_h[:, :2 * H].T
        da = np.concatenate([da_rz, da_n], axis=1)
        return da, da, dh_prev, (), None

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        H = Hprev.shape[-1]
        RH = np.stack([c[4] for c in caches])      # (T, B, H)
        G["W_h"][:, :2 * H] += _rows(Hprev).T @ _rows(dAH[..., :2 * H])
        G["W_h"][:, 2 * H:] += _rows(RH).T @ _rows(dAH[..., 2 * H:])
        G["b_h"] += _rows(dAH).sum(0)
