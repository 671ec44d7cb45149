"""The training loop, checkpoints and the progress bar: exact resume, crash safety, NaN handling."""
import io
import json
import os
import signal

import numpy as np
import pytest

import rnnkit
import rnnkit.kernels
from rnnkit import optim
from rnnkit.checkpoint import (BEST, LAST, METRICS, checkpoint_config, load_checkpoint, load_weights,
                               read_metrics, save_checkpoint)
from rnnkit.data.batching import BatchIterator
from rnnkit.errors import FileFormatError, InputError, NonFiniteError, StateDictError
from rnnkit.io.safe import save_arrays
from rnnkit.losses import cross_entropy
from rnnkit.progress import ProgressBar, format_duration
from rnnkit.train import Batches, StreamWindows, evaluate, fit

V = 7


class CharLM(rnnkit.Module):
    """Embedding -> LSTM (dropout between layers) -> Dropout -> Linear; batch {"x": (T, B), "y": (T, B)}."""

    def __init__(self, vocab=V, embed=6, hidden=12, layers=2, dropout=0.3, kernels="numpy", seed=0):
        super().__init__()
        self.kw = dict(vocab=vocab, embed=embed, hidden=hidden, layers=layers, dropout=dropout,
                       kernels=kernels, seed=seed)
        self.embed = self.add_child("embed", rnnkit.Embedding(vocab, embed, seed=seed))
        self.rnn = self.add_child("rnn", rnnkit.LSTM(embed, hidden, layers, dropout=dropout,
                                                     seed=seed + 1, kernels=kernels))
        self.drop = self.add_child("drop", rnnkit.Dropout(dropout, seed=seed + 2))
        self.out = self.add_child("out", rnnkit.Linear(hidden, vocab, seed=seed + 3))

    def config(self):
        return {"type": "CharLM", **self.kw}

    def forward(self, x, state=None):
        e, ce = self.embed.forward(x)
        h, state, cr = self.rnn.forward(e, state)
        d, cd = self.drop.forward(h)
        z, co = self.out.forward(d)
        return z, state, (ce, cr, cd, co)

    def backward(self, dz, cache):
        ce, cr, cd, co = cache
        dh = self.drop.backward(self.out.backward(dz, co), cd)
        de, _ = self.rnn.backward(dh, cr)
        self.embed.backward(de, ce)

    def objective(self, batch, state=None, train=True):
        z, state, cache = self.forward(batch["x"], state)
        loss, dz = cross_entropy(z, batch["y"], reduction="sum")
        n = batch["y"].size
        if train:
            self.backward(dz / n, cache)
        return loss, n, {"correct": int((z.argmax(-1) == batch["y"]).sum())}, state


def stream(n=400, seed=0):
    """A learnable stream: a repeated pattern with a little noise."""
    rng = np.random.default_rng(seed)
    ids = np.tile(np.array([0, 1, 2, 3, 4, 5, 6, 5, 4, 3]), n // 10 + 1)[:n]
    flip = rng.random(n) < 0.05
    ids[flip] = rng.integers(0, V, flip.sum())
    return ids


def shuffled_batches(seed=3):
    """Batches of random windows of the stream, visited in a seeded shuffled order."""
    ids = stream(600, seed=1)
    starts = np.arange(0, 560, 7)                                            # (N,)

    def make_batch(idx):
        x = np.stack([ids[s:s + 8] for s in starts[idx]], axis=1)            # (8, B)
        y = np.stack([ids[s + 1:s + 9] for s in starts[idx]], axis=1)        # (8, B)
        return {"x": x, "y": y}
    return Batches(make_batch, len(starts), 5, shuffle=True, seed=seed)


def make_run(kernels="numpy", data="stream"):
    model = CharLM(kernels=kernels)
    opt = optim.Adam(model, lr=0.02)
    sched = optim.Warmup(opt, 3, after=optim.CosineAnnealing(opt, T_max=50))
    train = StreamWindows(stream(), 4, 6) if data == "stream" else shuffled_batches()
    val = StreamWindows(stream(120, seed=9), 2, 10)
    return model, opt, sched, train, val


def run(run_dir, steps, resume=False, kernels="numpy", data="stream", **kw):
    model, opt, sched, train, val = make_run(kernels, data)
    res = fit(model, opt, train, steps=steps, val_data=val, eval_every=4, log_every=2, clip_norm=1.0,
              schedule=sched, tbptt=True, run_dir=run_dir, checkpoint_every=3, keep_best=False,
              progress=False, resume=resume, **kw)
    return model, opt, res


def assert_same_weights(a, b):
    for (name, p, _), (_, q, _) in zip(a.named_parameters(), b.named_parameters()):
        assert p.dtype == q.dtype and np.array_equal(p, q), name


def strip_times(records):
    return [{k: v for k, v in r.items() if k not in ("elapsed", "tokens_per_s")} for r in records]


KERNELS = ["numpy"] + (["numba"] if rnnkit.kernels.available() else [])


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("data", ["stream", "shuffled"])
def test_resume_is_bitwise_exact(tmp_path, kernels, data):
    n = 14
    straight, opt_s, res_s = run(tmp_path / "a", n, kernels=kernels, data=data)
    run(tmp_path / "b", 7, kernels=kernels, data=data)          # stops at 7: mid-epoch, mid-interval
    assert load_checkpoint(tmp_path / "b" / LAST, CharLM(kernels=kernels))["step"] == 7
    resumed, opt_r, res_r = run(tmp_path / "b", n, resume=True, kernels=kernels, data=data)
    assert res_r.steps == res_s.steps == n
    assert_same_weights(straight, resumed)
    arr_s, meta_s = opt_s.state_dict()
    arr_r, meta_r = opt_r.state_dict()
    assert meta_s == meta_r and all(np.array_equal(arr_s[k], arr_r[k]) for k in arr_s)
    a, b = read_metrics(tmp_path / "a" / METRICS), read_metrics(tmp_path / "b" / METRICS)
    assert [r["step"] for r in b] == [r["step"] for r in a] == [2, 4, 6, 8, 10, 12, 14]
    assert strip_times(a) == strip_times(b)                      # same losses, no duplicated steps
    assert strip_times(res_r.history) == strip_times(res_s.history)
    assert res_s.best_val == res_r.best_val and res_s.best_val is not None


class Crash(BaseException):
    """Stands for the process dying."""


def test_crash_while_writing_checkpoint_keeps_previous(tmp_path, monkeypatch):
    straight, _, _ = run(tmp_path / "a", 10)
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        if str(dst).endswith(LAST):
            calls.append(dst)
            if len(calls) == 2:                  # the step-6 checkpoint: written, not yet renamed
                raise Crash()
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(Crash):
        run(tmp_path / "b", 10)
    monkeypatch.setattr(os, "replace", real_replace)
    (tmp_path / "b" / ".last.ckpt.abc123.tmp").write_bytes(b"half a file")   # what kill -9 leaves
    assert load_checkpoint(tmp_path / "b" / LAST, CharLM())["step"] == 3
    resumed, _, res = run(tmp_path / "b", 10, resume=True)
    assert res.steps == 10
    assert_same_weights(straight, resumed)
    assert [r["step"] for r in read_metrics(tmp_path / "b" / METRICS)] == [2, 4, 6, 8, 10]


class Interrupting(CharLM):
    """Raises KeyboardInterrupt in the middle of the objective of call number `at`."""

    def __init__(self, at, **kw):
        super().__init__(**kw)
        self.at, self.calls = at, 0

    def objective(self, batch, state=None, train=True):
        if train:
            self.calls += 1
            if self.calls == self.at:
                self.drop.rng.random(5)                  # half a step's randomness, to be rolled back
                raise KeyboardInterrupt
        return super().objective(batch, state, train)


@pytest.mark.parametrize("how", ["sigint", "callback", "mid_step"])
def test_ctrl_c_writes_checkpoint_and_resumes_exactly(tmp_path, how):
    straight, _, _ = run(tmp_path / "a", 9)
    model, opt, sched, train, val = make_run()
    if how == "mid_step":
        model = Interrupting(6)
        opt = optim.Adam(model, lr=0.02)
        sched = optim.Warmup(opt, 3, after=optim.CosineAnnealing(opt, T_max=50))

    def on_step(trainer, info):
        if info["step"] == 5 and how == "sigint":
            os.kill(os.getpid(), signal.SIGINT)        # handled: the loop stops after this step
        if info["step"] == 5 and how == "callback":
            raise KeyboardInterrupt
    res = fit(model, opt, train, steps=9, val_data=val, eval_every=4, log_every=2, clip_norm=1.0,
              schedule=sched, tbptt=True, run_dir=tmp_path / "b", checkpoint_every=3, keep_best=False,
              progress=False, on_step=on_step)
    assert res.interrupted and res.stop_reason == "interrupted" and res.steps == 5
    assert load_checkpoint(tmp_path / "b" / LAST, CharLM())["step"] == 5
    resumed, _, res2 = run(tmp_path / "b", 9, resume=True)
    assert not res2.interrupted and res2.steps == 9
    assert_same_weights(straight, resumed)


def test_learns_a_stream_with_tbptt_and_logs(tmp_path):
    model = CharLM(dropout=0.0)
    train, val = StreamWindows(stream(), 4, 8), StreamWindows(stream(200, seed=5), 2, 10)
    before = evaluate(model, val, tbptt=True)["loss"]
    res = fit(model, optim.Adam(model, lr=0.03), train, epochs=6, val_data=val, eval_every=6,
              log_every=4, tbptt=True, run_dir=tmp_path, progress=False)
    assert res.steps == 6 * len(train) and res.stop_reason == "epochs" and res.epoch == 6.0
    assert res.best_val < 0.6 * before
    recs = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert recs == res.history
    assert {"step", "epoch", "loss", "val_loss", "lr", "tokens_per_s", "elapsed"} <= set(recs[-1])
    assert all(r["tokens_per_s"] > 0 and r["elapsed"] >= 0 for r in recs)
    assert [r["step"] for r in recs] == sorted({r["step"] for r in recs})
    assert 0.5 < recs[-1]["val_accuracy"] <= 1 and os.path.exists(tmp_path / BEST)
    assert_same_weights_dict(model, load_weights(tmp_path / BEST))   # keep_best: best weights back


def assert_same_weights_dict(model, weights):
    for name, p, _ in model.named_parameters():
        assert np.array_equal(p, weights[name]), name


class Recorder(CharLM):
    """Records whether each training window started from a carried state."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.carried = []

    def objective(self, batch, state=None, train=True):
        if train:
            self.carried.append(state is not None)
        return super().objective(batch, state, train)


def test_tbptt_carries_state_and_resets_each_epoch():
    model = Recorder(dropout=0.0)
    train = StreamWindows(stream(), 4, 25)                     # 4 windows per epoch
    fit(model, optim.SGD(model, lr=0.1), train, epochs=3, tbptt=True, progress=False)
    assert model.carried == [False, True, True, True] * 3
    model = Recorder(dropout=0.0)
    fit(model, optim.SGD(model, lr=0.1), StreamWindows(stream(), 4, 25), steps=3, progress=False)
    assert model.carried == [False] * 3                        # tbptt=False: never carried


class Scripted(rnnkit.Module):
    """One weight; validation losses follow a script; training can be made non-finite."""

    def __init__(self, val_losses=(), bad_steps=(), bad="loss"):
        super().__init__()
        self.w = self.add_param("w", np.ones(3))
        self.val, self.bad_steps, self.bad, self.n_train = list(val_losses), bad_steps, bad, 0

    def objective(self, batch, state=None, train=True):
        if not train:
            return self.val.pop(0), 1, {}, None
        self.n_train += 1
        loss = float(np.sum(self.w ** 2))
        self.grads["w"] += 2 * self.w
        if self.n_train in self.bad_steps:
            if self.bad == "loss":
                loss = float("nan")
            else:
                self.grads["w"][0] = np.inf
        return loss, 1, {}, None


BATCHES = [{"x": np.zeros(1)}] * 4


def test_early_stopping_best_snapshot_and_plateau_schedule(tmp_path):
    model = Scripted(val_losses=[3.0, 2.0, 2.5, 2.6, 2.7, 2.8])
    opt = optim.SGD(model, lr=0.1)
    sched = optim.ReduceOnPlateau(opt, factor=0.5, patience=0)
    res = fit(model, opt, BATCHES, steps=100, val_data=[{}], eval_every=2, early_stopping=3,
              schedule=sched, run_dir=tmp_path, progress=False)
    assert res.stop_reason == "early_stopping" and res.steps == 10
    assert res.best_val == 2.0 and res.best_step == 4
    assert [r["val_loss"] for r in res.history if "val_loss" in r] == [3.0, 2.0, 2.5, 2.6, 2.7]
    assert opt.lr == 0.1 * 0.5 ** 3                          # one cut per bad evaluation
    assert np.allclose(model.w, 0.8 ** 4)                     # the weights of step 4 are back
    assert_same_weights_dict(model, load_weights(tmp_path / BEST))
    assert load_checkpoint(tmp_path / LAST, Scripted())["step"] == 10
    model = Scripted()                                        # resuming an early-stopped run
    opt = optim.SGD(model, lr=0.1)
    res = fit(model, opt, BATCHES, steps=100, val_data=[{}], eval_every=2, early_stopping=3,
              schedule=optim.ReduceOnPlateau(opt, factor=0.5, patience=0), run_dir=tmp_path,
              resume=True, progress=False)
    assert res.stop_reason == "early_stopping" and res.steps == 10 and res.best_step == 4
    assert np.allclose(model.w, 0.8 ** 4) and res.history[-1]["step"] == 10


@pytest.mark.parametrize("bad", ["loss", "grad"])
def test_nonfinite_skip_counts_and_stop_names_the_step(tmp_path, bad):
    model = Scripted(bad_steps=(3, 4), bad=bad)
    opt = optim.SGD(model, lr=0.1)
    res = fit(model, opt, BATCHES, steps=6, nonfinite="skip", progress=False, run_dir=tmp_path / "a")
    assert res.skipped == 2 and res.steps == 6 and opt.step_count == 4
    assert np.allclose(model.w, 0.8 ** 4) and res.history[-1]["skipped"] == 2
    model = Scripted(bad_steps=(3,), bad=bad)
    with pytest.raises(NonFiniteError, match="step 3"):
        fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=6, nonfinite="stop",
            checkpoint_every=1, run_dir=tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b" / LAST, Scripted())["step"] == 2


def test_nan_weights_never_reach_a_checkpoint(tmp_path):
    model = CharLM()
    opt = optim.Adam(model)
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model, opt, trainer_state={"step": 1})
    before = path.read_bytes()
    model.out.W[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="model/out.W"):
        save_checkpoint(path, model, opt, trainer_state={"step": 2})
    assert path.read_bytes() == before
    model = Scripted()
    model.w[1] = np.inf                                   # weights go bad during training
    with pytest.raises(NonFiniteError, match="step 2"):
        fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=2, run_dir=tmp_path / "r", progress=False)
    assert not os.path.exists(tmp_path / "r" / LAST)


def test_checkpoint_roundtrip_restores_everything(tmp_path):
    model = CharLM()
    opt = optim.Adam(model, lr=0.01)
    sched = optim.StepLR(opt, 2)
    rng = np.random.default_rng(5)
    x = np.zeros((3, 2), np.int64)
    model.zero_grad()
    _, _, _, carry = model.objective({"x": x, "y": x})
    opt.step()
    sched.step()
    rng.random(3)
    save_checkpoint(tmp_path / "c", model, opt, sched, {"step": 1, "carry": carry, "note": "x"}, rng=rng)
    expect_rng, expect_drop = rng.random(4), model.drop.rng.random(4)
    model2 = CharLM(seed=9)
    opt2 = optim.Adam(model2, lr=0.5)
    sched2, rng2 = optim.StepLR(opt2, 2), np.random.default_rng(0)
    state = load_checkpoint(tmp_path / "c", model2, opt2, sched2, rng=rng2)
    assert state["step"] == 1 and state["note"] == "x" and isinstance(state["carry"], tuple)
    assert all(np.array_equal(a, b) for a, b in zip(state["carry"], carry))
    assert_same_weights_dict(model2, model.state_dict())
    assert opt2.lr == opt.lr and opt2.step_count == 1 and sched2.epoch == 1
    assert np.array_equal(rng2.random(4), expect_rng)
    assert np.array_equal(model2.drop.rng.random(4), expect_drop)
    assert checkpoint_config(tmp_path / "c") == model.config()
    with pytest.raises(StateDictError):
        load_checkpoint(tmp_path / "c", CharLM(hidden=5))
    with pytest.raises(StateDictError, match="no schedule"):
        save_checkpoint(tmp_path / "d", model, opt)
        load_checkpoint(tmp_path / "d", model2, opt2, sched2)
    save_arrays(tmp_path / "m", {"w": np.ones(2)}, {"kind": "model"})
    with pytest.raises(FileFormatError, match="not an rnnkit training checkpoint"):
        load_checkpoint(tmp_path / "m", model2)


def test_bad_arguments(tmp_path):
    model = Scripted()
    opt = optim.SGD(model, lr=0.1)
    with pytest.raises(InputError, match="steps/epochs/minutes"):
        fit(model, opt, BATCHES)
    with pytest.raises(InputError, match="nonfinite"):
        fit(model, opt, BATCHES, steps=1, nonfinite="ignore")
    with pytest.raises(InputError, match="resume"):
        fit(model, opt, BATCHES, steps=1, resume=True)
    with pytest.raises(InputError, match="Batches\\(make_batch"):
        fit(model, opt, BatchIterator(4, 2), steps=1)
    with pytest.raises(InputError, match="early_stopping: needs val_data"):
        fit(model, opt, BATCHES, steps=1, early_stopping=2)
    with pytest.raises(InputError, match="schedule: needs val_data"):
        fit(model, opt, BATCHES, steps=1, schedule=optim.ReduceOnPlateau(opt))
    with pytest.raises(InputError, match="clip_norm"):
        fit(model, opt, BATCHES, steps=1, clip_norm=0)
    fit(model, opt, BATCHES, steps=1, run_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="resume=True"):              # never overwrites a run
        fit(model, opt, BATCHES, steps=1, run_dir=tmp_path, progress=False)


def test_minutes_and_callback_stop():
    model = Scripted()
    res = fit(model, optim.SGD(model, lr=0.1), BATCHES, minutes=1e-9, progress=False)
    assert res.stop_reason == "minutes" and res.steps == 0
    res = fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=50, progress=False,
              on_step=lambda trainer, info: info["step"] == 3)
    assert res.stop_reason == "callback" and res.steps == 3


class FakeStream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_tty_and_plain():
    now = [0.0]
    s = FakeStream(tty=True)
    bar = ProgressBar(total=200, stream=s, clock=lambda: now[0])
    bar.update(0, loss=2.0)
    now[0] = 10.0
    bar.update(100, loss=1.23456, tokens_per_s=12345.0)
    now[0] = 10.01
    bar.update(101, loss=1.2)                       # within 0.1 s: not redrawn
    bar.close()
    lines = s.getvalue().split("\r")
    assert len(lines) == 4 and lines[0] == "" and "\n" not in lines[1] + lines[2]
    assert "100/200" in lines[2] and "50%" in lines[2] and "loss 1.2346" in lines[2]
    assert "12,345 tok/s" in lines[2] and "ETA 0:00:10" in lines[2]
    assert "101/200" in lines[3] and lines[3].endswith("\n")     # close() shows the held-back update
    s = FakeStream(tty=False)
    bar = ProgressBar(total=None, stream=s, interval=5, clock=lambda: now[0])
    for i in range(20):
        now[0] = 100 + i
        bar.update(i, loss=1.0)
    bar.close()
    out = s.getvalue()
    assert "\r" not in out and out.count("\n") == 5 and out.startswith("step 0  loss 1.0000\n")
    assert out.splitlines()[-1] == "step 19  loss 1.0000"
    assert format_duration(3725) == "1:02:05" and format_duration(None) == "?"
