"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that see x_t only, so
h_t = a_t ⊙ h_{t-1} + b_t is a linear recurrence, solved for every t at once by a scan over time.

    minGRU    z_t = σ(k_z),  h̃_t = g(k_h),          [k_z, k_h] = x_t W_x + b_x
              h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t               a_t = 1 - z_t,  b_t = z_t h̃_t
    minLSTM   f_t = σ(k_f),  i_t = σ(k_i),  h̃_t = g(k_h),   [k_i, k_f, k_h] = x_t W_x + b_x
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
              h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t                   a_t = f'_t,     b_t = i'_t h̃_t
    g(p) = p + 0.5 for p >= 0, σ(p) for p < 0      (the paper's log-space variant: g > 0, so log h̃ exists)

Training runs the scan in log space (Heinsen 2023), from log-gates that never overflow:
    log z = -softplus(-k_z),  log(1 - z) = -softplus(k_z)
    d = softplus(-k_f) - softplus(-k_i) = log(i / f):  log f' = -softplus(d),  log i' = -softplus(-d)
    a*_t = Σ_{s<=t} log a_s,   log h_t = a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)   (log b_0 = log h_0)
(la, lb in the code are log a, log b). The prefix sums (cumsum, np.logaddexp.accumulate) are what
makes the recurrence parallel on parallel hardware; NumPy runs them as C loops vectorised over
(B, H). They run in float64 whatever the layer's dtype: |a*_t| grows like t, and float32 would lose
|a*_t| eps of precision. Every h_t is positive, so the initial state must be >= 0 (checked; 0 is
exact: log 0 = -inf adds nothing to the sum); the default is 0.

Backward, by hand: with g_t the total gradient on h_t (its own output plus through h_{t+1}),
    g_t = Σ_{s>=t} dh_s exp(a*_s - a*_t)      a reverse logcumsumexp, dh split into its signs
    d log b_t = g_t b_t,   d log a_t = g_t a_t h_{t-1},   dh_0 = a_1 g_1
then through the log-gates to k, and dW_x = X^T dK, db_x = Σ dK, dX = dK W_x^T (one GEMM each).

This NumPy scan is the readable reference (kernels='numpy', or RNNKIT_KERNELS=numpy). By default
rnnkit.kernels.scan runs the scan instead: one numba pass per direction over every (b, h) lane,
its time loop in float64 and in linear space, h_t = a_t h_{t-1} + b_t (a in (0, 1), b > 0: nothing
overflows or cancels, and it costs 2 transcendentals per element against the log form's 7; the log
form is what a parallel scan on parallel hardware needs), the backward recomputing the gates from k;
the tests assert the two paths agree.

Layers: child "l{l}" holds W_x (D_l, G*H) and b_x (G*H,), blocks [z, h] (minGRU, G = 2) or
[i, f, h] (minLSTM, G = 3); D_0 = input_size, D_l = H above; U(±1/sqrt(D_l)) as nn.Linear.
Layer l > 0 reads the outputs of layer l - 1. State h_n (num_layers, B, H), as rnnkit.GRU.
lengths: steps t >= lengths[b] get a = 1, b = 0 (the state is carried unchanged) and output zeros,
so h_n holds the state at the last real step. step(x_t, h) runs the same layers one step at a time
in linear space (the paper's sequential mode), for generation.
"""
import numpy as np

from .. import cells, init
from .._checks import check_dtype, check_float, check_int
from ..errors import InputError, ShapeError
from ..functional import sigmoid
from .module import Module
from .recurrent import cell_functions
from .sequence import check_lengths, step_masks


def softplus(a):
    """log(1 + exp(a)) without overflow."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def g(p):
    """The paper's positive activation: p + 0.5 for p >= 0, σ(p) below."""
    return np.where(p >= 0, np.maximum(p, 0) + 0.5, sigmoid(p))


def log_g(p):
    """log g(p) and its derivative d log g / dp (1 / (p + 0.5), or 1 - σ(p) below 0)."""
    pos = p >= 0
    q = np.maximum(p, 0) + 0.5
    return np.where(pos, np.log(q), -softplus(-p)), np.where(pos, 1 / q, sigmoid(-p))


# -- the cells: log-gates (scan), their backward, and one linear-space step (generation) --------
def mingru_log_gates(k):
    """k (..., 2H) = [k_z, k_h] -> log a, log b (..., H) and the backward's cache."""
    k_z, k_h = np.split(k, 2, axis=-1)
    lg, dlg = log_g(k_h)
    la = -softplus(k_z)                            # log(1 - z)
    lb = lg + la + k_z                             # log z + log g(k_h); softplus(-k) = softplus(k) - k
    return la, lb, (sigmoid(k_z), dlg)


def mingru_log_gates_backward(dla, dlb, cache):
    """d log a, d log b (..., H) -> dk (..., 2H)."""
    z, dlg = cache
    dk_z = (1 - z) * dlb - z * dla                 # d log z / dk = 1 - z, d log(1 - z) / dk = -z
    return np.concatenate([dk_z, dlb * dlg], axis=-1)


def mingru_step(k, h_prev):
    """The paper's sequential minGRU: k (B, 2H), h_prev (B, H) -> h (B, H)."""
    k_z, k_h = np.split(k, 2, axis=-1)
    z = sigmoid(k_z)
    return (1 - z) * h_prev + z * g(k_h)


def minlstm_log_gates(k):
    """k (..., 3H) = [k_i, k_f, k_h] -> log a, log b (..., H) and the backward's cache."""
    k_i, k_f, k_h = np.split(k, 3, axis=-1)
    lg, dlg = log_g(k_h)
    d = softplus(-k_f) - softplus(-k_i)            # log(i / f)
    la = -softplus(d)                              # log f'
    lb = lg + la + d                               # log i' + log g(k_h); log i' = -softplus(-d)
    return la, lb, (sigmoid(d), sigmoid(-k_i), sigmoid(-k_f), dlg)


def minlstm_log_gates_backward(dla, dlb, cache):
    """d log a, d log b (..., H) -> dk (..., 3H)."""
    i_n, i_c, f_c, dlg = cache                     # i' = σ(d), 1 - i, 1 - f
    dd = (1 - i_n) * dlb - i_n * dla               # log f' = -softplus(d), log i' = -softplus(-d)
    return np.concatenate([i_c * dd, -f_c * dd, dlb * dlg], axis=-1)  # d = sp(-k_f) - sp(-k_i)


def minlstm_step(k, h_prev):
    """The paper's sequential minLSTM: k (B, 3H), h_prev (B, H) -> h (B, H)."""
    k_i, k_f, k_h = np.split(k, 3, axis=-1)
    i, f = sigmoid(k_i), sigmoid(k_f)
    return f / (f + i) * h_prev + i / (f + i) * g(k_h)


CELLS = {"mingru": (2, mingru_log_gates, mingru_log_gates_backward, mingru_step),
         "minlstm": (3, minlstm_log_gates, minlstm_log_gates_backward, minlstm_step)}


# -- the scan and its backward ------------------------------------------------------------------
def log_scan(la, lb, log_h0):
    """la, lb (T, B, H), log_h0 (B, H) -> log h, a* (T, B, H) float64, by Heinsen's method."""
    a_star = np.cumsum(la, axis=0, dtype=np.float64)                 # (T, B, H)
    L = np.logaddexp.accumulate(lb - a_star, axis=0)                 # (T, B, H)
    return a_star + np.logaddexp(L, log_h0), a_star


def reverse_scan(dh, a_star):
    """g_t = Σ_{s>=t} dh_s exp(a*_s - a*_t): dh, a* (T, B, H) -> g (T, B, H) in dh's dtype."""
    g_t = np.zeros(dh.shape)                                         # (T, B, H) float64
    with np.errstate(divide="ignore"):
        for sign in (1, -1):                       # log space needs dh >= 0: positive, negative parts
            l = np.log(np.maximum(sign * dh, 0)) + a_star            # (T, B, H)
            S = np.logaddexp.accumulate(l[::-1], axis=0)[::-1]       # (T, B, H)
            g_t += sign * np.exp(S - a_star)
    return g_t.astype(dh.dtype, copy=False)


def scan_kernels(kernels=None):
    """rnnkit.kernels.scan, or None for the NumPy reference here ('numpy', or numba missing)."""
    if cell_functions(kernels) is cells:
        return None
    from ..kernels import scan
    return scan


class MinimalUnit(Module):
    """One minGRU or minLSTM layer: W_x (D, G*H), b_x (G*H,)."""

    def __init__(self, mode, input_size, hidden_size, dtype, rng, kernels=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.G, self.log_gates, self.log_gates_backward, self.cell_step = CELLS[mode]
        self.scan = scan_kernels(kernels)
        bound = 1 / np.sqrt(input_size)
        self.add_param("W_x", init.uniform(rng, (input_size, self.G * hidden_size), bound, dtype))
        self.add_param("b_x", init.uniform(rng, (self.G * hidden_size,), bound, dtype))

    def forward(self, x, h0, mask, need_cache=True):
        """x (T, B, D), h0 (B, H) >= 0, mask (T, B, 1) bool or None -> h (T, B, H) unmasked, cache."""
        T, B, D = x.shape
        k = x.reshape(T * B, D) @ self.params["W_x"]                     # (T*B, G*H)
        k += self.params["b_x"]
        k = k.reshape(T, B, -1)                                          # (T, B, G*H)
        if self.scan is not None:                  # numba: the backward recomputes the gates from k
            h, cache = self.scan.minimal_forward(k, h0, mask), dict(k=k)
        else:
            h, cache = self.log_scan_forward(k, h0, mask)
        if not need_cache:
            return h, None
        return h, dict(cache, x=x, h0=h0, h=h, mask=mask)

    def log_scan_forward(self, k, h0, mask):
        """The NumPy reference: k (T, B, G*H), h0 (B, H) -> h (T, B, H), the scan's cache."""
        la, lb, gates = self.log_gates(k)
        if mask is not None:                       # padded steps: a = 1, b = 0
            la, lb = np.where(mask, la, 0), np.where(mask, lb, -np.inf)
        with np.errstate(divide="ignore"):
            log_h0 = np.log(h0)                    # (B, H); -inf where h0 = 0
        log_h, a_star = log_scan(la, lb, log_h0)
        h = np.exp(log_h).astype(k.dtype, copy=False)                   # (T, B, H)
        return h, dict(la=la, lb=lb, a_star=a_star, gates=gates)

    def backward(self, dh, cache):
        """dh (T, B, H), the gradient on every h_t -> dx (T, B, D), dh0 (B, H); adds dW_x, db_x."""
        x = cache["x"]
        T, B, D = x.shape
        if "k" in cache:
            dk, dh0 = self.scan.minimal_backward(dh, cache["k"], cache["h"], cache["h0"], cache["mask"])
        else:
            dk, dh0 = self.log_scan_backward(dh, cache)
        rows = dk.reshape(T * B, -1)
        self.grads["W_x"] += x.reshape(T * B, D).T @ rows
        self.grads["b_x"] += rows.sum(0)
        dx = (rows @ self.params["W_x"].T).reshape(T, B, D)              # (T, B, D)
        return dx, dh0

    def log_scan_backward(self, dh, cache):
        """The NumPy reference: dh (T, B, H) -> dk (T, B, G*H), dh0 (B, H)."""
        h0, h, la, mask = cache["h0"], cache["h"], cache["la"], cache["mask"]
        g_t = reverse_scan(dh, cache["a_star"])
        dlb = g_t * np.exp(cache["lb"])            # log b enters as exp(log b); 0 on padded steps
        h_prev = np.concatenate([h0[None], h[:-1]])                      # (T, B, H)
        dla = g_t * np.exp(la) * h_prev            # log a enters as exp(log a) h_{t-1}
        if mask is not None:                       # padded a = 1 is a constant
            dla = np.where(mask, dla, 0)
        dk = self.log_gates_backward(dla, dlb, cache["gates"])           # (T, B, G*H)
        return dk, g_t[0] * np.exp(la[0])          # h_1 = a_1 h_0 + b_1

    def step(self, x_t, h_prev):
        """x_t (B, D), h_prev (B, H) -> h (B, H), in linear space."""
        return self.cell_step(x_t @ self.params["W_x"] + self.params["b_x"], h_prev)


class MinimalNet(Module):
    """The shared body of MinGRU and MinLSTM: stacked layers, scan for training, step for generation."""

    mode = None
    dirs, bidirectional, proj_size = 1, False, 0      # as rnnkit.GRU's attributes, for the models

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=False, dtype=np.float32,
                 seed=0, kernels=None):
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.batch_first = bool(batch_first)
        self.dtype = check_dtype("dtype", dtype)
        self.seed = seed
        rng = np.random.default_rng(seed)
        for l in range(self.num_layers):
            self.add_child(f"l{l}", MinimalUnit(self.mode, input_size if l == 0 else hidden_size,
                                                hidden_size, self.dtype, rng, kernels))

    def units(self):
        """The layers, bottom first."""
        return [self.children[f"l{l}"] for l in range(self.num_layers)]

    def _state(self, state, B, name):
        """Check a state (num_layers, B, H) >= 0, or zeros for None."""
        shape = (self.num_layers, B, self.hidden_size)
        if state is None:
            return np.zeros(shape, self.dtype)                           # (L, B, H)
        state = check_float(name, state, self.dtype, shape=shape)
        if not np.all(state >= 0):
            low = np.nanmin(state) if not np.isnan(state).all() else np.nan
            raise InputError(f"{name}: expected every entry >= 0 (finite): minGRU/minLSTM states are"
                             f" positive, their logs enter the scan; got min {low:.4g}"
                             + (" and NaN" if np.isnan(state).any() else ""))
        return state

    def _check_x(self, name, x, ndim):
        x = check_float(name, x, self.dtype, ndim=ndim)
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected last dimension {self.input_size} (input_size),"
                             f" got shape {x.shape}")
        return x

    def forward(self, x, state=None, lengths=None, need_cache=True):
        """x (T, B, D) (or (B, T, D) with batch_first) -> out (T, B, H), h_n (L, B, H), cache."""
        x = self._check_x("x", x, 3)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, _ = x.shape
        if T == 0:
            raise ShapeError(f"x: expected at least one time step, got shape {x.shape}")
        h0 = self._state(state, B, "state")
        mask = step_masks(check_lengths(lengths, T, B), T, bool)         # (T, B, 1) or None
        layer_in, finals, caches = x, [], []
        for l, unit in enumerate(self.units()):
            h, c = unit.forward(layer_in, h0[l], mask, need_cache)
            finals.append(h[-1])                   # padded steps carried the last real state
            caches.append(c)
            layer_in = h if mask is None else np.where(mask, h, 0)       # (T, B, H)
        out = layer_in.transpose(1, 0, 2) if self.batch_first else layer_in
        return out, np.stack(finals), (dict(units=caches, mask=mask) if need_cache else None)

    def backward(self, dout, cache, dstate=None):
        """dout like out, dstate (L, B, H) or None -> dx like x, dh0 (L, B, H)."""
        dout = check_float("dout", dout, self.dtype, ndim=3)
        if self.batch_first:
            dout = dout.transpose(1, 0, 2)
        T, B = cache["units"][0]["x"].shape[:2]
        if dout.shape != (T, B, self.hidden_size):
            raise ShapeError(f"dout: expected shape {(T, B, self.hidden_size)} (the output's, time-major),"
                             f" got {dout.shape}")
        shape = (self.num_layers, B, self.hidden_size)
        dstate = np.zeros(shape, self.dtype) if dstate is None else check_float(
            "dstate", dstate, self.dtype, shape=shape)
        mask, dinit = cache["mask"], [None] * self.num_layers
        for l in reversed(range(self.num_layers)):
            dh = dout.copy() if mask is None else dout * mask            # (T, B, H)
            dh[-1] += dstate[l]                    # h_n is h_T (padded steps carry it)
            dout, dinit[l] = self.units()[l].backward(dh, cache["units"][l])
        dx = dout.transpose(1, 0, 2) if self.batch_first else dout
        return dx, np.stack(dinit)

    def infer(self, x, state=None, lengths=None):
        """Inference: (out, h_n); no cache kept."""
        out, state, _ = self.forward(x, state, lengths, need_cache=False)
        return out, state

    def step(self, x_t, h=None):
        """One step for generation: x_t (B, D), h (L, B, H) >= 0 or None -> h (L, B, H); output h[-1]."""
        x_t = self._check_x("x_t", x_t, 2)
        h = self._state(h, x_t.shape[0], "h")
        new = np.empty_like(h)                                           # (L, B, H)
        layer_in = x_t
        for l, unit in enumerate(self.units()):
            new[l] = layer_in = unit.step(layer_in, h[l])
        return new


class MinGRU(MinimalNet):
    """minGRU: h_t = (1 - z_t) h_{t-1} + z_t g(x_t W_h + b_h), z_t = σ(x_t W_z + b_z)."""
    mode = "mingru"


class MinLSTM(MinimalNet):
    """minLSTM: h_t = f'_t h_{t-1} + i'_t g(x_t W_h + b_h), f', i' = f, i normalised to sum 1."""
    mode = "minlstm"
