"""ManyToOne (N -> 1): one output per sequence, for sequence classification and regression.

    h_t = RNN/LSTM/GRU stack(x_t, h_{t-1})          x_t: Embedding | one-hot | real vectors
    r   = readout(h_1..h_L)                          (B, F), F = dirs * H_out
    y   = W_y r + b_y                                (B, C) logits or (B, K) predictions

Readouts, each over the real steps t < L = lengths[b] of sequence b only:
    "last"          h at the last real step. Bidirectional: the forward direction's h_{L-1}
                    beside the backward direction's h_0, the step where the backward direction
                    ends (its own final output, having read the whole sequence).
    "mean"          (1/L) Σ_{t<L} h_t
    "max"           max_{t<L} h_t, per feature (the gradient goes to the arg max)
    "final_states"  the final h of the top layer's directions, concatenated (from the returned
                    state: for the top layer this is the same vector as "last", reached through
                    the state gradient instead of the output gradient).

objective(batch): batch = {"x": ids (T, B) int64 or (T, B, D) float, "y": classes (B,) int64
("classify") or targets (B, K) float ("regress"), "lengths": (B,) optional, each >= 1}.
count = B sequences; classify: cross-entropy, metrics {"correct": sequences whose argmax is y};
regress: e = mean_k (y_k - target_k)^2. The gradient is that of loss_sum / count.
"""
import numpy as np

from .._checks import check_choice, check_int, check_real
from ..errors import InputError
from ..layers.sequence import check_lengths
from .many_to_many import (TASKS, InputLayer, Readout, SequenceModel, _nonzero, check_batch,
                           make_recurrent, output_width, task_loss)

READOUTS = ("last", "mean", "max", "final_states")


def pool(h, lengths, readout, dirs):
    """h (T, B, F) -> r (B, F) over real steps by "last", "mean" or "max"; cache."""
    T, B, F = h.shape
    L = np.full(B, T, np.int64) if lengths is None else lengths              # (B,)
    if readout == "mean":
        m = (np.arange(T)[:, None] < L[None, :])[:, :, None].astype(h.dtype)  # (T, B, 1)
        k = (1 / L).astype(h.dtype)[:, None]                                  # (B, 1)
        return (h * m).sum(axis=0) * k, (m, k)
    if readout == "last":
        t = np.repeat((L - 1)[:, None], F, axis=1)                           # (B, F)
        if dirs == 2:
            t[:, F // 2:] = 0            # the backward direction ends at step 0
    else:
        real = np.arange(T)[:, None, None] < L[None, :, None]                # (T, B, 1)
        t = np.where(real, h, -np.inf).argmax(axis=0)                         # (B, F)
    return np.take_along_axis(h, t[None], axis=0)[0], t                       # (B, F)


def pool_backward(dr, cache, T, readout):
    """dr (B, F) -> dh (T, B, F): spread over the real steps (mean) or put at the picked step."""
    if readout == "mean":
        m, k = cache
        return m * (dr * k)[None]                                             # (T, B, F)
    dh = np.zeros((T,) + dr.shape, dr.dtype)                                  # (T, B, F)
    np.put_along_axis(dh, cache[None], dr[None], axis=0)
    return dh


class ManyToOne(SequenceModel):
    """One output per sequence from its recurrent states: classification or regression."""

    def __init__(self, *, vocab_size=None, input_size=None, num_outputs, cell="lstm", hidden_size,
                 num_layers=1, bidirectional=False, dropout=0.0, embedding_dim=None, one_hot=False,
                 readout="last", task="classify", dtype="float32", seed=0, embedding_dropout=0.0,
                 **cell_options):
        super().__init__(dict(vocab_size=vocab_size, input_size=input_size, num_outputs=num_outputs,
                              cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                              bidirectional=bidirectional, dropout=dropout,
                              embedding_dim=embedding_dim, one_hot=one_hot, readout=readout,
                              task=task, dtype=dtype, seed=seed,
                              **_nonzero(embedding_dropout=embedding_dropout), **cell_options))
        self.task = check_choice("task", task, TASKS)
        self.readout = check_choice("readout", readout, READOUTS)
        C = check_int("num_outputs", num_outputs, low=1)
        dropout = check_real("dropout", dropout, 0.0, 1.0)
        self.input = self.add_child("input", InputLayer(vocab_size, input_size, embedding_dim,
                                                        one_hot, self.dtype, seed + 1, embedding_dropout))
        self.rnn = self.add_child("rnn", make_recurrent(cell, self.input.size, hidden_size,
                                                        num_layers, bidirectional, dropout,
                                                        self.dtype, seed, cell_options))
        self.out = self.add_child("out", Readout(output_width(self.rnn), C, dropout, None,
                                                 self.dtype, seed + 2))

    def _top(self, state):
        """The top layer's final h of each direction, concatenated: (B, dirs*H_out)."""
        h_n = state[0] if isinstance(state, tuple) else state                # (L*dirs, B, H_out)
        return np.concatenate(list(h_n[-self.rnn.dirs:]), axis=-1)

    def _top_backward(self, dr, state):
        """dr (B, dirs*H_out) -> the gradient of the returned state (zeros below the top layer)."""
        parts = state if isinstance(state, tuple) else (state,)
        dparts = [np.zeros_like(p) for p in parts]                           # like state
        dirs = self.rnn.dirs
        dparts[0][-dirs:] = np.stack(np.split(dr, dirs, axis=-1))            # (dirs, B, H_out)
        return tuple(dparts) if isinstance(state, tuple) else dparts[0]

    def forward(self, x, state=None, lengths=None, need_cache=True):
        """x ids (T, B) or (T, B, D) -> y (B, C), final state, cache."""
        X, c_in = self.input.forward(x)                                      # (T, B, D)
        if X.ndim != 3:
            raise InputError(f"x: expected ids (T, B) or vectors (T, B, D), got shape {np.shape(x)}")
        if X.shape[0] == 0 and X.shape[1] > 0:
            raise InputError(f"x: expected at least one step (one output per sequence), got shape {np.shape(x)}")
        lengths = check_lengths(lengths, X.shape[0], X.shape[1])
        if lengths is not None and lengths.size and lengths.min() < 1:
            raise InputError(f"lengths: expected every length >= 1 (one output per sequence),"
                             f" got min {lengths.min()}")
        h, state, c_rnn = self.rnn.forward(X, state, lengths, need_cache)   # (T, B, F)
        if self.readout == "final_states":
            r, c_pool = self._top(state), None                                # (B, F)
        else:
            r, c_pool = pool(h, lengths, self.readout, self.rnn.dirs)         # (B, F)
        y, c_out = self.out.forward(r)                                       # (B, C)
        cache = (c_in, c_rnn, c_pool, c_out, h.shape, state) if need_cache else None
        return y, state, cache

    def backward(self, dy, cache, dstate=None):
        """dy (B, C), dstate (or None) -> dx (real inputs; None for ids), d(initial state)."""
        c_in, c_rnn, c_pool, c_out, shape, state = cache
        dr = self.out.backward(dy, c_out)                                    # (B, F)
        if self.readout == "final_states":
            dh = np.zeros(shape, self.dtype)                                 # (T, B, F)
            dtop = self._top_backward(dr, state)
            dstate = dtop if dstate is None else _add_states(dtop, dstate)
        else:
            dh = pool_backward(dr, c_pool, shape[0], self.readout)           # (T, B, F)
        dX, dstate0 = self.rnn.backward(dh, c_rnn, dstate)
        return self.input.backward(dX, c_in), dstate0

    def objective(self, batch, state=None, train=True):
        """Forward, loss per sequence and (train) backward -> loss_sum, count, metrics, state."""
        check_batch(batch, ("x", "y"))
        y_hat, state, cache = self.forward(batch["x"], state, batch.get("lengths"), train)
        loss_sum, count, dy, metrics = task_loss(self.task, y_hat, batch["y"])
        if train:
            self.backward(dy, cache)
        return loss_sum, count, metrics, state


def _add_states(a, b):
    """a + b for states that are arrays or tuples of arrays."""
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b))
    return a + b
