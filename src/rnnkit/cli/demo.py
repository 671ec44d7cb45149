"""`rnnkit demo`: a character-level LSTM learns to write Python from Python's own standard library.

No download and no data of the user's: the corpus is the standard library's .py files on this
machine (rnnkit.data.stdlib_corpus). The demo prints a sample from the untrained model, trains for
--minutes (or --steps, whichever comes first) with a progress bar, prints a sample from the
trained model, and leaves an lm run folder that `rnnkit sample` and `rnnkit inspect` read.
"""
import argparse
import time

from .. import tasks
from ..data import stdlib_corpus
from .common import blas_threads, run_dir
from .flags import DEFAULTS
from .lm import build_lm, train_lm

CORPUS_CHARS = 3_000_000     # one or two passes at CPU speed in the default budget
PROMPT = "def "
DEMO = dict(DEFAULTS, cell="lstm", hidden=128, layers=1, embedding=32, lr=3e-3, clip=5.0, batch=32,
            seq_len=64, val_split=0.01, eval_every=100, level="char", vocab_size=None, epochs=None,
            text=None, resume=False, quiet=False)


def demo_args(args):
    """The full training flags of the demo run (the lm command's, with the demo's settings)."""
    return argparse.Namespace(**{**DEMO, "minutes": args.minutes, "steps": args.steps,
                                 "seed": args.seed, "run": args.run})


def demo(args):
    """Sample, train, sample: show a char LSTM learning Python."""
    t0 = time.monotonic()
    blas_threads(1)
    a = demo_args(args)
    run_dir(a, "demo")                  # names the folder; fails early if it already holds a run
    text = stdlib_corpus(max_chars=CORPUS_CHARS, seed=args.seed)
    print(f"rnnkit demo: a character-level LSTM ({a.hidden} units) learns to write Python from "
          f"{len(text):,} characters of the standard library's source")
    print(f"budget: {args.minutes:g} minutes or {args.steps:,} steps, whichever comes first")
    vocab = tasks.text_vocab(text)
    before = build_lm(a, vocab)
    print(f"\n--- before training (random weights) ---\n"
          f"{tasks.sample_text(before, vocab, PROMPT, 200, temperature=0.8, seed=args.seed)}\n")
    model, _, result = train_lm(a, text, quiet_sample=True)
    print(f"\n--- after {result.steps} steps ---\n"
          f"{tasks.sample_text(model, vocab, PROMPT, 400, temperature=0.7, seed=args.seed)}\n")
    losses = [r["loss"] for r in result.history if r.get("loss") is not None]
    if len(losses) > 1:
        print(f"training loss {losses[0]:.3f} -> {losses[-1]:.3f} nats/char; "
              f"{time.monotonic() - t0:.0f} s in all")
    print(f"more samples: rnnkit sample {a.run} --prompt \"class \" --temperature 0.7")
    return 0


def register(sub):
    """Add the `demo` command."""
    p = sub.add_parser("demo", help="watch a char-level LSTM learn Python (built-in data, ~2 minutes)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.5, help="training time budget")
    p.add_argument("--steps", type=int, default=5000, help="training step cap")
    p.add_argument("--seed", type=int, default=0, help="random seed (corpus order, weights)")
    p.add_argument("--run", default=None, metavar="DIR", help="run folder (default runs/demo-<time>)")
    p.set_defaults(func=demo)
