"""`rnnkit train tag`: a sequence tagger (one tag per token: parts of speech, names, chunks).

Data: one token per line, "token TAG" or "token<TAB>TAG" (in CoNLL files the first column is the
token and the last the tag), a blank line between sentences. The model is a ManyToMany:
embedding, a (by default bidirectional) RNN/LSTM/GRU stack, a softmax over the tags at every
token; padding steps do not count. Reported: token accuracy.
"""
from .. import tasks
from ..data import Vocab
from ..models import ManyToMany, build
from ..train import evaluate
from .common import check_file, new_model, resume_state, train_model, train_subparsers
from .flags import (add_embedding_dropout, add_training_args, cell_options, check_training_args,
                    embedding_options)

TAG_DEFAULTS = dict(hidden=128, bidirectional=True, batch=32, lr=2e-3, eval_every=None, epochs=10)


def build_tagger(args, vocab_size, n_tags):
    """A ManyToMany tagger from the command's flags."""
    return ManyToMany(vocab_size=vocab_size, output_size=n_tags, embedding_dim=args.embedding,
                      cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                      bidirectional=args.bidirectional, dropout=args.dropout, dtype=args.dtype,
                      seed=args.seed, **embedding_options(args), **cell_options(args))


def split(args, sentences, tags):
    """(train sentences, train tags, val sentences, val tags) by --val-data or a seeded --val-split."""
    if args.val_data:
        vs, vt = tasks.read_tagged(check_file("--val-data", args.val_data))
        return sentences, tags, vs, vt
    tr, va = tasks.split_indices(len(sentences), args.val_split, args.seed)
    return ([sentences[i] for i in tr], [tags[i] for i in tr], [sentences[i] for i in va], [tags[i] for i in va])


def tag_batches(vocab, sentences, tags, names, batch, seed=0, shuffle=True):
    """Batches {"x", "y", "lengths"} of tagged sentences."""
    xs, ys = tasks.tag_sequences(vocab, sentences, tags, names)
    return tasks.sequence_batches(xs, ys, batch, vocab.pad_id, seed, shuffle)


def cmd_train_tag(args):
    """`rnnkit train tag`."""
    check_training_args(args)
    sentences, tags = tasks.read_tagged(check_file("--data", args.data))
    prev = resume_state(args, "tag")
    s_tr, t_tr, s_va, t_va = split(args, sentences, tags)
    names = prev[1]["tags"] if prev else sorted({t for ts in t_tr + t_va for t in ts})
    vocab = Vocab.from_json(prev[1]["vocab"]) if prev else tasks.tag_vocab(s_tr, args.vocab_size)
    train = tag_batches(vocab, s_tr, t_tr, names, args.batch, args.seed)
    val = tag_batches(vocab, s_va, t_va, names, args.batch, shuffle=False) if s_va else None
    model = build(prev[0]) if prev else new_model(build_tagger, args, len(vocab), len(names))
    print(f"tagger: {len(names)} tags {names[:10]}, {len(s_tr):,} training and {len(s_va):,} "
          f"validation sentences, {len(vocab):,} words; {model.num_parameters():,} parameters")
    train_model(args, model, train, val, "tag", {"vocab": vocab.to_json(), "tags": list(names)})
    if val is not None:
        s = token_scores(model, val)
        print(f"validation token accuracy {s['accuracy']:.4f} on {s['count']:,} tokens")
    return 0


def token_scores(model, batches):
    """{"loss", "accuracy", "count"} over every real token of the batches."""
    v = evaluate(model, batches)
    return {"loss": v["loss"], "accuracy": v["correct"] / v["count"], "count": v["count"]}


def evaluate_tag(args, model, meta):
    """Token accuracy of a tag run on --data (for `rnnkit evaluate`)."""
    sentences, tags = tasks.read_tagged(check_file("--data", args.data))
    vocab = Vocab.from_json(meta["vocab"])
    batches = tag_batches(vocab, sentences, tags, meta["tags"], 64, shuffle=False)
    s = token_scores(model, batches)
    unk = sum(t not in vocab.stoi for ts in sentences for t in ts)
    s["unknown_token_fraction"] = round(unk / max(s["count"], 1), 4)
    return s


def register(sub):
    """Add `train tag`."""
    p = train_subparsers(sub).add_parser("tag", help="a sequence tagger on a token-per-line file",
                                         description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, metavar="FILE",
                   help="token-per-line file: 'token TAG', blank line between sentences")
    p.add_argument("--val-data", default=None, metavar="FILE", help="validation file (default: --val-split of --data)")
    p.add_argument("--embedding", type=int, default=64, help="word embedding size")
    add_embedding_dropout(p)
    p.add_argument("--vocab-size", type=int, default=50000, help="keep the most frequent tokens")
    add_training_args(p, **TAG_DEFAULTS)
    p.set_defaults(func=cmd_train_tag)
