"""cells: tanh-RNN vs LSTM vs GRU on one task with one budget.

Task: a character-level language model (ManyToMany: embedding -> one recurrent layer -> softmax
over the characters) on Python standard-library source (rnnkit.data.stdlib_corpus: on every
machine, nothing downloaded), first 90% for training, last 10% for validation; truncated BPTT over
a stream of B lanes (rnnkit.train.StreamWindows), Adam, gradient-norm clipping. Every cell gets
the same hidden size, steps, batch, window and learning rate. The language model is chosen over
the adding problem because it has a loss every step and no early stop, so equal budgets mean
equal work and the loss curves compare directly.

Parameters of one recurrent layer, G gates (RNN 1, GRU 3, LSTM 4), input D, hidden H:
    W_x (D, G H) + W_h (H, G H) + b_x (G H) + b_h (G H) = G H (D + H + 2)
so a GRU has exactly 3/4 of an LSTM's recurrent parameters and an RNN 1/4 (the embedding and the
output layer are the same for all three).

Table: parameters (recurrent layer, whole model), seconds per 100 training steps, the training
loss of the last logging interval and the validation loss (nats per character) at the end.
PNG: the training loss curves.
"""
import dataclasses
import os
import time

import numpy as np

from .. import optim
from ..data import StreamBatches, Vocab, stdlib_corpus
from ..models.many_to_many import ManyToMany
from ..plots import line_plot
from ..train import evaluate, fit
from . import prepare, print_table

CELLS = ("rnn", "lstm", "gru")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one run."""
    n_chars: int = 300_000        # characters of standard-library source (90% train, 10% validation)
    embedding_dim: int = 32       # character vectors
    hidden: int = 128             # recurrent units of every cell
    batch: int = 32               # lanes of the stream
    seq_len: int = 64             # truncated-BPTT window
    lr: float = 0.003             # Adam's learning rate
    clip: float = 5.0             # global gradient-norm clip
    steps: int = 400              # training steps of every cell
    log_every: int = 20           # steps per point of the loss curve


FULL = Settings()
QUICK = Settings(n_chars=30_000, hidden=32, batch=16, seq_len=32, steps=30, log_every=5)


def corpus_ids(s, seed):
    """The vocabulary and the id streams (train, validation) of the corpus."""
    text = stdlib_corpus(max_chars=s.n_chars, seed=seed)
    vocab = Vocab(text, level="char", pad=None, unk=None, bos=None, eos=None)
    ids = vocab.encode(text)                                           # (N,)
    split = int(0.9 * len(ids))
    return vocab, ids[:split], ids[split:]


def train_cell(cell, V, train_ids, val_ids, s, seed, progress):
    """Train one cell's language model; return its table row and loss curve (steps, losses)."""
    model = ManyToMany(vocab_size=V, embedding_dim=s.embedding_dim, cell=cell, hidden_size=s.hidden,
                       seed=seed)
    data = StreamBatches(train_ids, s.batch, s.seq_len)
    x, y = data.window(0)
    model.objective({"x": x, "y": y})          # warm-up: compile the kernels outside the timing
    model.zero_grad()
    t0 = time.perf_counter()
    res = fit(model, optim.Adam(model, lr=s.lr), data,
              steps=s.steps, tbptt=True, clip_norm=s.clip, log_every=s.log_every, seed=seed,
              progress=progress)
    seconds = time.perf_counter() - t0
    val = evaluate(model, StreamBatches(val_ids, s.batch, s.seq_len), tbptt=True)
    curve = [(r["step"], r["loss"]) for r in res.history if r.get("loss") is not None]
    row = {"cell": cell, "recurrent_params": model.rnn.num_parameters(),
           "params": model.num_parameters(), "s_per_100_steps": round(100 * seconds / res.steps, 2),
           "train_loss": curve[-1][1], "val_loss": val["loss"]}
    return row, curve


def run(quick=False, out_dir=".", seed=0, progress=True):
    """RNN, LSTM and GRU char-level LMs on one budget; prints the table, writes the loss curves."""
    out_dir, seed = prepare(out_dir, seed)
    s = QUICK if quick else FULL
    vocab, train_ids, val_ids = corpus_ids(s, seed)
    rows, curves = [], {}
    for cell in CELLS:
        row, curves[cell] = train_cell(cell, len(vocab), train_ids, val_ids, s, seed, progress)
        rows.append(row)
    n = {r["cell"]: r["recurrent_params"] for r in rows}
    ratio = n["gru"] / n["lstm"]
    columns = ["cell", "recurrent_params", "params", "s_per_100_steps", "train_loss", "val_loss"]
    print_table(rows, columns, f"Char-level LM on {s.n_chars:,} characters of the standard library"
                f" (V={len(vocab)}, H={s.hidden}, {s.steps} steps of {s.batch}x{s.seq_len};"
                f" losses in nats/char)")
    print(f"GRU / LSTM recurrent parameters: {n['gru']} / {n['lstm']} = {ratio:.4f}\n", flush=True)
    series = {c: tuple(np.array(v, dtype=np.float64) for v in zip(*curve)) for c, curve in curves.items()}
    png = line_plot(os.path.join(out_dir, "cells.png"), series, title="Char-level LM, same budget",
                    xlabel="step", ylabel="training loss (nats/char)")
    return {"rows": rows, "columns": columns, "png": png, "gru_lstm_ratio": ratio,
            "curves": curves, "settings": dataclasses.asdict(s)}
