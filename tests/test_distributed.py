"""Data-parallel training over MPI: 2 ranks with half the batch each equal 1 rank with the whole batch."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.distributed import ShardedData, split
from rnnkit.train import Batches, StreamWindows

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")


def test_split_is_contiguous_and_complete():
    for n in range(0, 12):
        for size in range(1, 5):
            parts = [split(n, size, r) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


@pytest.mark.parametrize("size", [2, 3])
def test_shards_cover_the_data_exactly_once_per_epoch(size):
    n, bs = 23, 6
    seen = []
    for rank in range(size):
        data = ShardedData(Batches(lambda idx: {"i": idx}, n, bs, seed=5), size, rank)
        for _ in range(len(data)):
            seen.extend(data.next_batch()["i"].tolist())
    assert sorted(seen) == list(range(n))


def test_stream_lanes_are_split_between_ranks():
    ids = np.arange(400)
    whole = StreamWindows(ids, 4, 5).next_batch()
    parts = [ShardedData(StreamWindows(ids, 4, 5), 2, r).next_batch() for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts], axis=1), whole["x"])


mpi = pytest.mark.skipif(shutil.which("mpiexec") is None,
                         reason="mpiexec not installed")


def run(args, n=None, timeout=120, module=False):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    py = [sys.executable] + (["-m", "mpi4py"] if module else []) + [WORKER] + args
    cmd = (["mpiexec", "-n", str(n)] if n else []) + py
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def weights(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@mpi
@pytest.mark.parametrize("kind", ["batches", "stream"])
def test_two_ranks_reach_the_weights_of_one(tmp_path, kind):
    pytest.importorskip("mpi4py")
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    assert run([str(one), kind, "6"]).returncode == 0
    r = run([str(two), kind, "6"], n=2)
    assert r.returncode == 0, r.stderr
    a, b = weights(one), weights(two)
    for k in a:
        if k != "overlapped":
            np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12, err_msg=k)
    if kind == "stream":       # equal token counts: buckets were reduced during the backward pass
        assert int(b["overlapped"]) == 6


@mpi
def test_resume_with_a_different_number_of_ranks(tmp_path):
    pytest.importorskip("mpi4py")
    run_dir = tmp_path / "run"
    assert run([str(tmp_path / "a.npz"), "stream", "3", str(run_dir)], n=2).returncode == 0
    r = run([str(tmp_path / "b.npz"), "stream", "6", str(run_dir), "resume"])
    assert r.returncode == 0, r.stderr
    assert run([str(tmp_path / "c.npz"), "stream", "6"]).returncode == 0
    b, c = weights(tmp_path / "b.npz"), weights(tmp_path / "c.npz")
    for k in c:
        if k != "overlapped":
            np.testing.assert_allclose(b[k], c[k], rtol=1e-9, atol=1e-12, err_msg=k)


@mpi
@pytest.mark.parametrize("how", ["die", "raise"])
def test_a_failing_rank_takes_the_job_down(tmp_path, how):
    pytest.importorskip("mpi4py")
    r = run([str(tmp_path / "x.npz"), how, "0"], n=2, timeout=90, module=True)
    assert r.returncode != 0
