"""`rnnkit train lm` (a char- or word-level language model on a text file) and `rnnkit sample RUN`.

The model is a ManyToMany: embedding, RNN/LSTM/GRU stack, a softmax over the vocabulary at every
step, trained by truncated BPTT with the state carried from window to window; the last
--val-split of the text validates. `sample` primes the model with --prompt and draws --length
tokens from softmax(z / T), optionally restricted to the top-k ids or the top-p mass.
"""
from .. import tasks
from ..data import Vocab, read_text
from ..models import ManyToMany, build
from ..train import evaluate
from .common import check_file, load_run, new_model, resume_state, train_model, train_subparsers
from .flags import (add_embedding_dropout, add_training_args, cell_options, check_training_args,
                    embedding_options, fail)

LM_DEFAULTS = dict(hidden=256, seq_len=64, batch=32, lr=2e-3, eval_every=200, minutes=5)


def build_lm(args, vocab):
    """A ManyToMany language model over `vocab` from the command's flags."""
    return ManyToMany(vocab_size=len(vocab), embedding_dim=args.embedding, cell=args.cell,
                      hidden_size=args.hidden, num_layers=args.layers, dropout=args.dropout,
                      dtype=args.dtype, seed=args.seed, **embedding_options(args), **cell_options(args))


def prepare(args, text):
    """(model, vocab, train windows, validation windows), from the flags or the run being resumed."""
    prev = resume_state(args, "lm")
    vocab = Vocab.from_json(prev[1]["vocab"]) if prev else None
    vocab, train, val = tasks.lm_data(text, args.level, args.val_split, args.batch, args.seq_len, vocab,
                                      args.vocab_size)
    model = build(prev[0]) if prev else new_model(build_lm, args, vocab)
    return model, vocab, train, val


def train_lm(args, text=None, quiet_sample=False):
    """Train a language model on --text (or `text`); print a sample; return (model, vocab, FitResult)."""
    if args.bidirectional:
        fail("--bidirectional: a language model reads left to right; drop the flag")
    check_training_args(args)
    text = read_text(check_file("--text", args.text)) if text is None else text
    model, vocab, train, val = prepare(args, text)
    start = vocab.decode([int(train.it.X[0, 0])])          # the first token of the text
    meta = {"vocab": vocab.to_json(), "level": vocab.level, "start": start}
    print(f"language model: {vocab.level}-level, {len(vocab)} symbols, "
          f"{train.it.n:,} training and {0 if val is None else val.it.n:,} validation tokens; "
          f"{model.num_parameters():,} parameters")
    result = train_model(args, model, train, val, "lm", meta, tbptt=True)
    if not quiet_sample:
        print("sample:")
        n = 300 if vocab.level == "char" else 60
        print(tasks.sample_text(model, vocab, start, n, temperature=0.8, seed=args.seed))
    return model, vocab, result


def cmd_train_lm(args):
    """`rnnkit train lm`."""
    train_lm(args)
    return 0


def cmd_sample(args):
    """`rnnkit sample RUN`: continue a prompt with the run's language model."""
    model, meta = load_run(args.run_dir, "lm", "sample")
    vocab = Vocab.from_json(meta["vocab"])
    prompt = meta.get("start", "\n") if args.prompt is None else args.prompt
    if prompt == "":
        fail("--prompt: expected at least one character, got an empty prompt")
    check_known("--prompt", vocab, prompt)
    if args.length < 1:
        fail(f"--length: expected an integer >= 1, got {args.length}")
    print(tasks.sample_text(model, vocab, prompt, args.length, args.temperature, args.top_k, args.top_p,
                            args.seed))
    return 0


def check_known(flag, vocab, text):
    """One clear line naming the characters of text that a char vocabulary (no <unk>) lacks."""
    missing = tasks.unknown_tokens(vocab, text) if vocab.unk is None else []
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        fail(f"{flag}: {len(missing)} character(s) the model has never seen: {shown} "
             f"(it knows {len(vocab)} characters)")


def evaluate_lm(args, model, meta):
    """Loss, perplexity, bits per token and next-token accuracy of an lm run on --data."""
    vocab = Vocab.from_json(meta["vocab"])
    text = read_text(check_file("--data", args.data))
    check_known("--data", vocab, text)
    windows = tasks.stream_windows(vocab.encode(text), 16, 128)
    if windows is None:
        fail(f"--data: {args.data} holds fewer than 2 tokens")
    v = evaluate(model, windows, tbptt=True)
    return {**tasks.lm_scores(v["loss"], vocab.level), "accuracy": v["correct"] / v["count"],
            "count": v["count"]}


def register(sub):
    """Add `train lm` and `sample`."""
    p = train_subparsers(sub).add_parser("lm", help="a character- or word-level language model on a text file",
                                         description=__doc__.splitlines()[0])
    p.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text file to learn from")
    p.add_argument("--level", choices=("char", "word"), default="char", help="model characters or words")
    p.add_argument("--embedding", type=int, default=64, help="embedding size")
    add_embedding_dropout(p)
    p.add_argument("--vocab-size", type=int, default=20000, help="word level: keep the most frequent words")
    add_training_args(p, **LM_DEFAULTS)
    p.set_defaults(func=cmd_train_lm)

    p = sub.add_parser("sample", help="generate text from a trained language model",
                       description="Continue --prompt with text sampled from a language-model run.")
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnkit train lm` or `rnnkit demo`")
    p.add_argument("--prompt", default=None, help="text to start from (default: the training text's first symbol)")
    p.add_argument("--length", type=int, default=500, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (0: always the likeliest)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample only within the top-p probability mass")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=cmd_sample)
