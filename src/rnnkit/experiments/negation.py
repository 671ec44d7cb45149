"""negation: a bag-of-words classifier against a recurrent one on sentences with negation and contrast.

Data: rnnkit.data.make_negation_sentiment, labelled by a rule that needs word order: the clause
after the last "but" counts, its last sentiment word gives the polarity and a negation before it
flips it ("the plot was not bad at all" -> 1, "the film was good but not great" -> 0). Training
and test sentences come from different seeds; half of them contain a negation.

Bag of words (logistic regression): x_v = count of word v in the sentence (N, V),
    p(y | x) = softmax(x W + b),  W (V, 2), b (2,)       (rnnkit.Linear; two-class softmax = logistic)
trained on the cross-entropy with rnnkit.optim.Adam on the whole training set at once. It sees the
same bag for "good but not great" and "not good but great", and negation is an XOR of words
("good" 1, "not good" 0, "bad" 0, "not bad" 1), which no linear function of counts can fit. The
best it can do is trade one kind of sentence against the other: most negated templates of this
generator flip the adjective's polarity, so it may give positive words negative weights and fit
many negated sentences at the cost of the plain ones (or the reverse), but never both.

Recurrent classifier: ManyToOne, word embedding -> GRU (or LSTM) -> last real state -> 2 logits,
trained with rnnkit.train.fit on padded minibatches with lengths.

Table: test accuracy overall, on negated and non-negated sentences, and on those with and without
"but". PNG: a heatmap of the same numbers, one row per model.
"""
import dataclasses
import os

import numpy as np

from .. import optim
from ..data import Vocab, make_negation_sentiment, pad_sequences
from ..layers import Linear
from ..losses import cross_entropy
from ..models.many_to_one import ManyToOne
from ..plots import heatmap
from ..train import Batches, fit
from . import prepare, print_table


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one run."""
    n_train: int = 4000            # training sentences
    n_test: int = 2000             # test sentences
    cell: str = "gru"              # the recurrent classifier's cell
    embedding_dim: int = 32        # word vectors
    hidden: int = 64               # recurrent units
    batch: int = 64                # sentences per step
    lr: float = 0.005              # Adam's learning rate (recurrent model)
    steps: int = 600               # steps of the recurrent model
    bow_lr: float = 0.1            # Adam's learning rate (bag of words)
    bow_steps: int = 300           # full-batch steps of the bag of words


FULL = Settings()
QUICK = Settings(n_train=1500, n_test=600, hidden=32, steps=150, bow_steps=150)


def encode(sentences, vocab):
    """Token ids (L,) int64 of each sentence."""
    return [vocab.encode(s) for s in sentences]


def bag_of_words(ids, V):
    """Word counts (N, V) float32 of id sequences."""
    X = np.zeros((len(ids), V), np.float32)                            # (N, V)
    for i, seq in enumerate(ids):
        np.add.at(X[i], seq, 1.0)
    return X


def train_bow(X, y, s, seed):
    """Logistic regression on counts X (N, V): a trained rnnkit.Linear (V -> 2)."""
    model = Linear(X.shape[1], 2, seed=seed)
    opt = optim.Adam(model, lr=s.bow_lr)
    for _ in range(s.bow_steps):
        model.zero_grad()
        logits, cache = model.forward(X)                               # (N, 2)
        _, dlogits = cross_entropy(logits, y)
        model.backward(dlogits, cache)
        opt.step()
    return model


def batch_of(ids, labels, idx, pad_id):
    """A padded ManyToOne batch {"x": (T, B), "y": (B,), "lengths": (B,)} of the sentences idx."""
    x, lengths = pad_sequences([ids[i] for i in idx], pad=pad_id)
    return {"x": x, "y": labels[idx], "lengths": lengths}


def train_rnn(ids, labels, V, pad_id, s, seed, progress):
    """The recurrent classifier trained with rnnkit.train.fit."""
    model = ManyToOne(vocab_size=V, embedding_dim=s.embedding_dim, num_outputs=2, cell=s.cell,
                      hidden_size=s.hidden, seed=seed)
    data = Batches(lambda idx: batch_of(ids, labels, idx, pad_id), len(ids), s.batch, seed=seed)
    fit(model, optim.Adam(model, lr=s.lr), data, steps=s.steps, clip_norm=5.0, seed=seed,
        progress=progress)
    return model


def rnn_predict(model, ids, pad_id):
    """Predicted classes (N,) of the recurrent classifier."""
    batch = batch_of(ids, np.zeros(len(ids), np.int64), np.arange(len(ids)), pad_id)
    model.eval()
    logits = model.forward(batch["x"], None, batch["lengths"], need_cache=False)[0]   # (N, 2)
    return logits.argmax(axis=1)


def accuracy_row(name, pred, labels, groups):
    """{"model": name, group: accuracy on it, ...} for boolean masks `groups`."""
    row = {"model": name}
    for g, mask in groups.items():
        row[g] = float(np.mean(pred[mask] == labels[mask])) if mask.any() else float("nan")
    return row


def run(quick=False, out_dir=".", seed=0, progress=True):
    """Bag of words vs recurrent classifier on negation; prints the table, writes a heatmap PNG."""
    out_dir, seed = prepare(out_dir, seed)
    s = QUICK if quick else FULL
    train_s, train_y, _ = make_negation_sentiment(s.n_train, seed=2 * seed)
    test_s, test_y, test_neg = make_negation_sentiment(s.n_test, seed=2 * seed + 1)
    vocab = Vocab.from_texts(train_s, level="word", lowercase=True, bos=None, eos=None)
    train_ids, test_ids, V = encode(train_s, vocab), encode(test_s, vocab), len(vocab)
    but = np.array(["but" in vocab.tokenize(t) for t in test_s])     # (N,)
    groups = {"all": np.ones(len(test_s), bool), "negated": test_neg, "not negated": ~test_neg,
              "with but": but, "without but": ~but}
    bow = train_bow(bag_of_words(train_ids, V), train_y, s, seed)
    bow_pred = bow.forward(bag_of_words(test_ids, V))[0].argmax(axis=1)
    rnn = train_rnn(train_ids, train_y, V, vocab.pad_id, s, seed, progress)
    rows = [accuracy_row("bag of words", bow_pred, test_y, groups),
            accuracy_row(s.cell.upper(), rnn_predict(rnn, test_ids, vocab.pad_id), test_y, groups)]
    columns = ["model", *groups]
    print_table(rows, columns, f"Negation sentiment: test accuracy ({s.n_test} sentences,"
                f" {int(test_neg.sum())} negated)")
    png = heatmap(os.path.join(out_dir, "negation.png"), [[r[g] for g in groups] for r in rows],
                  title="Test accuracy by sentence kind", xticklabels=list(groups),
                  yticklabels=[r["model"] for r in rows], vmin=0.0, vmax=1.0)
    return {"rows": rows, "columns": columns, "png": png, "settings": dataclasses.asdict(s)}
