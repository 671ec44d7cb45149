"""Run by tests/test_distributed.py under `mpiexec -n N` (or alone): train a few steps, save the weights.

usage: python mpi_worker.py OUT.npz KIND STEPS [RUN_DIR [resume]]   KIND: batches | stream
"""
import sys

import numpy as np

from rnnkit import optim
from rnnkit.data import pad_sequences
from rnnkit.distributed import DataParallel, mpi_world_size
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.train import Batches, StreamWindows, fit


def main(out, kind, steps, run_dir=None, resume=False):
    parallel = DataParallel() if mpi_world_size() > 1 else None
    if kind in ("die", "raise"):   # rank 1 fails in the middle of training: the job must end, not hang
        return die(parallel, kind)
    rng = np.random.default_rng(0)
    model = ManyToMany(vocab_size=11, embedding_dim=6, hidden_size=8, num_layers=2, cell="lstm",
                       dtype="float64", seed=3)
    opt = optim.Adam(model, lr=0.01)
    if kind == "batches":      # sequences of different lengths: ranks hold different token counts
        seqs = [rng.integers(0, 11, size=rng.integers(3, 9)) for _ in range(40)]

        def make_batch(idx):
            x, lengths = pad_sequences([seqs[i][:-1] for i in idx])
            y, _ = pad_sequences([seqs[i][1:] for i in idx])
            return {"x": x, "y": y, "lengths": lengths}
        data, tbptt = Batches(make_batch, len(seqs), 8, seed=1), False
    else:                      # TBPTT windows: equal counts, carried state per rank
        data, tbptt = StreamWindows(rng.integers(0, 11, size=2000), 4, 10), True
    fit(model, opt, data, steps=steps, tbptt=tbptt, progress=False, run_dir=run_dir, resume=resume,
        checkpoint_every=3, clip_norm=1.0, parallel=parallel)
    if parallel is None or parallel.rank == 0:
        overlapped = parallel.overlapped_steps if parallel is not None else 0
        np.savez(out, overlapped=overlapped, **model.state_dict())


def die(parallel, how):
    """Rank 1 is killed (SIGKILL) or raises at step 2; the others must not wait for it forever."""
    import os

    def on_step(trainer, info):
        if parallel.rank == 1 and info["step"] == 2:
            if how == "die":
                os.kill(os.getpid(), 9)
            raise RuntimeError("rank 1 fails on purpose")
    model = ManyToMany(vocab_size=5, embedding_dim=3, hidden_size=4, seed=0)
    fit(model, optim.SGD(model, lr=0.1), StreamWindows(np.arange(500) % 5, 4, 5), steps=10**6,
        tbptt=True, progress=False, parallel=parallel, on_step=on_step)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), a[3] if len(a) > 3 else None, len(a) > 4)
