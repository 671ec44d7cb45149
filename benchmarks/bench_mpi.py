"""Data-parallel scaling: characters per second of a char-LSTM LM with 1 rank and with N ranks.

    OMP_NUM_THREADS=1 python benchmarks/bench_mpi.py                 # 1 rank x 1 thread
    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/bench_mpi.py    # 2 ranks x 1 thread
    python benchmarks/bench_mpi.py --compare                          # both, then the efficiency

The global batch is the same in both runs (each of N ranks takes B/N lanes), so the work per step
is the same and efficiency = (chars/s with N ranks) / (N * chars/s with 1 rank).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def train(args):
    from rnnkit import optim
    from rnnkit.data import stdlib_corpus
    from rnnkit.distributed import DataParallel, mpi_world_size
    from rnnkit.models.many_to_many import ManyToMany
    from rnnkit.train import StreamWindows, fit
    parallel = DataParallel() if mpi_world_size() > 1 else None
    text = stdlib_corpus(max_chars=400_000)
    ids = np.frombuffer(text.encode("utf-8", "replace"), np.uint8).astype(np.int64) % 128
    model = ManyToMany(vocab_size=128, embedding_dim=64, hidden_size=args.hidden, num_layers=2, seed=0)
    opt = optim.Adam(model, lr=2e-3)
    data = StreamWindows(ids, args.batch, args.seq_len)
    fit(model, opt, data, steps=args.warmup, tbptt=True, progress=False, parallel=parallel)
    t0 = time.perf_counter()
    fit(model, opt, data, steps=args.steps, tbptt=True, progress=False, parallel=parallel)
    dt = time.perf_counter() - t0
    rank = 0 if parallel is None else parallel.rank
    if rank == 0:
        n = 1 if parallel is None else parallel.size
        chars = args.steps * args.batch * args.seq_len
        out = {"ranks": n, "chars_per_s": chars / dt, "seconds": dt, "hidden": args.hidden,
               "batch": args.batch, "seq_len": args.seq_len, "params": model.num_parameters()}
        print(json.dumps(out))


def compare(args):
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    base = [sys.executable, os.path.abspath(__file__), "--hidden", str(args.hidden), "--batch",
            str(args.batch), "--seq-len", str(args.seq_len), "--steps", str(args.steps)]
    one = json.loads(subprocess.run(base, env=env, capture_output=True, text=True, check=True).stdout)
    two = json.loads(subprocess.run(["mpiexec", "-n", str(args.ranks)] + base, env=env, capture_output=True,
                                    text=True, check=True).stdout.strip().splitlines()[-1])
    eff = two["chars_per_s"] / (args.ranks * one["chars_per_s"])
    print("| ranks x threads | chars/s | efficiency |\n|---|---|---|")
    print(f"| 1 x 1 | {one['chars_per_s']:,.0f} | 100% |")
    print(f"| {args.ranks} x 1 | {two['chars_per_s']:,.0f} | {100 * eff:.0f}% |")
    print(f"model: 2-layer LSTM {args.hidden}, {one['params']:,} parameters "
          f"({4 * one['params'] / 1e6:.2f} MB of float32 gradients reduced per step)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=256, help="LSTM hidden size")
    p.add_argument("--batch", type=int, default=32, help="global batch (lanes)")
    p.add_argument("--seq-len", type=int, default=64, help="TBPTT window")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--ranks", type=int, default=2, help="ranks for --compare")
    p.add_argument("--compare", action="store_true", help="run 1 rank and N ranks and print the table")
    a = p.parse_args()
    compare(a) if a.compare else train(a)
