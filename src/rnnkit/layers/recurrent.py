"""Recurrent: one layer, one direction — a cell unrolled over time.

    AX = X W_x + b                      one GEMM over all T*B rows before the loop
    for t: h_t, state_t = step(AX[t], state_{t-1})      per step only h_{t-1} W_h
    backward, t = T-1 .. 0: per step only dh_{t-1} = dA_t W_h^T
    dW_x = X^T dAX, dW_h = H_prev^T dAH, dX = dAX W_x^T   one GEMM each after the loop

Shapes are time-major: x (T, B, D), out (T, B, H_out) with H_out = proj_size or hidden_size.
With `lengths`, steps t >= lengths[b] leave sequence b's state unchanged and output zeros, so the
final state is the state at the last real step; `reverse=True` runs each sequence from its own
last real step back to its first (PyTorch's packed-sequence behaviour).

The loop here (_unroll, one Steps.step per t) is the readable reference. With the numba kernels,
a layer without `lengths` (except an LSTM with projection or a Cho-form GRU) runs the fused
whole-sequence path of rnnkit.kernels.sequence instead: the same computation with preallocated
buffers and one fused kernel per step; the tests assert the two agree.

Diagnostics hook: with `layer.probe` set (rnnkit.diagnostics), a cached forward takes the reference
loop and calls probe.forward(layer, out, cache); its backward calls probe.backward(layer, N, cache)
with N (T, B) = ||dL/dh_t|| per sequence in loop order. probe = None (the default) costs nothing.
"""
import os

import numpy as np

from .. import cells, init
from .._checks import check_float, check_dtype
from ..errors import InputError, ShapeError
from .module import Module
from .sequence import check_lengths, reverse_index, reverse_padded, step_masks
from .steps import ChoGRUSteps, GRUSteps, LSTMSteps, RNNSteps


def cell_functions(kernels=None):
    """The module of elementwise cell functions: 'numba' (default) or 'numpy' (the reference)."""
    kernels = kernels or os.environ.get("RNNKIT_KERNELS", "numba")
    if kernels == "numpy":
        return cells
    if kernels != "numba":
        raise InputError(f"kernels: expected 'numba' or 'numpy', got {kernels!r}")
    from .. import kernels as fast
    return fast if fast.available() else cells


def make_steps(mode, fns, nonlinearity="tanh", reset_after=True, peepholes=False, proj=False):
    """The Steps object of a cell kind: 'rnn', 'lstm', 'gru', or a plug-in rnnkit.Cell."""
    if not isinstance(mode, str):
        return mode.steps(fns)
    if mode == "rnn":
        return RNNSteps(fns, nonlinearity)
    if mode == "lstm":
        return LSTMSteps(fns, peepholes, proj)
    return GRUSteps(fns) if reset_after else ChoGRUSteps(fns)


class Recurrent(Module):
    """One direction of one layer. Params W_x (D, G*H), W_h (H_out, G*H), b_x, b_h (G*H,) [, W_hr, p]."""

    def __init__(self, mode, input_size, hidden_size, *, proj_size=0, nonlinearity="tanh",
                 reset_after=True, peepholes=False, reverse=False, dtype=np.float32, rng=None,
                 kernels=None):
        super().__init__()
        self.dtype = check_dtype("dtype", dtype)
        self.mode, self.reverse = mode, reverse
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        fns = cell_functions(kernels)
        self.steps = make_steps(mode, fns, nonlinearity, reset_after, peepholes, proj_size > 0)
        self.fused = None        # whole-sequence runner of the numba kernels, where one applies
        if fns is not cells:
            from ..kernels.sequence import fused_runner
            self.fused = fused_runner(mode, nonlinearity, reset_after, peepholes, proj_size > 0)
        self.probe = None        # diagnostics hook (rnnkit.diagnostics); None: off, no cost
        rng = rng if rng is not None else np.random.default_rng(0)
        H, GH, H_out = hidden_size, self.steps.n_gates * hidden_size, proj_size or hidden_size
        k = 1 / np.sqrt(H)
        self.add_param("W_x", init.uniform(rng, (input_size, GH), k, self.dtype))
        self.add_param("W_h", init.uniform(rng, (H_out, GH), k, self.dtype))
        self.add_param("b_x", init.uniform(rng, (GH,), k, self.dtype))
        self.add_param("b_h", init.uniform(rng, (GH,), k, self.dtype))
        if proj_size:
            self.add_param("W_hr", init.uniform(rng, (H, proj_size), k, self.dtype))
        if peepholes:
            self.add_param("p", init.uniform(rng, (3, H), k, self.dtype))

    @property
    def output_size(self):
        return self.proj_size or self.hidden_size

    def state_shapes(self, B):
        """Shapes of the state tuple: ((B, H_out),) or ((B, H_out), (B, H)) (a plug-in cell: more (B, H))."""
        return [(B, self.output_size)] + [(B, self.hidden_size)] * (self.steps.n_states - 1)

    def _check_state(self, state, B, name="state"):
        shapes = self.state_shapes(B)
        if state is None:
            return tuple(np.zeros(s, self.dtype) for s in shapes)
        if not isinstance(state, (tuple, list)) or len(state) != len(shapes):
            raise InputError(f"{name}: expected a tuple of {len(shapes)} arrays, got {type(state).__name__}")
        return tuple(check_float(f"{name}[{i}]", s, self.dtype, shape=shp)
                     for i, (s, shp) in enumerate(zip(state, shapes)))

    def forward(self, x, state=None, lengths=None, need_cache=True):
        """x (T, B, D) -> out (T, B, H_out), final state, cache."""
        x = check_float("x", x, self.dtype, ndim=3)
        T, B, D = x.shape
        if D != self.input_size:
            raise ShapeError(f"x: expected last dimension {self.input_size} (input_size), got shape {x.shape}")
        lengths = check_lengths(lengths, T, B)
        state = self._check_state(state, B)
        idx = reverse_index(lengths, T, B) if self.reverse else None
        if idx is not None:
            x = reverse_padded(x, idx)
        masks = step_masks(lengths, T, bool)
        if T == 0 or B == 0:             # no step to take: empty output, the state passes through
            out = np.zeros((T, B, self.output_size), self.dtype)
            return out, state, dict(x=x, idx=idx, empty=True) if need_cache else None
        probed = self.probe is not None and need_cache          # the probe reads the per-step loop
        if self.fused is not None and masks is None and T > 0 and not probed:
            out, state, fused = self.fused.forward(self.params, x, state, need_cache)
            cache = dict(x=x, fused=fused, idx=idx)
        else:
            out, state, cache = self._unroll(x, state, masks, need_cache)
            cache.update(x=x, masks=masks, idx=idx)
        if idx is not None:
            out = reverse_padded(out, idx)
        if probed:
            self.probe.forward(self, out, cache)
        return out, state, cache if need_cache else None

    def _unroll(self, x, state, masks, need_cache):
        """The reference loop over time, one Steps.step per t -> out, final state, cache."""
        T, B, D = x.shape
        P, steps = self.params, self.steps
        b = P["b_x"] + P["b_h"] if steps.fold_bias else P["b_x"]
        AX = (x.reshape(T * B, D) @ P["W_x"] + b).reshape(T, B, b.shape[0])   # (T, B, G*H)
        out = np.empty((T, B, self.output_size), self.dtype)          # (T, B, H_out)
        Hprev = np.empty((T, B, self.output_size), self.dtype) if need_cache else None
        caches = []
        for t in range(T):
            if need_cache:
                Hprev[t] = state[0]
            h, new, cache = steps.step(P, AX[t], state)
            if masks is not None:
                m = masks[t]
                h = np.where(m, h, 0)
                new = tuple(np.where(m, n, s) for n, s in zip(new, state))
            out[t], state = h, new
            if need_cache:
                caches.append(cache)
        return out, state, dict(Hprev=Hprev, caches=caches)

    def backward(self, dout, cache, dstate=None):
        """dout (T, B, H_out), dstate (gradient of the final state) -> dx (T, B, D), d(initial state)."""
        x, idx = cache["x"], cache["idx"]
        T, B, D = x.shape
        dout = check_float("dout", dout, self.dtype, shape=(T, B, self.output_size))
        if idx is not None:
            dout = reverse_padded(dout, idx)
        dstate = self._check_state(dstate, B, "dstate")
        if "empty" in cache:
            return np.zeros((T, B, D), self.dtype), dstate
        if "fused" in cache:
            dx, dstate = self.fused.backward(self.params, self.grads, dout, dstate, cache["fused"])
        else:
            dx, dstate = self._unroll_backward(dout, dstate, cache)
        if idx is not None:
            dx = reverse_padded(dx, idx)
        return dx, dstate

    def _unroll_backward(self, dout, dstate, cache):
        """The reference loop back over time, one Steps.step_back per t -> dx, d(initial state)."""
        x, masks = cache["x"], cache["masks"]
        T, B, D = x.shape
        dh, drest = dstate[0], dstate[1:]
        P, G, steps = self.params, self.grads, self.steps
        dAX = np.empty((T, B, steps.n_gates * self.hidden_size), self.dtype)   # (T, B, G*H)
        dAH = dAX if steps.shared else np.empty_like(dAX)
        extras = [None] * T
        norms = None if self.probe is None else np.empty((T, B))   # (T, B) ||dL/dh_t|| for the probe
        for t in reversed(range(T)):
            dh_in = dout[t] + dh
            if masks is not None:
                m = masks[t]
                dh_in = np.where(m, dh_in, 0)
                drest_in = tuple(np.where(m, d, 0) for d in drest)
            else:
                drest_in = drest
            if norms is not None:
                norms[t] = np.sqrt(np.square(dh_in, dtype=np.float64).sum(1))
            dax, dah, dh_prev, drest_prev, extras[t] = steps.step_back(P, dh_in, drest_in,
                                                                        cache["caches"][t])
            if masks is not None:               # padded steps pass the carried gradient through
                dh_prev = np.where(m, dh_prev, dh)
                drest_prev = tuple(np.where(m, n, d) for n, d in zip(drest_prev, drest))
            dh, drest = dh_prev, drest_prev
            dAX[t] = dax
            if not steps.shared:
                dAH[t] = dah
        rows = dAX.reshape(T * B, dAX.shape[-1])
        G["W_x"] += x.reshape(T * B, D).T @ rows
        G["b_x"] += rows.sum(0)
        if T:                                   # an empty sequence adds nothing
            steps.param_grads(P, G, cache["Hprev"], dAH, cache["caches"], extras)
        if norms is not None:
            self.probe.backward(self, norms, cache)
        return (rows @ P["W_x"].T).reshape(T, B, D), (dh, *drest)

    def infer(self, x, state=None, lengths=None):
        """Inference: out, final state; no cache kept."""
        out, state, _ = self.forward(x, state, lengths, need_cache=False)
        return out, state
