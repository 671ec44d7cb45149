"""The rnnkit command line: `rnnkit <command> ...` (also `python -m rnnkit`)."""
import argparse
import sys
import time

import numpy as np


def demo(args):
    """Train a small character-level LSTM on the standard library's source and print the loss falling."""
    from .. import LSTM, Embedding, Linear, losses, optim
    from ..data import Vocab, stdlib_corpus
    text = stdlib_corpus(max_chars=200_000, seed=args.seed)
    vocab = Vocab(text, level="char", pad=None, unk=None, bos=None, eos=None)
    ids = vocab.encode(text)
    V, E, H, T, B = len(vocab), 32, 128, 32, 32
    emb, lstm, out = Embedding(V, E, seed=args.seed), LSTM(E, H, seed=args.seed), Linear(H, V, seed=args.seed)
    params = [(f"{n}.{k}", p, g) for n, m in (("emb", emb), ("lstm", lstm), ("out", out))
              for k, p, g in m.named_parameters()]
    opt = optim.Adam(params, lr=3e-3)
    rng = np.random.default_rng(args.seed)
    print(f"rnnkit demo: char LSTM (V={V}, H={H}) on {len(ids):,} characters of Python's standard library")
    t0 = time.time()
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(ids) - T - 1, size=B)
        x = np.stack([ids[s:s + T] for s in starts], axis=1)          # (T, B)
        y = np.stack([ids[s + 1:s + T + 1] for s in starts], axis=1)  # (T, B)
        opt.zero_grad()
        e, ce = emb.forward(x)
        h, _, cl = lstm.forward(e)
        z, co = out.forward(h)
        loss, dz = losses.cross_entropy(z, y)
        dh = out.backward(dz, co)
        de, _ = lstm.backward(dh, cl)
        emb.backward(de, ce)
        optim.clip_grad_norm(params, 5.0)
        opt.step()
        if step == 1 or step % 25 == 0:
            print(f"step {step:4d}  loss {loss:.3f} nats/char  ({time.time() - t0:.1f} s)", flush=True)
    return 0


def register(sub):
    """Add the `demo` command."""
    p = sub.add_parser("demo", help="train a small char-level LSTM on built-in data")
    p.add_argument("--steps", type=int, default=200, help="training steps")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=demo)
