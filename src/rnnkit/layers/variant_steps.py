"""Steps of the cell variants: layer normalisation, recurrent dropout, and cores for plug-in cells.

Same contract as rnnkit.layers.steps (step, step_back, param_grads, n_gates, n_states, fold_bias,
shared), plus an optional input stage that the variant unroll calls once for all T steps:
    project(P, X)                     -> AX (T, B, G*H), cache      default: AX = X W_x + b
    project_back(P, G, X, dAX, cache) -> dX                         adds dW_x, db_x (...)
P may hold this call's recurrent-dropout mask P["m_h"] (B, H_out); without it nothing is masked.

Layer normalisation (Ba et al. 2016, §3.1; LN over all G*H pre-activations together, as the paper
and haste's LayerNormLSTM/GRU; the shift of each normalised part is the layer's bias b_x or b_h):
    RNN, LSTM, plug-in:  a_t = LN(x_t W_x) ⊙ g_x + b_x + LN(h_{t-1} W_h) ⊙ g_h + b_h,  then the cell
    LSTM output:         h_t = o_t ⊙ tanh(LN(c_t) ⊙ g_c + b_c)      c_t itself is carried un-normalised
    GRU (reset_after):   ax = LN(x W_x) ⊙ g_x + b_x,  ah = LN(h W_h) ⊙ g_h + b_h,  r, z, n as usual
LN(x W_x) has no dependence on time, so it runs once over all T*B rows before the loop.

Recurrent dropout (Gal & Ghahramani 2016): h_{t-1} W_h becomes (h_{t-1} ⊙ m_h) W_h, with one mask
per sequence for all t; dW_h = (H_prev ⊙ m_h)^T dA_h. Where h_{t-1} enters only through that
product (RNN, LSTM, plug-in cells) DroppedState wraps the plain Steps; the GRU's interpolation
z ⊙ h_{t-1} keeps the unmasked h_{t-1}.

The elementwise gate math runs through `fns` (rnnkit.kernels or rnnkit.cells); the normalisation
and the LSTM's LN(c) output stage are NumPy. These classes are the readable reference: with the
numba kernels, the LN-LSTM and LN-GRU take rnnkit.layers.ln_steps instead (all of LN fused).
"""
import numpy as np

from .. import cells
from ..cells.layernorm import layer_norm, layer_norm_backward
from ..functional import sigmoid
from .steps import ChoGRUSteps


def _rows(a):
    """(T, B, F) -> (T*B, F) view."""
    return a.reshape(-1, a.shape[-1])


def _sum(extras, i):
    """Σ_t extras[t][i]: per-step parameter gradients added up."""
    return np.sum([e[i] for e in extras], axis=0)


# -- the input stage: once for all T steps -------------------------------------------------------
def plain_project(P, x, b):
    """AX = X W_x + b -> AX (T, B, G*H), no cache."""
    T, B, D = x.shape
    return (x.reshape(T * B, D) @ P["W_x"] + b).reshape(T, B, -1), None    # (T, B, G*H)


def plain_project_back(P, G, x, dAX):
    """Adds dW_x, db_x -> dX (T, B, D)."""
    T, B, D = x.shape
    rows = _rows(dAX)
    G["W_x"] += x.reshape(T * B, D).T @ rows
    G["b_x"] += rows.sum(0)
    return (rows @ P["W_x"].T).reshape(T, B, D)


def project(steps, P, x):
    """The input stage of any Steps: steps.project where they have one, else X W_x + b."""
    if hasattr(steps, "project"):
        return steps.project(P, x)
    return plain_project(P, x, P["b_x"] + P["b_h"] if steps.fold_bias else P["b_x"])


def project_back(steps, P, G, x, dAX, cache):
    """Backward of project: adds the input stage's parameter gradients -> dX (T, B, D)."""
    if hasattr(steps, "project_back"):
        return steps.project_back(P, G, x, dAX, cache)
    return plain_project_back(P, G, x, dAX)


def ln_project(P, x, b):
    """AX = LN(X W_x) ⊙ g_x + b over all T*B rows -> AX (T, B, G*H), LN cache."""
    T, B, D = x.shape
    AX, cache = layer_norm(x.reshape(T * B, D) @ P["W_x"], P["ln_x_g"])   # (T*B, G*H)
    AX += b
    return AX.reshape(T, B, -1), cache


def ln_project_back(P, G, x, dAX, cache, fold):
    """Backward of ln_project: adds db_x (and db_h when folded), dg_x, dW_x -> dX (T, B, D)."""
    T, B, D = x.shape
    rows = _rows(dAX)
    db = rows.sum(0)                                                       # (G*H,)
    G["b_x"] += db
    if fold:
        G["b_h"] += db
    dXW, dg = layer_norm_backward(rows, cache, P["ln_x_g"])               # (T*B, G*H)
    G["ln_x_g"] += dg
    G["W_x"] += x.reshape(T * B, D).T @ dXW
    return (dXW @ P["W_x"].T).reshape(T, B, D)


# -- cores: the cell given a = (input part) + (recurrent part) -------------------------------------
class RNNCore:
    """h = f(a)."""
    n_gates, n_states = 1, 1

    def __init__(self, fns, nonlinearity):
        self.fns, self.nonlinearity = fns, nonlinearity

    def forward(self, P, a, rest):
        h, cache = self.fns.rnn_cell(a, self.nonlinearity)
        return h, (), cache

    def backward(self, P, dh, drest, cache):
        return self.fns.rnn_cell_backward(dh, cache, self.nonlinearity), (), None

    def param_grads(self, P, G, caches, extras):
        pass


class LNLSTMCore:
    """LSTM with h = o ⊙ tanh(LN(c) ⊙ g_c + b_c); optional peepholes and projection (as LSTMSteps).

    i, f, g and c come from fns.lstm_cell (its own output m is not used); o, the normalisation and
    m are NumPy. Backward: fns.lstm_cell_backward with dm = 0 gives da_i, da_f, da_g and dc_prev
    from the total dc; da_o is set here.
    """
    n_gates, n_states = 4, 2

    def __init__(self, fns, peepholes, proj):
        self.fns, self.peepholes, self.proj = fns, peepholes, proj

    def forward(self, P, a, rest):
        c_prev, = rest
        H = c_prev.shape[1]
        peep = P["p"] if self.peepholes else None
        _, c, gates = self.fns.lstm_cell(a, c_prev, peep)
        a_o = a[:, 3 * H:] + peep[2] * c if self.peepholes else a[:, 3 * H:]
        o = sigmoid(a_o)                                                   # (B, H)
        cn, ln = layer_norm(c, P["ln_c_g"], P["ln_c_b"])                   # (B, H)
        tc = np.tanh(cn)
        m = o * tc                                                         # (B, H)
        h = m @ P["W_hr"] if self.proj else m                              # (B, P) with a projection
        return h, (c,), (gates, c, o, tc, ln, m)

    def backward(self, P, dh, drest, cache):
        gates, c, o, tc, ln, m = cache
        H = c.shape[1]
        dm = dh @ P["W_hr"].T if self.proj else dh
        da_o = dm * tc * o * (1 - o)                                       # m = o tanh(cn)
        dcn = dm * o * (1 - tc * tc)
        dc, dg_c = layer_norm_backward(dcn, ln, P["ln_c_g"])               # cn = LN(c) g_c + b_c
        dc += drest[0]
        peep = P["p"] if self.peepholes else None
        if self.peepholes:
            dc += da_o * peep[2]                                           # a_o += p_o c
        da, dc_prev, dpeep = self.fns.lstm_cell_backward(np.zeros_like(dc), dc, gates, peep)
        da[:, 3 * H:] = da_o
        if self.peepholes:
            dpeep[2] = (da_o * c).sum(0)
        return da, (dc_prev,), (dg_c, dcn.sum(0), dpeep, dh if self.proj else None)

    def param_grads(self, P, G, caches, extras):
        G["ln_c_g"] += _sum(extras, 0)
        G["ln_c_b"] += _sum(extras, 1)
        if self.peepholes:
            G["p"] += _sum(extras, 2)
        if self.proj:
            M = np.stack([c[5] for c in caches])                           # (T, B, H)
            G["W_hr"] += _rows(M).T @ _rows(np.stack([e[3] for e in extras]))


# -- steps around a core -------------------------------------------------------------------------
class CoreSteps:
    """a_t = AX_t + h_{t-1} W_h (b_h folded into AX), then the core: plug-in cells' Steps."""
    fold_bias, shared = True, True

    def __init__(self, core):
        self.core, self.n_gates, self.n_states = core, core.n_gates, core.n_states

    def step(self, P, ax, state):
        a = state[0] @ P["W_h"]                                            # (B, G*H)
        a += ax
        h, rest, cache = self.core.forward(P, a, tuple(state[1:]))
        return h, (h, *rest), cache

    def step_back(self, P, dh, drest, cache):
        da, drest_prev, extra = self.core.backward(P, dh, tuple(drest), cache)
        return da, da, da @ P["W_h"].T, tuple(drest_prev), extra

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        G["W_h"] += _rows(Hprev).T @ _rows(dAH)
        G["b_h"] += _rows(dAH).sum(0)
        self.core.param_grads(P, G, caches, extras)


class LNSteps:
    """a_t = AX_t + LN(h_{t-1} W_h) ⊙ g_h, AX = LN(X W_x) ⊙ g_x + b_x + b_h; then the core."""
    fold_bias, shared = True, False

    def __init__(self, core):
        self.core, self.n_gates, self.n_states = core, core.n_gates, core.n_states

    def project(self, P, x):
        return ln_project(P, x, P["b_x"] + P["b_h"])

    def project_back(self, P, G, x, dAX, cache):
        return ln_project_back(P, G, x, dAX, cache, fold=True)

    def step(self, P, ax, state):
        a, ln = layer_norm(state[0] @ P["W_h"], P["ln_h_g"])              # (B, G*H)
        a += ax
        h, rest, cache = self.core.forward(P, a, tuple(state[1:]))
        return h, (h, *rest), (ln, cache)

    def step_back(self, P, dh, drest, cache):
        ln, core_cache = cache
        da, drest_prev, extra = self.core.backward(P, dh, tuple(drest), core_cache)
        dah, dg_h = layer_norm_backward(da, ln, P["ln_h_g"])              # dah: into h W_h
        return da, dah, dah @ P["W_h"].T, tuple(drest_prev), (dg_h, extra)

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        G["W_h"] += _rows(Hprev).T @ _rows(dAH)
        G["ln_h_g"] += _sum(extras, 0)
        self.core.param_grads(P, G, [c[1] for c in caches], [e[1] for e in extras])


class GRUVariantSteps:
    """GRU (reset_after) with layer norm and/or recurrent dropout: ah = LN((h ⊙ m_h) W_h) ⊙ g_h + b_h."""
    n_gates, n_states, fold_bias, shared = 3, 1, False, False

    def __init__(self, fns, normalise):
        self.fns, self.normalise = fns, normalise

    def project(self, P, x):
        return ln_project(P, x, P["b_x"]) if self.normalise else plain_project(P, x, P["b_x"])

    def project_back(self, P, G, x, dAX, cache):
        if self.normalise:
            return ln_project_back(P, G, x, dAX, cache, fold=False)
        return plain_project_back(P, G, x, dAX)

    def step(self, P, ax, state):
        h_prev, m = state[0], P.get("m_h")
        ah = (h_prev if m is None else h_prev * m) @ P["W_h"]              # (B, 3H)
        ln = None
        if self.normalise:
            ah, ln = layer_norm(ah, P["ln_h_g"])
        ah += P["b_h"]
        h, cache = self.fns.gru_cell(ax, ah, h_prev)
        return h, (h,), (cache, ln)

    def step_back(self, P, dh, drest, cache):
        gru_cache, ln = cache
        dax, dah, dh_prev = self.fns.gru_cell_backward(dh, gru_cache)     # dh_prev: through z h_prev
        db_h, dg_h = dah.sum(0), None
        if self.normalise:
            dah, dg_h = layer_norm_backward(dah, ln, P["ln_h_g"])
        dh_in = dah @ P["W_h"].T                                           # (B, H) into h ⊙ m_h
        m = P.get("m_h")
        return dax, dah, dh_prev + (dh_in if m is None else dh_in * m), (), (db_h, dg_h)

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        m = P.get("m_h")
        G["W_h"] += _rows(Hprev if m is None else Hprev * m).T @ _rows(dAH)
        G["b_h"] += _sum(extras, 0)
        if self.normalise:
            G["ln_h_g"] += _sum(extras, 1)


class ChoDroppedSteps(ChoGRUSteps):
    """Cho-form GRU with recurrent dropout: h_in = h ⊙ m_h in h_in W_rz and (r ⊙ h_in) W_hn."""

    def step(self, P, ax, state):
        h_prev, m = state[0], P.get("m_h")
        if m is None:
            return super().step(P, ax, state)
        W_h, H = P["W_h"], h_prev.shape[1]
        h_in = h_prev * m
        a_rz = h_in @ W_h[:, :2 * H]                                       # (B, 2H)
        a_rz += ax[:, :2 * H]
        r, z = self.fns.gru_rz(a_rz)
        rh = r * h_in
        ah_n = rh @ W_h[:, 2 * H:]                                         # (B, H)
        h, n = self.fns.gru_cho_cell(ax[:, 2 * H:], ah_n, z, h_prev)
        return h, (h,), (r, z, n, h_prev, rh)

    def step_back(self, P, dh, drest, cache):
        m = P.get("m_h")
        if m is None:
            return super().step_back(P, dh, drest, cache)
        r, z, n, h_prev, _ = cache
        W_h, H = P["W_h"], h_prev.shape[1]
        da_n = self.fns.gru_cho_backward_n(dh, z, n)
        drh = da_n @ W_h[:, 2 * H:].T
        # rh = r ⊙ m ⊙ h_prev: drh ⊙ m is the gradient of r ⊙ h_prev
        da_rz, dh_prev = self.fns.gru_cho_backward_rz(dh, drh * m, r, z, n, h_prev)
        dh_prev += (da_rz @ W_h[:, :2 * H].T) * m
        da = np.concatenate([da_rz, da_n], axis=1)                         # (B, 3H)
        return da, da, dh_prev, (), None

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        m = P.get("m_h")
        super().param_grads(P, G, Hprev if m is None else Hprev * m, dAH, caches, extras)


class DroppedState:
    """Recurrent dropout around Steps whose h_{t-1} enters only through h_{t-1} W_h: they see h ⊙ m_h."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):                  # n_gates, n_states, fold_bias, shared, project, ...
        return getattr(self.inner, name)

    def step(self, P, ax, state):
        m = P.get("m_h")
        return self.inner.step(P, ax, state if m is None else (state[0] * m, *state[1:]))

    def step_back(self, P, dh, drest, cache):
        dax, dah, dh_prev, drest_prev, extra = self.inner.step_back(P, dh, drest, cache)
        m = P.get("m_h")
        return dax, dah, dh_prev if m is None else dh_prev * m, drest_prev, extra

    def param_grads(self, P, G, Hprev, dAH, caches, extras):
        m = P.get("m_h")
        self.inner.param_grads(P, G, Hprev if m is None else Hprev * m, dAH, caches, extras)


def variant_steps(mode, fns, base, normalise, dropped, nonlinearity="tanh", peepholes=False, proj=False):
    """The Steps of a unit with layer_norm (`normalise`) and/or recurrent dropout (`dropped`).

    mode: 'rnn', 'lstm', 'gru' or a plug-in rnnkit.Cell (its own core); base: the plain Steps.
    """
    if isinstance(base, ChoGRUSteps):
        return ChoDroppedSteps(fns) if dropped else base
    kernel_ln = normalise and fns is not cells and isinstance(mode, str)
    if kernel_ln and mode != "rnn":                   # the numba kernels: LN fused with the gates
        from .ln_steps import LNGRUKernelSteps, LNLSTMKernelSteps
        steps = LNGRUKernelSteps() if mode == "gru" else LNLSTMKernelSteps(peepholes, proj)
        return DroppedState(steps) if dropped and mode == "lstm" else steps
    if isinstance(mode, str) and mode == "gru":
        return GRUVariantSteps(fns, normalise) if normalise or dropped else base
    steps = base
    if normalise:
        if isinstance(mode, str):
            core = RNNCore(fns, nonlinearity) if mode == "rnn" else LNLSTMCore(fns, peepholes, proj)
        else:
            core = mode
        steps = LNSteps(core)
    return DroppedState(steps) if dropped else steps
