"""`rnnkit train classify` (sentence classification) and `rnnkit predict RUN "text" ...`.

Data: a TSV / CSV / JSONL file with a text and a label column (or key), a file of "label text"
lines (--format sst), or --data-dir with one text file per class (file name = class, one example
per line). The model is a ManyToOne: word embedding, RNN/LSTM/GRU stack over the real tokens of
each sentence (lengths), a softmax over the classes; the word vocabulary is built on the training
split (lowercased, <unk> for the rest). `predict` prints the likeliest class and its probability.

For small data sets (a few thousand sentences, nothing pretrained to download), four helps:
    --embedding-init nb      the first embedding column(s) start at each word's naive-Bayes
                             log-count ratio on the training texts: the network starts from a
                             bag-of-words polarity and learns from there what order changes
                             ("not good"); the rest of the embedding starts random
    --negation-scope         mark the words after a negation word up to the next punctuation mark
                             or "but" ("not ¬good ,"; rnnkit.data.vocab.mark_negation): a negated
                             word is a word of its own from the start, with its own embedding
                             (and naive-Bayes column); predict and evaluate mark texts the same way
    --pretrain-epochs N      first train the embedding and recurrent layers as a language model
                             on the training texts (models.pretrain)
    --ensemble RUN           (evaluate, predict) average the class probabilities of several runs
"""
import numpy as np

from .. import tasks
from ..data import Vocab, read_labelled, read_text
from ..models import ManyToOne, build
from .common import check_file, load_run, new_model, resume_state, train_model, train_subparsers
from .flags import (add_embedding_dropout, add_training_args, cell_options, check_training_args,
                    embedding_options, fail, make_optimizer)

CLASSIFY_DEFAULTS = dict(hidden=128, bidirectional=True, batch=32, lr=2e-3, eval_every=None, epochs=10)


def _column(v):
    """A column given on the command line: an index when it is a number, else a name."""
    return int(v) if v is not None and v.isdigit() else v


def read_examples(args, path=None, flag="--data"):
    """Labelled examples of --data (or `path`), or of --data-dir."""
    if path is None and getattr(args, "data_dir", None):
        return tasks.read_class_files(args.data_dir)
    path = check_file(flag, path or args.data)
    return read_labelled(path, args.format, _column(args.text_column), _column(args.label_column))


def split(args, data, classes):
    """(train texts, train labels, val texts, val labels) by --val-data or a seeded --val-split."""
    labels = tasks.relabel(data, classes)
    if getattr(args, "val_data", None):
        val = read_examples(args, args.val_data, "--val-data")
        return data.texts, labels, val.texts, tasks.relabel(val, classes)
    tr, va = tasks.split_indices(len(data.texts), args.val_split, args.seed)
    return ([data.texts[i] for i in tr], labels[tr], [data.texts[i] for i in va], labels[va])


def build_classifier(args, vocab_size, n_classes):
    """A ManyToOne classifier from the command's flags."""
    return ManyToOne(vocab_size=vocab_size, num_outputs=n_classes, embedding_dim=args.embedding,
                     cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                     bidirectional=args.bidirectional, dropout=args.dropout, readout=args.readout,
                     dtype=args.dtype, seed=args.seed, **embedding_options(args), **cell_options(args))


def cmd_train_classify(args):
    """`rnnkit train classify`."""
    if bool(args.data) == bool(args.data_dir):
        fail("--data / --data-dir: give exactly one (a labelled file, or a folder with one file per class)")
    check_training_args(args)
    prev = resume_state(args, "classify")
    data = read_examples(args)
    classes = prev[1]["classes"] if prev else data.classes
    texts, labels, val_texts, val_labels = split(args, data, classes)
    vocab = (Vocab.from_json(prev[1]["vocab"]) if prev
             else tasks.word_vocab(texts, args.vocab_size, negation_scope=args.negation_scope))
    xs = tasks.encode_texts(vocab, texts, args.max_len)
    train = tasks.sequence_batches(xs, labels, args.batch, vocab.pad_id, args.seed)
    val = None
    if len(val_texts):
        val = tasks.sequence_batches(tasks.encode_texts(vocab, val_texts, args.max_len), val_labels,
                                     args.batch, vocab.pad_id, shuffle=False)
    model = build(prev[0]) if prev else new_model(build_classifier, args, len(vocab), len(classes))
    print(f"classifier: {len(classes)} classes {classes[:10]}, {len(texts):,} training and "
          f"{len(val_texts):,} validation examples, {len(vocab):,} words; "
          f"{model.num_parameters():,} parameters")
    meta = {"vocab": vocab.to_json(), "classes": list(classes), "max_len": args.max_len}
    if args.embedding_init == "nb" and not prev:
        nb_embedding(model, xs, labels, len(classes))
    if args.pretrain_epochs and not prev:
        pretrain(args, model, train, val)
    train_model(args, model, train, val, "classify", meta)
    if len(val_texts):
        _print_scores(model, vocab, val_texts, val_labels, classes, args.max_len, "validation")
    return 0


def nb_ratios(seqs, labels, V, C, alpha=1.0):
    """Log-count ratios (V, K) of word presence, one column per class against the rest (K = 1 when C = 2).

    r_w = log((α + n_w^c) / Σ_v (α + n_v^c)) - log((α + n_w^rest) / Σ_v (α + n_v^rest)), with n_w the
    number of training texts of the class (or of the rest) that contain w (Wang & Manning 2012).
    """
    n = np.zeros((C, V))                                                     # (C, V) texts with w
    for s, c in zip(seqs, labels):
        n[c, np.unique(s)] += 1
    cols = []
    for c in ([1] if C == 2 else range(C)):
        p, q = alpha + n[c], alpha + n.sum(0) - n[c]                          # (V,) class, the rest
        cols.append(np.log(p / p.sum()) - np.log(q / q.sum()))
    return np.stack(cols, axis=1)                                            # (V, K)


def nb_embedding(model, seqs, labels, C):
    """Put the words' log-count ratios in the first K columns of the classifier's embedding."""
    W = model.input.embed.params["W"]                                        # (V, E)
    r = nb_ratios(seqs, labels, W.shape[0], C)                               # (V, K)
    if r.shape[1] > W.shape[1]:
        fail(f"--embedding-init nb: needs --embedding >= {r.shape[1]} (one column per class), got {W.shape[1]}")
    W[:, :r.shape[1]] = r


def pretrain(args, model, train, val):
    """Train the model's embedding and recurrent stack as a language model on the training texts."""
    from ..models.pretrain import LanguageModelPretrainer
    from ..train import fit
    if args.pretrain_epochs < 0:
        fail(f"--pretrain-epochs: expected an integer >= 0, got {args.pretrain_epochs}")
    if model.input.kind != "embed":
        fail("--pretrain-epochs: needs a word embedding (--embedding > 0)")
    lm = LanguageModelPretrainer(model, seed=args.seed)
    ways = "next and previous word" if model.rnn.dirs == 2 else "next word"
    print(f"pretraining the embedding and recurrent layers to predict the {ways} of the training texts,"
          f" {args.pretrain_epochs} epochs")
    result = fit(lm, make_optimizer(args, lm), train, epochs=args.pretrain_epochs, val_data=val,
                 eval_every=len(train), clip_norm=args.clip or None, seed=args.seed, progress=not args.quiet)
    losses = [r["loss"] for r in result.history if r.get("loss") is not None]
    train_loss = f"training {losses[-1]:.3f}" if losses else "no training loss logged"
    val_loss = f", validation {result.best_val:.3f}" if result.best_val is not None else ""
    print(f"language-model loss (nats/word): {train_loss}{val_loss}")


def scores(model, vocab, texts, labels, classes, max_len):
    """{"accuracy", "count", "per_class"} of the model on labelled texts."""
    probs = tasks.classify_probs(model, tasks.encode_texts(vocab, texts, max_len))   # (N, C)
    return scores_of(probs, labels, classes)


def scores_of(probs, labels, classes):
    """{"accuracy", "count", "per_class"} of class probabilities (N, C) against labels (N,)."""
    pred = probs.argmax(axis=1)                                              # (N,)
    return {"accuracy": float(np.mean(pred == labels)), "count": len(labels),
            "per_class": tasks.per_class(pred, np.asarray(labels), classes)}


def load_ensemble(first, meta, others, command):
    """[(model, meta)] of RUN and the --ensemble runs; every run must have RUN's classes, in order."""
    members = [(first, meta)]
    for path in others or ():
        model, m = load_run(path, "classify", command)
        if list(m["classes"]) != list(meta["classes"]):
            fail(f"--ensemble {path}: expected the classes {meta['classes']} of the first run, "
                 f"got {m['classes']}")
        members.append((model, m))
    return members


def ensemble_probs(members, texts):
    """The mean of the members' class probabilities (N, C); each member reads with its own vocabulary."""
    return np.mean([tasks.classify_probs(model, tasks.encode_texts(Vocab.from_json(m["vocab"]), texts,
                                                                   m.get("max_len")))
                    for model, m in members], axis=0)


def _print_scores(model, vocab, texts, labels, classes, max_len, what):
    s = scores(model, vocab, texts, labels, classes, max_len)
    print(f"{what} accuracy {s['accuracy']:.4f} on {s['count']:,} examples")
    for name, c in s["per_class"].items():
        acc = "-" if c["accuracy"] is None else f"{c['accuracy']:.4f}"
        print(f"  {name}: {acc} ({c['correct']}/{c['count']})")


def cmd_predict(args):
    """`rnnkit predict RUN TEXT...`: the likeliest class of each text and its probability."""
    model, meta = load_run(args.run_dir, "classify", "predict")
    texts = list(args.texts)
    if args.file:
        texts += [line.strip() for line in read_text(check_file("--file", args.file)).splitlines() if line.strip()]
    if not texts:
        fail("TEXT: give at least one text to classify (or --file FILE with one text per line)")
    classes = meta["classes"]
    probs = ensemble_probs(load_ensemble(model, meta, args.ensemble, "predict"), texts)   # (N, C)
    for text, p in zip(texts, probs):
        k = int(p.argmax())
        print(f"{classes[k]}\t{p[k]:.3f}\t{text}")
    return 0


def add_data_args(p):
    """The flags that say how to read a labelled file."""
    p.add_argument("--format", choices=("tsv", "csv", "jsonl", "sst"), default=None,
                   help="file format (default: from the extension; sst = 'label text' lines)")
    p.add_argument("--text-column", default=None, help="name (or 0-based index) of the text column")
    p.add_argument("--label-column", default=None, help="name (or 0-based index) of the label column")


def register(sub):
    """Add `train classify` and `predict`."""
    p = train_subparsers(sub).add_parser("classify", help="a sentence classifier on labelled texts",
                                         description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, metavar="FILE", help="labelled texts (TSV, CSV, JSONL or 'label text')")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="a folder with one text file per class")
    p.add_argument("--val-data", default=None, metavar="FILE", help="validation file (default: --val-split of --data)")
    add_data_args(p)
    p.add_argument("--embedding", type=int, default=64, help="word embedding size")
    add_embedding_dropout(p)
    p.add_argument("--vocab-size", type=int, default=20000, help="keep the most frequent words")
    p.add_argument("--max-len", type=int, default=400, help="cut texts to this many tokens")
    p.add_argument("--negation-scope", action="store_true",
                   help="mark each word after a negation word up to the next punctuation mark or 'but' "
                        "('not good , fine' -> 'not ¬good , fine'): negated words get embeddings of "
                        "their own; predict and evaluate mark texts the same way")
    p.add_argument("--readout", choices=("last", "mean", "max", "final_states"), default="last",
                   help="how the states of a sentence become one vector")
    p.add_argument("--embedding-init", choices=("random", "nb"), default="random",
                   help="nb: start the first embedding column(s) at each word's naive-Bayes log-count "
                        "ratio on the training texts (one column per class; one for two classes)")
    p.add_argument("--pretrain-epochs", type=int, default=0, metavar="N",
                   help="first train the embedding and recurrent layers as a language model (next word; "
                        "bidirectional: also previous word) on the training texts for N epochs")
    add_training_args(p, **CLASSIFY_DEFAULTS)
    p.set_defaults(func=cmd_train_classify)

    p = sub.add_parser("predict", help="classify texts with a trained classifier",
                       description="Print the likeliest class, its probability and the text.")
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnkit train classify`")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (before any flag)")
    p.add_argument("--file", default=None, help="a file with one text per line")
    add_ensemble_arg(p)
    p.set_defaults(func=cmd_predict)


def add_ensemble_arg(p):
    """--ensemble RUN...: more classify runs whose probabilities are averaged with RUN's."""
    p.add_argument("--ensemble", action="append", default=None, metavar="RUN",
                   help="classify: another run of the same classes (repeat the flag for more); the "
                        "runs' class probabilities are averaged (each run keeps its own vocabulary)")


def evaluate_classify(args, model, meta):
    """Scores of a classify run on --data (for `rnnkit evaluate`)."""
    data = read_examples(args)
    classes = meta["classes"]
    members = load_ensemble(model, meta, getattr(args, "ensemble", None), "evaluate")
    out = scores_of(ensemble_probs(members, data.texts), tasks.relabel(data, classes), classes)
    return {**out, "runs": len(members)} if len(members) > 1 else out

