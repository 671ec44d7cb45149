"""Steps of the layer-normalised LSTM and GRU on the fused row kernels of rnnkit.kernels.lnkernels.

The equations and the Steps contract of rnnkit.layers.variant_steps (LNSteps with LNLSTMCore, and
GRUVariantSteps with layer norm), which stay the readable NumPy reference; the tests assert the two
agree. One kernel call per step does LN(h W_h), the gates and (LSTM) the LN(c) output stage, and
one per step back; LN(x W_x) runs as one row kernel over all T*B rows. VariantRecurrent's step
loop takes these for what the fused whole-sequence runners (rnnkit.kernels.lnsequence) leave
out: lengths, zoneout, recurrent dropout (the LSTM's through DroppedState) and the projection.
"""
import numpy as np

from ..kernels import lnkernels as K
from ..kernels.lnsequence import ln_projection, ln_projection_back


def _sum(extras, i):
    """Σ_t extras[t][i]: per-step parameter gradients added up."""
    return np.sum([e[i] for e in extras], axis=0)


def _rows(a):
    """(T, B, F) -> (T*B, F) view."""
    return a.reshape(-1, a.shape[-1])


class LNLSTMKernelSteps:
    """a_t = AX_t + LN(h_{t-1} W_h) ⊙ g_h; h_t = o ⊙ tanh(LN(c_t) ⊙ g_c + b_c) [W_hr]; peepholes."""
    n_gates, n_states, fold_bias, shared = 4, 2, True, False

    def __init__(self, peepholes, proj):
        self.peepholes, self.proj = peepholes, proj

    def project(self, P, x):
        return ln_projection(P, x, P["b_x"] + P["b_h"])

    def project_back(self, P, G, x, dAX, cache):
        return ln_projection_back(P, G, x, dAX, cache, fold=True)

    def step(self, P, ax, state):
        h_prev, c_prev = state
        B = c_prev.shape[0]
        nh, act = h_prev @ P["W_h"], ax.copy()                         # (B, 4H) become LN(h W_h), i f g o
        m, c, nc = np.empty_like(c_prev), np.empty_like(c_prev), np.empty_like(c_prev)   # (B, H)
        rs = np.empty((2, B), c_prev.dtype)                            # (2, B) 1/σ of h W_h and of c
        c_prev = np.ascontiguousarray(c_prev)
        K.ln_lstm_fwd(nh, act, P["ln_h_g"], c_prev, P["p"] if self.peepholes else None, P["ln_c_g"],
                      P["ln_c_b"], m, c, nc, rs[0], rs[1])
        h = m @ P["W_hr"] if self.proj else m                          # (B, P) with a projection
        return h, (h, c), ((act, nh, c_prev, c, nc, rs), m)       # as LSTMSteps: (cell cache, m)

    def step_back(self, P, dh, drest, cache):
        (act, nh, c_prev, c, nc, rs), _ = cache
        H = c.shape[1]
        dm = np.ascontiguousarray(dh @ P["W_hr"].T if self.proj else dh)
        da, dah, dc = np.empty_like(act), np.empty_like(act), np.array(drest[0], order="C")  # (B, 4H), (B, H)
        dg_h, dg_c, db_c = np.zeros(4 * H, c.dtype), np.zeros(H, c.dtype), np.zeros(H, c.dtype)
        dpeep = np.zeros_like(P["p"]) if self.peepholes else None      # (3, H)
        K.ln_lstm_bwd(dm, None, dc, act, nh, c_prev, c, nc, rs[0], rs[1], P["ln_h_g"],
                      P["p"] if self.peepholes else None, P["ln_c_g"], P["ln_c_b"], da, dah, dg_h, dpeep,
                      dg_c, db_c)
        return da, dah, dah @ P["W_h"].T, (dc,), (dg_h, dg_c, db_c, dpeep, dh if self.proj else None)

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        G["W_h"] += _rows(Hprev).T @ _rows(dAH)
        G["ln_h_g"] += _sum(extras, 0)
        G["ln_c_g"] += _sum(extras, 1)
        G["ln_c_b"] += _sum(extras, 2)
        if self.peepholes:
            G["p"] += _sum(extras, 3)
        if self.proj:
            M = np.stack([c[1] for c in caches])                       # (T, B, H)
            G["W_hr"] += _rows(M).T @ _rows(np.stack([e[4] for e in extras]))


class LNGRUKernelSteps:
    """GRU (reset_after): ah = LN((h ⊙ m_h) W_h) ⊙ g_h + b_h, ax = LN(x W_x) ⊙ g_x + b_x; r, z, n"""
    n_gates, n_states, fold_bias, shared = 3, 1, False, False

    def project(self, P, x):
        return ln_projection(P, x, P["b_x"])

    def project_back(self, P, G, x, dAX, cache):
        return ln_projection_back(P, G, x, dAX, cache, fold=False)

    def step(self, P, ax, state):
        h_prev, m = np.ascontiguousarray(state[0]), P.get("m_h")
        nh = (h_prev if m is None else h_prev * m) @ P["W_h"]            # (B, 3H) becomes LN(h W_h)
        rzn, h = ax.copy(), np.empty_like(h_prev)                      # (B, 3H) becomes r, z, n; (B, H)
        rs = np.empty(h_prev.shape[0], h_prev.dtype)                   # (B,) 1/σ of h W_h
        K.ln_gru_fwd(nh, rzn, P["ln_h_g"], P["b_h"], h_prev, h, rs)
        return h, (h,), (rzn, nh, rs, h_prev)

    def step_back(self, P, dh, drest, cache):
        rzn, nh, rs, h_prev = cache
        dax, dah, dhz = np.empty_like(rzn), np.empty_like(rzn), np.empty_like(h_prev)   # (B, 3H), (B, H)
        dg_h, db_h = np.zeros_like(P["b_h"]), np.zeros_like(P["b_h"])   # (3H,)
        K.ln_gru_bwd(np.ascontiguousarray(dh), None, None, rzn, nh, rs, P["ln_h_g"], P["b_h"], h_prev, dax,
                     dah, dhz, dg_h, db_h)
        dh_in = dah @ P["W_h"].T                                        # (B, H) into h ⊙ m_h
        m = P.get("m_h")
        return dax, dah, dhz + (dh_in if m is None else dh_in * m), (), (db_h, dg_h)

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        m = P.get("m_h")
        G["W_h"] += _rows(Hprev if m is None else Hprev * m).T @ _rows(dAH)
        G["b_h"] += _sum(extras, 0)
        G["ln_h_g"] += _sum(extras, 1)
