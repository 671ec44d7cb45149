"""OneToMany (1 -> N): a sequence generated from one vector v (an image feature, a class, a seed).

The decoder reads its own previous output y_{t-1} (in training the target: teacher forcing).
Two ways to give it v (B, D_v):

    feed="init"        s_0 = tanh(v W_s + b_s), split into the initial h (and c for LSTM) of
                       every layer;  x_t = in(y_{t-1})
    feed="every_step"  s_0 = 0;  x_t = [v ; in(y_{t-1})] at every step

    h_t = RNN/LSTM/GRU stack(x_t, h_{t-1}),   y_t = W_y h_t + b_y     (unidirectional)

in(.) is an Embedding or one-hot of the previous token (vocab_size given: y are ids, logits
(T, B, V)), or the previous real vector itself (output_size K given: y are (T, B, K)). The input
before the first output is the start symbol start_id (tokens) or the zero vector (real outputs).
Weight tying with the input embedding works as in ManyToMany (tie_weights=True).

objective(batch): batch = {"v": (B, D_v) float, "y": targets (T, B) int64 or (T, B, K) float,
"lengths": (B,) optional}. Inputs are y shifted right (teacher forcing); only steps t < lengths[b]
count. Tokens: cross-entropy per token, metrics {"correct": tokens whose argmax is the target};
real outputs: e = mean_k (y_k - target_k)^2. The gradient is that of loss_sum / count.

generate(v, max_len): greedy (temperature 0) or sampled tokens (rnnkit.decode.generate: top-k,
top-p, stop_id) or real vectors fed back one step at a time, carrying the recurrent state: each
step runs the stack on that one step only.
"""
import numpy as np

from .. import decode
from .._checks import check_choice, check_float, check_int, check_real
from ..errors import InputError
from ..layers import Linear
from .many_to_many import (InputLayer, Readout, SequenceModel, check_batch, make_recurrent,
                           real_steps, task_loss)

FEEDS = ("init", "every_step")


class OneToMany(SequenceModel):
    """A sequence from one vector, v fed as the initial state ("init") or at every step."""

    def __init__(self, *, input_size, vocab_size=None, output_size=None, cell="lstm", hidden_size,
                 num_layers=1, dropout=0.0, embedding_dim=None, one_hot=False, tie_weights=False,
                 feed="init", start_id=0, dtype="float32", seed=0, **cell_options):
        super().__init__(dict(input_size=input_size, vocab_size=vocab_size, output_size=output_size,
                              cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                              dropout=dropout, embedding_dim=embedding_dim, one_hot=one_hot,
                              tie_weights=tie_weights, feed=feed, start_id=start_id, dtype=dtype,
                              seed=seed, **cell_options))
        self.D_v = check_int("input_size", input_size, low=1)
        self.feed = check_choice("feed", feed, FEEDS)
        if (vocab_size is None) == (output_size is None):
            raise InputError(f"vocab_size, output_size: expected exactly one (tokens or real"
                             f" vectors), got vocab_size={vocab_size!r}, output_size={output_size!r}")
        self.task = "classify" if vocab_size is not None else "regress"
        self.input = self.add_child("input", InputLayer(vocab_size, output_size, embedding_dim,
                                                        one_hot, self.dtype, seed + 1))
        V = self.input.V if self.task == "classify" else self.input.size
        if self.task == "classify":
            self.start_id = check_int("start_id", start_id, 0, V - 1)
        dropout = check_real("dropout", dropout, 0.0, 1.0)
        D = self.input.size + (self.D_v if self.feed == "every_step" else 0)
        if cell in ("mingru", "minlstm"):
            raise InputError(f"cell: OneToMany needs rnn, lstm or gru (a minGRU/minLSTM state must stay "
                             f">= 0, which a state made from the vector is not), got {cell!r}")
        self.rnn = self.add_child("rnn", make_recurrent(cell, D, hidden_size, num_layers, False,
                                                        dropout, self.dtype, seed, cell_options))
        if self.feed == "init":
            sizes = [u.output_size for _, _, u in self.rnn.units()]          # h of each layer
            if cell == "lstm":
                sizes += [hidden_size] * num_layers                          # and c
            self.init = self.add_child("init", Linear(self.D_v, sum(sizes), True, self.dtype,
                                                      seed + 3))
        if tie_weights and (self.input.kind != "embed"):
            raise InputError(f"tie_weights: expected token outputs with an embedding, got input"
                             f" kind {self.input.kind!r}")
        tied = self.input.embed if tie_weights else None
        self.out = self.add_child("out", Readout(self.rnn.proj_size or self.rnn.hidden_size, V,
                                                 dropout, tied, self.dtype, seed + 2))

    # -- the initial state from v (feed="init") -------------------------------------------------
    def _init_state(self, v):
        """v (B, D_v) -> s_0 = tanh(v W_s + b_s) as the stack's state, cache."""
        a, c_lin = self.init.forward(v)                                      # (B, S)
        s = np.tanh(a)                                                       # (B, S)
        L, B = self.rnn.num_layers, len(v)
        H_out = self.rnn.proj_size or self.rnn.hidden_size
        parts = np.split(s, [L * H_out], axis=1) if self.rnn.mode == "lstm" else [s]
        parts = [np.ascontiguousarray(p.reshape(B, L, -1).transpose(1, 0, 2)) for p in parts]
        return (tuple(parts) if len(parts) == 2 else parts[0]), (c_lin, s)   # (L, B, H) each

    def _init_backward(self, dstate, cache):
        """d s_0 (the stack's state layout) -> dv (B, D_v); adds dW_s, db_s."""
        c_lin, s = cache
        parts = dstate if isinstance(dstate, tuple) else (dstate,)
        ds = np.concatenate([p.transpose(1, 0, 2).reshape(len(s), -1) for p in parts], axis=1)
        return self.init.backward(ds * (1 - s * s), c_lin)                   # tanh' = 1 - s^2

    def initial_state(self, v):
        """The decoder's initial state for v (B, D_v): from v ("init") or None = zeros."""
        v = check_float("v", v, self.dtype, shape=(None, self.D_v))
        return self._init_state(v)[0] if self.feed == "init" else None

    # -- teacher forcing -------------------------------------------------------------------------
    def shift_right(self, y):
        """Decoder inputs from targets: [start, y_0, ..., y_{T-2}] (ids) or [0, y_0, ...] (vectors)."""
        y = np.asarray(y)
        if y.ndim < 2:
            raise InputError(f"y: expected targets (T, B) or (T, B, K), got shape {y.shape}")
        first = np.full((1,) + y.shape[1:], self.start_id if self.task == "classify" else 0,
                        y.dtype)                                             # (1, B[, K])
        return np.concatenate([first, y[:-1]], axis=0)[:len(y)]              # like y (T = 0 too)

    def _inputs(self, v, x):
        """Decoder inputs X (T, B, D): in(x), with v beside it for feed="every_step"; cache."""
        X, c_in = self.input.forward(x)                                      # (T, B, E)
        if X.ndim != 3:
            raise InputError(f"x: expected ids (T, B) or vectors (T, B, K), got shape {np.shape(x)}")
        if self.feed == "every_step":
            Vs = np.broadcast_to(v[None], (len(X),) + v.shape)               # (T, B, D_v)
            X = np.concatenate([Vs, X], axis=-1)                             # (T, B, D_v + E)
        return X, c_in

    def forward(self, v, x, lengths=None, need_cache=True):
        """v (B, D_v), inputs x (T, B) ids or (T, B, K) -> y (T, B, V), final state, cache."""
        v = check_float("v", v, self.dtype, shape=(None, self.D_v))
        X, c_in = self._inputs(v, x)
        state0, c_init = self._init_state(v) if self.feed == "init" else (None, None)
        h, state, c_rnn = self.rnn.forward(X, state0, lengths, need_cache)  # (T, B, H_out)
        y, c_out = self.out.forward(h)                                       # (T, B, V)
        return y, state, ((c_in, c_init, c_rnn, c_out) if need_cache else None)

    def backward(self, dy, cache, dstate=None):
        """dy (T, B, V), dstate (or None) -> dv (B, D_v), dx (real inputs; None for ids)."""
        c_in, c_init, c_rnn, c_out = cache
        dh = self.out.backward(dy, c_out)
        dX, dstate0 = self.rnn.backward(dh, c_rnn, dstate)
        if self.feed == "every_step":
            dv, dX = dX[..., :self.D_v].sum(axis=0), dX[..., self.D_v:]      # (B, D_v), (T, B, E)
        else:
            dv = self._init_backward(dstate0, c_init)                        # (B, D_v)
        return dv, self.input.backward(np.ascontiguousarray(dX), c_in)

    def objective(self, batch, state=None, train=True):
        """Teacher-forced forward, loss, (train) backward -> loss_sum, count, metrics, state."""
        if state is not None:
            raise InputError("state: OneToMany starts every sequence from v; expected None")
        y = check_batch(batch, ("v", "y"))["y"]
        y_hat, state, cache = self.forward(batch["v"], self.shift_right(y), batch.get("lengths"),
                                           train)
        mask = real_steps(batch.get("lengths"), *y_hat.shape[:2])
        loss_sum, count, dy, metrics = task_loss(self.task, y_hat, y, mask)
        if train:
            self.backward(dy, cache)
        return loss_sum, count, metrics, state

    # -- generation ------------------------------------------------------------------------------
    def step(self, x_t, state, v):
        """One step: previous output x_t (B,) ids or (B, K), state, v -> y_t (B, V), new state."""
        v = check_float("v", v, self.dtype, shape=(None, self.D_v))
        X, _ = self._inputs(v, np.asarray(x_t)[None])                        # (1, B, D)
        h, state, _ = self.rnn.forward(X, state, need_cache=False)           # (1, B, H_out)
        y, _ = self.out.forward(h[0])                                        # (B, V)
        return y, state

    def generate(self, v, max_len, temperature=0.0, top_k=None, top_p=None, seed=0, stop_id=None):
        """Outputs fed back: ids (T, B), lengths (B,) as rnnkit.decode.generate, or vectors (T, B, K)."""
        state = self.initial_state(v)
        B = len(v)
        if self.task == "classify":
            first = np.full(B, self.start_id, np.int64)                      # (B,)
            ids, lengths, _ = decode.generate(lambda x_t, s: self.step(x_t, s, v), state, first,
                                              max_len, stop_id, temperature, top_k, top_p, seed)
            return ids, lengths
        if stop_id is not None or temperature != 0 or top_k is not None or top_p is not None:
            raise InputError("stop_id, temperature, top_k, top_p: real-valued outputs are fed back"
                             " as they are; expected the defaults")
        max_len = check_int("max_len", max_len, low=1)
        x_t, outs = np.zeros((B, self.input.size), self.dtype), []           # (B, K) y_{-1} = 0
        for _ in range(max_len):
            x_t, state = self.step(x_t, state, v)
            outs.append(x_t)
        return np.stack(outs), np.full(B, max_len, np.int64)                 # (T, B, K), (B,)
