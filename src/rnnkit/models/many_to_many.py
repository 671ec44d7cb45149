"""ManyToMany (N -> N): an output at every step, and the pieces every sequence model shares.

    x_t = E[ids_t]  (Embedding)  |  onehot(ids_t)  |  x_t (real vectors)      InputLayer
    h_t = RNN/LSTM/GRU stack(x_t, h_{t-1})                                   rnn
    y_t = W_y h_t + b_y          (row form: y = h W_y + b_y)                 Readout

Shapes (time-major): ids (T, B) int or x (T, B, D) float -> y (T, B, V) logits (task "classify")
or (T, B, K) predictions (task "regress"); h (T, B, dirs*H_out), H_out = proj_size or hidden_size.

Weight tying (Press & Wolf, 2017; Inan et al., 2017): W_y = E^T, the embedding matrix E (V, H_in)
read by the output layer, which needs embedding_dim == dirs*H_out and the output size V =
vocab_size. The Readout holds the very same parameter and gradient arrays as the Embedding, so
E appears once in named_parameters() and dE is the sum of both uses.
With dropout > 0, dropout also acts on h before the readout (Zaremba et al., 2014), besides
between stacked layers.

objective(batch): batch = {"x": ids (T, B) int64 or (T, B, D) float, "y": targets (T, B) int64
("classify") or (T, B, K) float ("regress"), "lengths": (B,) optional}. Only steps t < lengths[b]
count. classify: cross-entropy per token, metrics {"correct": tokens whose argmax is the target};
regress: per step e = mean_k (y_k - target_k)^2. loss_sum = Σ e over count real steps; the
gradient is that of loss_sum / count.

Shared with many_to_one.py and one_to_many.py: SequenceModel (config, inference), make_recurrent,
InputLayer, Readout and task_loss.
"""
import numpy as np

from .. import init
from .._checks import (check_array, check_choice, check_dtype, check_float, check_int,
                       check_int_array, check_real)
from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Dropout, Embedding, EmbeddingDropout, MinGRU, MinLSTM, Module
from ..layers.sequence import check_lengths
from ..losses import cross_entropy, mse

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
VARIANT_OPTIONS = ("layer_norm", "input_dropout", "recurrent_dropout", "weight_drop", "zoneout",
                   "learn_init", "init", "init_gain")          # rnnkit.layers.variants
CELL_OPTIONS = {"rnn": ("nonlinearity", "kernels") + VARIANT_OPTIONS,
                "lstm": ("proj_size", "peepholes", "kernels", "forget_bias", "zoneout_c") + VARIANT_OPTIONS,
                "gru": ("reset_after", "kernels") + VARIANT_OPTIONS}
MINIMAL = {"mingru": MinGRU, "minlstm": MinLSTM}     # one-way, no variants, no dropout between layers
CELL_OPTIONS.update(mingru=("kernels",), minlstm=("kernels",))
TASKS = ("classify", "regress")


def make_recurrent(cell, input_size, hidden_size, num_layers, bidirectional, dropout, dtype, seed,
                   cell_options):
    """The RNN, LSTM, GRU, MinGRU or MinLSTM stack of `cell`, with the options that cell takes."""
    check_choice("cell", cell, tuple(CELLS) + tuple(MINIMAL))
    extra = sorted(set(cell_options) - set(CELL_OPTIONS[cell]))
    if extra:
        raise InputError(f"{extra[0]}: not an option of cell={cell!r} (its options:"
                         f" {', '.join(CELL_OPTIONS[cell]) or 'none'}), got {cell_options[extra[0]]!r}")
    if cell in MINIMAL:
        if bidirectional:
            raise InputError(f"bidirectional: cell={cell!r} runs forward in time only, got True")
        if dropout and num_layers > 1:
            raise InputError(f"dropout: cell={cell!r} has no dropout between its layers; expected 0.0 "
                             f"with num_layers={num_layers}, got {dropout}")
        return MINIMAL[cell](input_size, hidden_size, num_layers, dtype=dtype, seed=seed, **cell_options)
    return CELLS[cell](input_size, hidden_size, num_layers, bidirectional, dropout=dropout,
                       dtype=dtype, seed=seed, **cell_options)


def output_width(rnn):
    """dirs * H_out: the feature size of the stack's output."""
    return rnn.dirs * (rnn.proj_size or rnn.hidden_size)


class SequenceModel(Module):
    """What every model shares: config() from the constructor's kwargs, and a cache-free infer()."""

    def __init__(self, config):
        super().__init__()
        self.dtype = check_dtype("dtype", config["dtype"])
        self.set_config(**config)        # config() -> {"type": class name, **kwargs}, for models.build

    def infer(self, *args, **kwargs):
        """Forward without a cache: the outputs only."""
        *outs, _ = self.forward(*args, need_cache=False, **kwargs)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _nonzero(**options):
    """The options that are set (a model's config leaves out the ones at their default 0)."""
    return {k: v for k, v in options.items() if v}


class InputLayer(Module):
    """ids (T, B) -> Embedding rows or one-hot vectors (T, B, D); real x (T, B, D) passes through."""

    def __init__(self, vocab_size=None, input_size=None, embedding_dim=None, one_hot=False,
                 dtype=np.float32, seed=0, embedding_dropout=0.0):
        super().__init__()
        self.dtype = check_dtype("dtype", dtype)
        if (vocab_size is None) == (input_size is None):
            raise InputError(f"vocab_size, input_size: expected exactly one (token ids or real"
                             f" vectors), got vocab_size={vocab_size!r}, input_size={input_size!r}")
        p = check_real("embedding_dropout", embedding_dropout, 0.0, 1.0)
        if p and (embedding_dim is None or p >= 1):
            raise InputError(f"embedding_dropout: expected a probability in [0, 1) for an embedding"
                             f" (embedding_dim given), got {embedding_dropout!r} with embedding_dim={embedding_dim!r}")
        if input_size is not None:
            if embedding_dim is not None or one_hot:
                raise InputError(f"embedding_dim, one_hot: expected neither for real input vectors,"
                                 f" got embedding_dim={embedding_dim!r}, one_hot={one_hot!r}")
            self.kind, self.size = "real", check_int("input_size", input_size, low=1)
            return
        self.V = check_int("vocab_size", vocab_size, low=1)
        if (embedding_dim is None) == (not one_hot):
            raise InputError(f"embedding_dim, one_hot: expected an embedding_dim or one_hot=True,"
                             f" not both, got embedding_dim={embedding_dim!r}, one_hot={one_hot!r}")
        if one_hot:
            self.kind, self.size = "one_hot", self.V
        else:
            self.kind, self.size = "embed", check_int("embedding_dim", embedding_dim, low=1)
            self.embed = self.add_child("embed", EmbeddingDropout(self.V, self.size, p, self.dtype, seed)
                                        if p else Embedding(self.V, self.size, self.dtype, seed))

    def forward(self, x):
        """x -> X (T, B, D) (leading axes as x's for ids), cache."""
        if self.kind == "real":
            x = check_float("x", x, self.dtype)
            if x.ndim < 1 or x.shape[-1] != self.size:
                raise InputError(f"x: expected real vectors (..., {self.size}), got shape {x.shape}")
            return x, None
        if self.kind == "embed":
            return self.embed.forward(x)
        ids = check_int_array("x", x, 0, self.V)
        return np.eye(self.V, dtype=self.dtype)[ids], None                  # (..., V)

    def backward(self, dX, cache):
        """dX (T, B, D) -> dx for real inputs (None for ids); adds dE for an embedding."""
        if self.kind == "embed":
            return self.embed.backward(dX, cache)
        return dX if self.kind == "real" else None


class Readout(Module):
    """y = drop(h) W_y + b_y; tied: W_y = E^T with E (V, H) shared with an Embedding."""

    def __init__(self, in_size, out_size, dropout=0.0, tied=None, dtype=np.float32, seed=0):
        super().__init__()
        self.dtype = check_dtype("dtype", dtype)
        self.H, self.V = in_size, out_size
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(in_size)
        self.tied = tied is not None
        if self.tied:
            if tied.W.shape != (out_size, in_size):
                raise InputError(f"tie_weights: expected an embedding of shape ({out_size}, {in_size})"
                                 f" (output size, hidden output size), got {tied.W.shape}")
            self.params["E"], self.grads["E"] = tied.params["W"], tied.grads["W"]   # shared arrays
        else:
            self.add_param("W_y", init.uniform(rng, (in_size, out_size), k, self.dtype))  # (H, V)
        self.add_param("b_y", init.uniform(rng, (out_size,), k, self.dtype))          # (V,)
        self.drop = self.add_child("drop", Dropout(dropout, seed + 1)) if dropout > 0 else None

    def W_y(self):
        """The output matrix (H, V): its own, or the tied embedding's transpose."""
        return self.params["E"].T if self.tied else self.params["W_y"]

    def forward(self, h):
        """h (..., H) -> y (..., V), cache."""
        h, mask = self.drop.forward(h) if self.drop is not None else (h, None)
        y = h.reshape(-1, self.H) @ self.W_y() + self.params["b_y"]           # (N, V)
        return y.reshape(h.shape[:-1] + (self.V,)), (h, mask)

    def backward(self, dy, cache):
        """dy (..., V) -> dh (..., H); adds dW_y (or dE) and db_y."""
        h, mask = cache
        dy2 = dy.reshape(-1, self.V)                                         # (N, V)
        dW = h.reshape(-1, self.H).T @ dy2                                   # (H, V)
        if self.tied:
            self.grads["E"] += dW.T          # the embedding's gradient array: uses add up
        else:
            self.grads["W_y"] += dW
        self.grads["b_y"] += dy2.sum(axis=0)
        dh = (dy2 @ self.W_y().T).reshape(h.shape)                           # (..., H)
        return self.drop.backward(dh, mask) if self.drop is not None else dh


def task_loss(task, y_hat, y, mask=None):
    """Summed loss over counted items -> (loss_sum, count, d(loss_sum/count)/dy_hat, metrics)."""
    if task == "classify":
        y = check_array("y", y)
        loss_sum, dy = cross_entropy(y_hat, y, mask, reduction="sum")
        hit = y_hat.argmax(axis=-1) == y                                     # (...)
        count = hit.size if mask is None else int(np.sum(mask))
        correct = int(np.sum(hit if mask is None else hit & (mask > 0)))
        metrics = {"correct": correct}
    else:
        K = y_hat.shape[-1]
        loss_sum, dy = mse(y_hat, y, mask, reduction="sum")
        loss_sum, dy = loss_sum / K, dy / y_hat.dtype.type(K)    # per item: mean over K outputs
        count = y_hat[..., 0].size if mask is None else int(np.sum(mask))
        metrics = {}
    return loss_sum, count, dy / y_hat.dtype.type(max(count, 1)), metrics


def check_batch(batch, required, optional=("lengths",)):
    """Check that batch is a dict with every `required` key and no keys beyond `optional`."""
    if not isinstance(batch, dict):
        raise InputError(f"batch: expected a dict with keys {list(required)}, got {type(batch).__name__}")
    missing = [k for k in required if k not in batch]
    extra = sorted(map(str, set(batch) - set(required) - set(optional)))
    if missing or extra:
        raise InputError(f"batch: expected keys {list(required)} (optional {list(optional)}), "
                         f"missing {missing}, unexpected {extra}")
    return batch


def real_steps(lengths, T, B):
    """Mask (T, B) of real steps, or None when lengths is None."""
    lengths = check_lengths(lengths, T, B)
    return None if lengths is None else np.arange(T)[:, None] < lengths[None, :]   # (T, B)


class ManyToMany(SequenceModel):
    """An output y_t = W_y h_t + b_y at every step: tagging, char-level language models."""

    def __init__(self, *, vocab_size=None, input_size=None, output_size=None, cell="lstm",
                 hidden_size, num_layers=1, bidirectional=False, dropout=0.0, embedding_dim=None,
                 one_hot=False, tie_weights=False, task="classify", dtype="float32", seed=0,
                 embedding_dropout=0.0, **cell_options):
        super().__init__(dict(vocab_size=vocab_size, input_size=input_size, output_size=output_size,
                              cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                              bidirectional=bidirectional, dropout=dropout,
                              embedding_dim=embedding_dim, one_hot=one_hot, tie_weights=tie_weights,
                              task=task, dtype=dtype, seed=seed,
                              **_nonzero(embedding_dropout=embedding_dropout), **cell_options))
        self.task = check_choice("task", task, TASKS)
        if output_size is None and not (task == "classify" and vocab_size is not None):
            raise InputError("output_size: expected an integer (needed unless task='classify' with"
                             " vocab_size), got None")
        V = check_int("output_size", vocab_size if output_size is None else output_size, low=1)
        dropout = check_real("dropout", dropout, 0.0, 1.0)
        self.input = self.add_child("input", InputLayer(vocab_size, input_size, embedding_dim,
                                                        one_hot, self.dtype, seed + 1, embedding_dropout))
        self.rnn = self.add_child("rnn", make_recurrent(cell, self.input.size, hidden_size,
                                                        num_layers, bidirectional, dropout,
                                                        self.dtype, seed, cell_options))
        tied = self._tied(tie_weights, V)
        self.out = self.add_child("out", Readout(output_width(self.rnn), V, dropout, tied,
                                                 self.dtype, seed + 2))

    def _tied(self, tie_weights, V):
        """The Embedding the readout shares, or None."""
        if not tie_weights:
            return None
        if self.input.kind != "embed" or self.input.V != V:
            raise InputError(f"tie_weights: expected an embedding of vocab_size == output size {V},"
                             f" got input kind {self.input.kind!r}")
        return self.input.embed

    def forward(self, x, state=None, lengths=None, need_cache=True):
        """x ids (T, B) or (T, B, D) -> y (T, B, V), final state, cache."""
        X, c_in = self.input.forward(x)                                      # (T, B, D)
        if X.ndim != 3:
            raise InputError(f"x: expected ids (T, B) or vectors (T, B, D), got shape {np.shape(x)}")
        h, state, c_rnn = self.rnn.forward(X, state, lengths, need_cache)   # (T, B, dirs*H_out)
        y, c_out = self.out.forward(h)                                       # (T, B, V)
        return y, state, ((c_in, c_rnn, c_out) if need_cache else None)

    def backward(self, dy, cache, dstate=None):
        """dy (T, B, V), dstate (or None) -> dx (real inputs; None for ids), d(initial state)."""
        c_in, c_rnn, c_out = cache
        dh = self.out.backward(dy, c_out)
        dX, dstate0 = self.rnn.backward(dh, c_rnn, dstate)
        return self.input.backward(dX, c_in), dstate0

    def step(self, x_t, state=None):
        """One step: x_t ids (B,) or (B, D), state -> y_t (B, V), new state (no recomputation)."""
        if self.rnn.bidirectional:
            raise InputError("step: a bidirectional model needs the whole sequence; got"
                             " bidirectional=True")
        x_t = np.asarray(x_t)
        h, state, _ = self.rnn.forward(self.input.forward(x_t[None])[0], state, need_cache=False)
        y, _ = self.out.forward(h[0])                                        # (B, V)
        return y, state

    def generation_step(self):
        """A step function like step, built now for sampling: rnnkit.models.generation's fused plan."""
        from .generation import generation_step
        return generation_step(self)

    def objective(self, batch, state=None, train=True):
        """Forward, loss over real steps and (train) backward -> loss_sum, count, metrics, state."""
        check_batch(batch, ("x", "y"))
        y_hat, state, cache = self.forward(batch["x"], state, batch.get("lengths"), train)
        mask = real_steps(batch.get("lengths"), *y_hat.shape[:2])
        loss_sum, count, dy, metrics = task_loss(self.task, y_hat, batch["y"], mask)
        if train:
            self.backward(dy, cache)
        return loss_sum, count, metrics, state
