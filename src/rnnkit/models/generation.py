"""A generation plan: ManyToMany.step fused for sampling a few sequences one token at a time.

Built when generation starts (ManyToMany.generation_step(); decode.prime and decode.generate build
one when given a model's own step), it holds what the general path recomputes at every step:

    Table = E W_x + b      (V, G*H)  layer 0's input projection of every id (embedding input)
          = W_x + b                  one-hot input: onehot(id) W_x = W_x[id]
    b     = b_x + b_h                LSTM, RNN;  GRU: b_x + [b_hr, b_hz, 0] (b_hn acts inside r * .)
    W_y   (H_out, V)                 the readout matrix; a contiguous copy of E^T when tied

and runs a step as one numba call per layer (rnnkit.kernels.generation: Table row or x W_x + b,
h W_h, the gates; the top layer's call also y = h W_y + b_y). Logits and state are ManyToMany.step's
(equal to 1e-5 relative in float32, to rounding in float64), in the same state layout, so either
step can continue from the other's state.

Table, b (and a tied W_y) are copies: a plan is valid until the weights change; build a new one
after training (it costs one (V, D) x (D, G*H) product). A state the plan returned itself is used as
is; any other (None, a user's, model.step's) is checked once, as ManyToMany.step checks it.

generation_step(model) gives model.step itself where no plan applies: real-vector input,
bidirectional, minimal or plug-in cells, variant units (layer norm, zoneout, recurrent dropout...),
a Cho-form GRU, the NumPy reference kernels (kernels="numpy", or no numba). An EmbeddingDropout is
an Embedding outside training.
A plan hands a call to model.step when dropout would act (training mode) or B > SMALL_B, where
BLAS beats the row kernels.
"""
import numpy as np

from .. import cells
from .._checks import check_int_array
from ..errors import InputError
from ..layers import Embedding, Recurrent, RecurrentNet
from ..layers.steps import GRUSteps, LSTMSteps, RNNSteps
from ..layers.variants import learned_state

SMALL_B = 8          # rows per step up to which the plan's row kernels beat BLAS
INT64 = np.dtype(np.int64)


def applies(model):
    """True when a GenerationPlan can run `model` (a ManyToMany)."""
    rnn, inp = model.rnn, model.input
    if inp.kind == "real" or (inp.kind == "embed" and not isinstance(inp.embed, Embedding)):
        return False
    if not isinstance(rnn, RecurrentNet) or rnn.bidirectional or rnn.variant_units:
        return False
    from .. import kernels
    if not kernels.available():
        return False
    return all(type(u) is Recurrent and type(u.steps) in (LSTMSteps, GRUSteps, RNNSteps)
               and u.steps.fns is not cells for _, _, u in rnn.units())


def generation_step(model):
    """model's step function for generation: a GenerationPlan where one applies, else model.step."""
    return GenerationPlan(model) if applies(model) else model.step


def _layer(unit, first, E):
    """A layer's leading kernel arguments: (W_x or Table, b, W_h, cell extra 1, cell extra 2).

    E: the embedding (V, D), or None for one-hot input; used by the first layer only.
    """
    P, H = unit.params, unit.hidden_size
    if type(unit.steps) is GRUSteps:
        b = P["b_x"].copy()                                                  # (3H,)
        b[:2 * H] += P["b_h"][:2 * H]
        extra = (np.ascontiguousarray(P["b_h"][2 * H:]), None)             # b_hn (H,)
    else:
        b = P["b_x"] + P["b_h"]                                              # (G*H,)
        if type(unit.steps) is LSTMSteps:
            extra = (P["p"] if unit.steps.peepholes else None, P["W_hr"] if unit.steps.proj else None)
        else:
            from ..kernels.cellkernels import _NL
            extra = (_NL[unit.steps.nonlinearity], None)
    if not first:
        return (P["W_x"], b, P["W_h"]) + extra
    AX_V = E @ P["W_x"] if E is not None else P["W_x"].copy()                # (V, G*H) Table
    AX_V += b
    return (AX_V, None, P["W_h"]) + extra


class GenerationPlan:
    """step(ids (B,), state) -> (logits (B, V), state), as ManyToMany.step, for generation."""

    def __init__(self, model):
        if not applies(model):
            raise InputError("model: a generation plan needs token-id input and plain (numba) "
                             "RNN/LSTM/GRU layers; use model.step")
        from ..kernels import generation as kernels
        self.model, self.rnn, self.V = model, model.rnn, model.input.V
        self.mode = self.rnn.mode
        self.kernel = {"lstm": kernels.lstm_step, "gru": kernels.gru_step, "rnn": kernels.rnn_step}[self.mode]
        E = model.input.embed.params["W"] if model.input.kind == "embed" else None   # (V, D)
        layers = [_layer(u, k == 0, E) + (k,) for k, _, u in self.rnn.units()]     # arrays, then l
        self.below, self.top = layers[:-1], layers[-1]       # the top layer also runs the readout
        out = model.out
        self.W_y = np.ascontiguousarray(out.W_y())                                   # (H_out, V)
        self.b_y = out.params["b_y"]
        self.stochastic = (self.rnn.dropout > 0 or out.drop is not None
                           or getattr(getattr(model.input, "embed", None), "p", 0) > 0)
        self.last = None          # the state this plan returned last: trusted, not re-checked

    def __call__(self, ids, state=None):
        """One step: ids (B,) int, state (None: the initial one) -> logits (B, V), new state."""
        if not (type(ids) is np.ndarray and ids.dtype is INT64 and ids.ndim == 1):
            ids = check_int_array("ids", ids, 0, self.V, ndim=1).astype(np.int64, copy=False)
        B = ids.shape[0]
        if B == 0 or B > SMALL_B or (self.model.training and self.stochastic):
            return self.model.step(ids, state)
        hs, cs = self._state(state, B)
        h_new = np.empty_like(hs)                                            # (L, B, H_out)
        c_new = None if cs is None else np.empty_like(cs)                    # (L, B, H)
        y = np.empty((B, self.V), hs.dtype)                                  # (B, V)
        x_ids, run = ids, self.kernel                                        # ids feed layer 0 only
        for args in self.below:
            if not run(x_ids, *args, hs, cs, h_new, c_new, None, None, None):
                check_int_array("ids", ids, 0, self.V)                       # raises: an id out of range
            x_ids = None
        if not run(x_ids, *self.top, hs, cs, h_new, c_new, self.W_y, self.b_y, y):
            check_int_array("ids", ids, 0, self.V)
        self.last = (h_new, c_new) if c_new is not None else h_new
        return y, self.last

    def _state(self, state, B):
        """(h (L, B, H_out), c (L, B, H) or None), contiguous; checked unless this plan made it."""
        if state is self.last and state is not None:
            h, c = state if self.mode == "lstm" else (state, None)
            if h.shape[1] == B:
                return h, c
        rnn = self.rnn
        if state is None and rnn.init_names:
            state = learned_state(rnn, B)
        if state is None:
            shapes = rnn.units()[0][2].state_shapes(B)
            parts = [np.zeros((rnn.num_layers,) + s, rnn.dtype) for s in shapes]     # (L, B, .)
        else:
            packed = rnn._pack(rnn._unpack(state, B, "state"))
            parts = list(packed) if self.mode == "lstm" else [packed]
        return parts[0], (parts[1] if self.mode == "lstm" else None)
