"""Crash safety: kill -9 a real `rnnkit train lm` run at 20 seeded moments, resume after each.

Half the moments are random times after the start (import, data preparation, training, evaluation,
the final save); the other half wait for the process to start writing a checkpoint (os.fsync of a
best.ckpt or last.ckpt temp file, slowed down so that the kill lands between the write and the
rename) and kill it there. After every kill, every file in the run folder that should be whole is loadable, and the
next start (`--resume` when last.ckpt exists) goes on from the last complete checkpoint. The run
that is finally let finish must equal, bit for bit, one that was never interrupted.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.checkpoint import read_checkpoint, read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                   reason="needs kill -9 and /proc/self/fd (Linux)")]

STEPS, KILLS = 1000, 20
FLAGS = ["--hidden", "8", "--embedding", "8", "--batch", "4", "--seq-len", "8", "--eval-every", "10",
         "--steps", str(STEPS), "--quiet"]
# Runs the real command line; fsync of a checkpoint temp file announces itself on stderr and waits.
DRIVER = """
import os, sys, time
_fsync = os.fsync
def fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
    if name.endswith(".tmp") and ".ckpt." in name:
        sys.stderr.write("CKPT " + os.path.basename(name) + "\\n"); sys.stderr.flush()
        time.sleep(0.02)
    _fsync(fd)
os.fsync = fsync
from rnnkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env():
    """The environment of a child process that imports this rnnkit."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _start(text, run, resume):
    """Start `rnnkit train lm` in a child process; a thread queues its stderr lines."""
    args = ["train", "lm", "--text", text, "--run", run] + FLAGS + (["--resume"] if resume else [])
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    return proc, lines


def _wait_for_writes(proc, lines, k, prefix, timeout=20.0):
    """Wait until the k-th write of a checkpoint temp file named prefix* starts (or the process ends)."""
    end, seen = time.monotonic() + timeout, 0
    while seen < k and time.monotonic() < end and proc.poll() is None:
        try:
            seen += lines.get(timeout=0.05).startswith("CKPT " + prefix)
        except queue.Empty:
            pass


def _check_run_folder(run):
    """Every whole file loads; metrics.jsonl parses but for a torn last line. Returns last.ckpt's step."""
    names = os.listdir(run) if os.path.isdir(run) else []
    for name in names:
        path = os.path.join(run, name)
        if name.endswith(".ckpt"):
            arrays, meta = read_checkpoint(path)            # complete, checksum verified
            assert all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f")
        elif name == "model.rnnkit":
            rnnkit.load(path)
        elif name == "run.json":
            with open(path, encoding="utf-8") as f:
                assert json.load(f)["task"] == "lm"
        elif name.endswith(".png"):
            with open(path, "rb") as f:
                data = f.read()
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
        elif name == "metrics.jsonl":
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            for line in lines[:-1]:                          # every newline-terminated line is whole
                assert isinstance(json.loads(line)["step"], int)
        else:
            assert name.startswith(".") and name.endswith(".tmp"), f"unexpected file {name}"
    if "last.ckpt" not in names:
        return None
    return read_checkpoint(os.path.join(run, "last.ckpt"))[1]["trainer"]["step"]


def _weights(run):
    return {k: a for k, a in read_checkpoint(os.path.join(run, "last.ckpt"))[0].items() if k.startswith("model/")}


def test_kill9_at_20_moments_then_resume_to_the_end(tmp_path):
    rng = np.random.default_rng(2026)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away"]
    text = str(tmp_path / "text.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write(" ".join(rng.choice(words, size=2500)))
    run, steps_seen = str(tmp_path / "run"), []
    for i in range(KILLS):
        before = _check_run_folder(run)
        proc, lines = _start(text, run, resume=before is not None)
        if i % 4 == 1:                         # during a best.ckpt or last.ckpt write
            _wait_for_writes(proc, lines, int(rng.integers(1, 7)), ".")
        elif i % 4 == 3:                       # during the first or second last.ckpt write
            _wait_for_writes(proc, lines, int(rng.integers(1, 3)), ".last.ckpt.")
        else:
            time.sleep(float(rng.uniform(0.1, 3.0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        after = _check_run_folder(run)
        assert after is None or before is None or after >= before, "a checkpoint went back in time"
        steps_seen.append(after)
        if i == KILLS // 2 and os.path.exists(os.path.join(run, "metrics.jsonl")):
            with open(os.path.join(run, "metrics.jsonl"), "a", encoding="utf-8") as f:
                f.write('{"step": 99999, "loss": 1.')         # a line torn by the kill
    proc, _ = _start(text, run, resume=_check_run_folder(run) is not None)
    assert proc.wait(timeout=120) == 0
    assert _check_run_folder(run) == STEPS
    assert any(s is not None and 0 < s < STEPS for s in steps_seen), f"no kill hit mid-run: {steps_seen}"

    ref = str(tmp_path / "ref")
    proc, _ = _start(text, ref, resume=False)
    assert proc.wait(timeout=120) == 0
    mine, want = _weights(run), _weights(ref)
    assert mine.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(mine[k], want[k], err_msg=f"{k} differs from the uninterrupted run")
    records = read_metrics(os.path.join(run, "metrics.jsonl"))
    assert [r["step"] for r in records] == [r["step"] for r in read_metrics(os.path.join(ref, "metrics.jsonl"))]
    assert [r["step"] for r in records] == list(range(10, STEPS + 1, 10))
    assert rnnkit.load(os.path.join(run, "model.rnnkit")).config() == rnnkit.load(
        os.path.join(ref, "model.rnnkit")).config()
