"""LanguageModelPretrainer: train a classifier's embedding and recurrent stack as a language model first.

Unlabelled text teaches the recurrent layers what a sentence looks like before the few labels teach
them what it means (Dai & Le 2015, "LM-LSTM"; both directions as in ELMo, Peters et al. 2018).
On the top layer's outputs h_t = [h_t^fwd ; h_t^bwd] of a sentence with L real tokens x_0 .. x_{L-1}:

    forward direction    p(x_{t+1} | x_0..x_t)     = softmax(h_t^fwd W_f + b_f),   t = 0 .. L-2
    backward direction   p(x_{t-1} | x_t..x_{L-1}) = softmax(h_t^bwd W_b + b_b),   t = 1 .. L-1
    loss = - Σ log p over those predictions;  count = their number

A one-way stack has the forward term only. The pretrainer shares the model's `input` and `rnn`
modules (the same parameter arrays: training it trains them) and adds its own readouts W_f, W_b,
which the classifier never uses. It reads the classifier's batches ({"x", "lengths"}; "y" is ignored).
"""
import numpy as np

from ..errors import InputError
from ..layers import Linear
from ..layers.sequence import check_lengths
from .many_to_many import SequenceModel, output_width, task_loss


class LanguageModelPretrainer(SequenceModel):
    """Next-word (and, bidirectional, previous-word) prediction on a model's embedding and RNN stack."""

    def __init__(self, model, seed=0):
        if getattr(getattr(model, "input", None), "kind", None) != "embed":
            raise InputError("model: expected a model whose input is a word embedding (vocab_size and"
                             f" embedding_dim), got {type(model).__name__} with input"
                             f" {getattr(getattr(model, 'input', None), 'kind', None)!r}")
        super().__init__(dict(dtype=model.dtype, seed=seed))
        self.input = self.add_child("input", model.input)
        self.rnn = self.add_child("rnn", model.rnn)
        V, dirs = model.input.V, model.rnn.dirs
        H = output_width(model.rnn) // dirs                                  # one direction's width
        self.heads = [self.add_child(name, Linear(H, V, dtype=self.dtype, seed=seed + k))
                      for k, name in enumerate(("next", "previous")[:dirs])]

    def objective(self, batch, state=None, train=True):
        """Forward, summed next/previous-word cross-entropy and (train) backward."""
        x = batch["x"]
        X, c_in = self.input.forward(x)                                       # (T, B, D)
        T, B = X.shape[:2]
        lengths = check_lengths(batch.get("lengths"), T, B)
        L = np.full(B, T, np.int64) if lengths is None else lengths          # (B,)
        h, _, c_rnn = self.rnn.forward(X, None, lengths, train)              # (T, B, dirs*H)
        parts = np.split(h, len(self.heads), axis=-1)                        # dirs x (T, B, H)
        t = np.arange(T)[:, None]                                            # (T, 1)
        # the steps that predict: forward x[t+1] from t < L-1, backward x[t-1] from 1 <= t < L;
        # only their rows go through the (wide) softmax, none of the padding
        steps = (np.nonzero(t < L[None, :] - 1), np.nonzero((t >= 1) & (t < L[None, :])))
        targets = (lambda i: x[i[0] + 1, i[1]], lambda i: x[i[0] - 1, i[1]])
        n = sum(len(i[0]) for i in steps[:len(self.heads)])
        loss_sum, correct, dh = 0.0, 0, []
        for head, part, i, target in zip(self.heads, parts, steps, targets):
            logits, c = head.forward(part[i])                                # (N, V)
            s, k, dy, metrics = task_loss("classify", logits, target(i))
            loss_sum, correct = loss_sum + s, correct + metrics["correct"]
            if train:      # task_loss scaled dy by 1/k; the objective's gradient is of loss_sum / n
                d = np.zeros_like(part)                                      # (T, B, H)
                d[i] = head.backward(dy * self.dtype.type(k / max(n, 1)), c)
                dh.append(d)
        if train:
            dX, _ = self.rnn.backward(np.concatenate(dh, axis=-1), c_rnn, None)
            self.input.backward(dX, c_in)
        return loss_sum, n, {"correct": correct}, None

