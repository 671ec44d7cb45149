"""The training loop: forward, loss, backward, clip, step; evaluate, keep the best, stop early, checkpoint.

One step, for the next batch of `train_data` (see the model protocol: model.objective):

    model.zero_grad()
    loss_sum, count, metrics, state = model.objective(batch, carry if tbptt else None, train=True)
    ‖g‖ = clip_grad_norm(model, clip_norm)   (or just the norm);  clip_grad_value(model, clip_value)
    loss_sum or ‖g‖ not finite:  nonfinite="skip" -> no update (counted in `skipped`, carry reset);
                                 nonfinite="stop" -> NonFiniteError naming the step
    optimizer.step();  schedule.step()                         (per step, except as below)
    carry = copy of state                                      (tbptt: next window's initial state)

Truncated BPTT: the carried state enters the next window's forward as plain arrays, so the
window's backward stops at its first step; it is reset to None when an epoch starts.
Schedules: every schedule steps once per optimizer step, except ReduceOnPlateau (or a Warmup whose
`after` is one), which steps once per evaluation with the validation loss.
Every `eval_every` steps: evaluate(model, val_data) in eval mode (no backward); a new best
validation loss (monitor="loss", the lowest) or accuracy (monitor="accuracy", the highest: correct /
count, for objectives that count correct predictions) keeps a weight snapshot and writes
run_dir/best.ckpt; `early_stopping` = k stops after k evaluations in a row without a new best.
With keep_best, the model holds the best weights when fit returns (last.ckpt keeps the newest
state, for resuming).

Data (rnnkit.batches): train_data is a Batches (make_batch over shuffled index minibatches), a
StreamWindows (a token stream cut into TBPTT windows), a list of batch dicts, or any object with
next_batch(), __len__(), epoch, index, state(), set_state() and eval_batches(). A step counts one
batch, skipped or not; `epochs` = e means e * len(train_data) steps. val_data: any of these, or an
iterable of batches, iterated whole at each evaluation.

Run folder (run_dir): last.ckpt every `checkpoint_every` steps and at the end, best.ckpt, and
metrics.jsonl with one JSON line per `log_every` steps or evaluation: step, epoch, loss (mean over
the interval), lr, tokens_per_s, elapsed, grad_norm, skipped, and val_loss / val_<metric> after an
evaluation. resume=True restores last.ckpt (if any) and drops metrics lines past its step, so the
run continues exactly as if it had never stopped. Ctrl-C stops after the current step, writes
last.ckpt and returns with interrupted=True. Weights holding NaN/Inf are never saved: the save
raises NonFiniteError naming the step, and the previous checkpoint stays.

Also: on_step(trainer, info) runs after every step (info: step, loss, count, metrics, grad_norm,
skipped, lr) and returns True to stop; `meta` (JSON, e.g. the vocabulary) is stored in every
checkpoint's trainer state; `seed` seeds trainer.rng, the loop's own Generator, saved with the
module Generators (dropout masks) so that one seed and one checkpoint reproduce a run.
"""
import dataclasses
import math
import os
import signal
import time

import numpy as np

from . import optim
from ._checks import check_choice, check_int, check_real
from .batches import Batches, StreamWindows, as_batches, detach_state, evaluate
from .checkpoint import (BEST, LAST, METRICS, MetricsLog, load_checkpoint, model_weights, module_rngs,
                         read_checkpoint, rng_state, save_checkpoint)
from .errors import InputError, NonFiniteError
from .progress import ProgressBar

MONITORS = ("loss", "accuracy")      # what picks the best weights: the lowest loss, the highest accuracy

# the batch sources live in rnnkit.batches; these names are also rnnkit.train's
__all__ = ["Batches", "StreamWindows", "as_batches", "evaluate", "FitResult", "Trainer", "fit"]


def _remove_stale_temp_files(run_dir):
    """Delete the ".<name>.<random>.tmp" files that a writer killed mid-write leaves (one writer per run)."""
    for name in os.listdir(run_dir):
        if name.startswith(".") and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(run_dir, name))
            except OSError:
                pass


# -- the loop -------------------------------------------------------------------------------------
@dataclasses.dataclass
class FitResult:
    """What fit() returns."""
    steps: int                   # steps done in total (resumed runs count from the start)
    epoch: float                 # epochs done (fractional)
    best_val: float | None       # best validation loss (accuracy: monitor="accuracy"); None: no val_data
    best_step: int | None        # the step it was reached at
    history: list                # the metrics records (as in metrics.jsonl)
    interrupted: bool            # Ctrl-C (KeyboardInterrupt) stopped the run
    stop_reason: str             # "steps", "epochs", "minutes", "early_stopping", "callback", "interrupted"
    skipped: int                 # steps skipped for a non-finite loss or gradient
    last_checkpoint: str | None  # run_dir/last.ckpt when written
    best_checkpoint: str | None  # run_dir/best.ckpt when written


class _StopFlag:
    """SIGINT sets `requested` (the loop stops after the current step); a second one raises."""

    def __enter__(self):
        self.requested, self.old = False, None
        try:
            self.old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:          # not the main thread: KeyboardInterrupt as usual
            pass
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def _per_evaluation(schedule):
    """True for schedules stepped per evaluation with the validation loss."""
    s = schedule
    while isinstance(s, optim.Warmup) and s.after is not None:
        s = s.after
    return isinstance(s, optim.ReduceOnPlateau)


def _optional(check, name, value, **bounds):
    """None, or value checked by check(name, value, **bounds)."""
    return None if value is None else check(name, value, **bounds)


def _step_limit(steps, epochs, n_batches):
    """The step count to stop at (or None) and the stop reason it gives: "steps" or "epochs"."""
    steps = _optional(check_int, "steps", steps, low=0)
    epochs = _optional(check_int, "epochs", epochs, low=1)
    if epochs is not None and (steps is None or epochs * n_batches < steps):
        return epochs * n_batches, "epochs"
    return steps, "steps"


class Trainer:
    """The state of one fit() call; run() does the work. Arguments as fit()."""

    def __init__(self, model, optimizer, train_data, *, steps=None, epochs=None, minutes=None,
                 val_data=None, eval_every=500, log_every=50, clip_norm=None, clip_value=None,
                 schedule=None, tbptt=False, run_dir=None, checkpoint_every=500, keep_best=True,
                 early_stopping=None, seed=0, progress=True, nonfinite="skip", resume=False,
                 on_step=None, meta=None, parallel=None, monitor="loss"):
        self._check_objects(model, optimizer, schedule, val_data, early_stopping)
        self.model, self.optimizer, self.schedule, self.val_data = model, optimizer, schedule, val_data
        self.data = as_batches(train_data)
        self.parallel = parallel
        if parallel is not None:
            from .distributed import ShardedData
            self.data = ShardedData(self.data, parallel.size, parallel.rank)
            parallel.attach(model)
        if steps is None and epochs is None and minutes is None:
            raise InputError("steps/epochs/minutes: expected at least one of them, got none")
        self.max_steps, self.limit_reason = _step_limit(steps, epochs, len(self.data))
        self.minutes = _optional(check_real, "minutes", minutes, low=0, low_open=True)
        self.eval_every = check_int("eval_every", eval_every, low=1)
        self.log_every = check_int("log_every", log_every, low=1)
        self.checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=1)
        self.clip_norm = _optional(check_real, "clip_norm", clip_norm, low=0, low_open=True)
        self.clip_value = _optional(check_real, "clip_value", clip_value, low=0, low_open=True)
        self.patience = _optional(check_int, "early_stopping", early_stopping, low=1)
        self.nonfinite = check_choice("nonfinite", nonfinite, ("skip", "stop"))
        self.monitor = check_choice("monitor", monitor, MONITORS)
        self.rng = np.random.default_rng(check_int("seed", seed, low=0))   # the loop's own Generator
        if resume and run_dir is None:
            raise InputError("resume: expected a run_dir to resume from, got run_dir=None")
        if on_step is not None and not callable(on_step):
            raise InputError(f"on_step: expected a function (trainer, info) -> stop?, got {on_step!r:.60}")
        if meta is not None and not isinstance(meta, dict):
            raise InputError(f"meta: expected a JSON-able dict (e.g. the vocabulary), "
                             f"got {type(meta).__name__}")
        self.tbptt, self.keep_best, self.resume = bool(tbptt), bool(keep_best), bool(resume)
        self.run_dir = None if run_dir is None else os.fspath(run_dir)
        self.progress, self.on_step, self.meta = progress, on_step, meta
        self.step, self.skipped, self.carry, self.elapsed0, self.bad_evals = 0, 0, None, 0.0, 0
        self.best_val = self.best_step = self.best_weights = self.log = self.bar = None
        self.saved_step = self.last_ckpt = self.best_ckpt = None
        self.history, self.updating, self.last_tps = [], False, None
        self._reset_interval()

    @staticmethod
    def _check_objects(model, optimizer, schedule, val_data, early_stopping):
        """The model, optimizer and schedule fit together; evaluation-driven options have val_data."""
        if not hasattr(model, "objective") or not hasattr(model, "named_parameters"):
            raise InputError(f"model: expected an rnnkit Module with objective(), got {type(model).__name__}")
        if not isinstance(optimizer, optim.Optimizer):
            raise InputError(f"optimizer: expected an rnnkit Optimizer, got {type(optimizer).__name__}")
        if schedule is not None and not (isinstance(schedule, optim.Schedule)
                                         and schedule.optimizer is optimizer):
            raise InputError(f"schedule: expected an rnnkit Schedule on this optimizer, got {schedule!r:.60}")
        if val_data is None and (early_stopping is not None or _per_evaluation(schedule)):
            what = "early_stopping" if early_stopping is not None else "schedule"
            raise InputError(f"{what}: needs val_data to evaluate on, got val_data=None")

    # -- setup and state --------------------------------------------------------------------------
    def _path(self, name):
        return os.path.join(self.run_dir, name)

    @property
    def writes(self):
        """Whether this process writes files: always, except on ranks other than 0."""
        return self.parallel is None or self.parallel.is_root

    def _open_run_dir(self):
        """Create the run folder; on resume load last.ckpt and the best weights; open metrics.jsonl."""
        if self.writes:
            os.makedirs(self.run_dir, exist_ok=True)
            _remove_stale_temp_files(self.run_dir)
        last = self._path(LAST)
        exists = os.path.exists(last) if self.parallel is None else self.parallel.first(
            os.path.exists(last) if self.parallel.is_root else None)
        if exists and not self.resume:
            raise InputError(f"run_dir: {self.run_dir!r} already holds {LAST}; pass resume=True to "
                             f"continue that run, or choose another folder")
        if self.resume and os.path.exists(last):
            state = load_checkpoint(last, self.model, self.optimizer, self.schedule, rng=self.rng)
            self._load_state(state)
            self.saved_step, self.last_ckpt = self.step, last
            self._load_best()
        if self.writes:
            self.log = MetricsLog(self._path(METRICS), resume_step=self.step)
            self.history = list(self.log.records)

    def _load_best(self):
        """The best weights from best.ckpt, if it was written at the best step last.ckpt knows of."""
        path = self._path(BEST)
        if self.keep_best and self.best_step is not None and os.path.exists(path):
            arrays, meta = read_checkpoint(path)
            if meta["trainer"].get("step") == self.best_step:   # not from after last.ckpt
                self.best_weights = model_weights(arrays)
                self.best_ckpt = path

    def trainer_state(self):
        """The loop's counters as a JSON-able dict (plus the carried state) for a checkpoint."""
        return {"step": self.step, "epoch": self.epoch(), "data": self.data.state(),
                "best_val": self.best_val, "best_step": self.best_step, "bad_evals": self.bad_evals,
                "skipped": self.skipped, "elapsed": self.elapsed(), "interval": dict(self.interval),
                "meta": self.meta, "monitor": self.monitor,
                "carry": self.carry if self.parallel is None else self.parallel.gather_carry(self.carry)}

    def _load_state(self, s):
        if s.get("monitor", "loss") != self.monitor:        # best_val means the monitored value
            raise InputError(f"monitor: the run being resumed kept its best by {s.get('monitor', 'loss')}, "
                             f"got monitor={self.monitor!r}; resume with the same monitor")
        self.data.set_state(s["data"])
        self.step, self.skipped, self.carry = s["step"], s["skipped"], s["carry"]
        if self.parallel is not None:
            self.carry = self.parallel.split_carry(self.carry)
        self.elapsed0 = s["elapsed"]
        self.best_val, self.best_step, self.bad_evals = s["best_val"], s["best_step"], s["bad_evals"]
        self.interval = dict(s["interval"])

    def _snapshot(self):
        """What a step changes before the update: data position, RNG states, the carried state."""
        rngs = {k: rng_state(g) for k, g in module_rngs(self.model).items()}
        return self.data.state(), rngs, rng_state(self.rng), self.carry

    def _rollback(self, snap):
        data, rngs, loop, self.carry = snap
        self.data.set_state(data)
        for k, g in module_rngs(self.model).items():
            g.bit_generator.state = rngs[k]
        self.rng.bit_generator.state = loop

    def epoch(self):
        """Epochs done, fractional."""
        return self.data.epoch + self.data.index / len(self.data)

    def elapsed(self):
        """Training seconds, over all resumed runs."""
        return self.elapsed0 + time.monotonic() - self.t_start

    def _reset_interval(self):
        self.interval = {"loss_sum": 0.0, "count": 0, "steps": 0, "grad_norm": None}
        self.t_interval = time.monotonic()

    def save(self, path):
        """Write a checkpoint of the current state; NaN weights raise NonFiniteError, nothing written."""
        state = self.trainer_state()          # collective with `parallel`: every rank takes part
        if not self.writes:
            return path
        try:
            save_checkpoint(path, self.model, self.optimizer, self.schedule, state, rng=self.rng)
        except NonFiniteError as e:
            raise NonFiniteError(f"step {self.step}: not saving {path}: {e}; the previous checkpoint "
                                 f"is kept") from None
        return path

    # -- one step ---------------------------------------------------------------------------------
    def _forward_backward(self):
        """Next batch, objective with backward, clipping: (loss_sum, count, metrics, state, grad norm)."""
        if self.data.index in (0, len(self.data)):      # the next batch starts an epoch
            self.carry = None
        batch = self.data.next_batch()
        if not isinstance(batch, dict):
            raise InputError(f"train_data: expected batches as dicts of arrays, "
                             f"got {type(batch).__name__}")
        self.model.zero_grad()
        loss_sum, count, metrics, state = self.model.objective(
            batch, self.carry if self.tbptt else None, train=True)
        if self.parallel is not None:       # the whole batch's mean gradient on every rank
            loss_sum, count, metrics = self.parallel.reduce(loss_sum, count, metrics)
        if self.clip_norm is not None:
            norm = optim.clip_grad_norm(self.model, self.clip_norm)
        else:   # the same global norm clip_grad_norm computes
            grads = (g for _, _, g in self.model.named_parameters())
            norm = math.hypot(*(float(np.linalg.norm(g.ravel())) for g in grads))
        if self.clip_value is not None and np.isfinite(norm):
            optim.clip_grad_value(self.model, self.clip_value)
        return float(loss_sum), int(count), metrics, state, norm

    def train_step(self):
        """One step; a KeyboardInterrupt before the update rolls the step back entirely."""
        snap = self._snapshot()
        try:
            loss_sum, count, metrics, state, norm = self._forward_backward()
        except KeyboardInterrupt:
            self._rollback(snap)
            raise
        finite = np.isfinite(loss_sum) and np.isfinite(norm)
        if not finite and self.nonfinite == "stop":
            self._rollback(snap)
            what = "gradient norm" if np.isfinite(loss_sum) else "loss"
            raise NonFiniteError(f"step {self.step + 1}: non-finite {what} (loss_sum={loss_sum}, "
                                 f"grad norm={norm}); no update was made")
        if finite:
            self._update(state, loss_sum, count, norm)
        else:
            self.skipped, self.carry = self.skipped + 1, None
        self.step += 1
        self.interval["steps"] += 1
        self.updating = False
        return {"step": self.step, "loss": loss_sum / max(count, 1), "count": count,
                "metrics": metrics, "grad_norm": norm, "skipped": not finite, "lr": self.optimizer.lr}

    def _update(self, state, loss_sum, count, norm):
        """Optimizer (and per-step schedule) step; carry the state on; add to the log interval."""
        self.updating = True        # params change in place from here: no rollback possible
        self.optimizer.step()
        if self.schedule is not None and not _per_evaluation(self.schedule):
            self.schedule.step()
        self.carry = detach_state(state) if self.tbptt else None
        self.interval["loss_sum"] += loss_sum
        self.interval["count"] += count
        self.interval["grad_norm"] = norm

    # -- evaluation, logging, checkpoints ---------------------------------------------------------
    def evaluate_now(self):
        """Evaluate on val_data; track the best; step a plateau schedule; return the val record."""
        v = evaluate(self.model, self.val_data, self.tbptt, self.parallel)
        rec = {"val_loss": v["loss"]}
        rec.update({f"val_{k}": x for k, x in v.items() if k != "loss"})
        if "correct" in v:
            rec["val_accuracy"] = v["correct"] / v["count"]
        value = self._monitored(rec)
        if self._improves(value):
            self.best_val, self.best_step, self.bad_evals = value, self.step, 0
            if self.keep_best:
                self.best_weights = self.model.state_dict()
                if self.run_dir is not None:   # (a no-op on ranks other than 0)
                    self.best_ckpt = self.save(self._path(BEST))
        else:
            self.bad_evals += 1
        if self.schedule is not None and _per_evaluation(self.schedule):
            self.schedule.step(v["loss"])
        return rec

    def _improves(self, value):
        """Whether `value` beats best_val: lower for the loss, higher for the accuracy."""
        if self.best_val is None:
            return True
        return value < self.best_val if self.monitor == "loss" else value > self.best_val

    def _monitored(self, rec):
        """The value `monitor` names in an evaluation record."""
        key = "val_" + self.monitor
        if key not in rec:
            raise InputError(f"monitor: expected a value the evaluation reports "
                             f"({', '.join(k[4:] for k in rec if k != 'val_count')}), got {self.monitor!r}: the model's "
                             f"objective counts no correct predictions")
        return rec[key]

    def tokens_per_s(self):
        """Items per second over the open log interval (the last interval's right after a log line)."""
        if self.interval["steps"]:
            self.last_tps = self.interval["count"] / max(time.monotonic() - self.t_interval, 1e-9)
        return self.last_tps

    def record(self, extra=None):
        """Log the interval (mean loss, throughput) plus `extra` to history and metrics.jsonl."""
        iv = self.interval
        rec = {"step": self.step, "epoch": self.epoch(),
               "loss": iv["loss_sum"] / iv["count"] if iv["count"] else None,
               "lr": self.optimizer.lr, "tokens_per_s": self.tokens_per_s(), "elapsed": self.elapsed(),
               "grad_norm": iv["grad_norm"], "skipped": self.skipped, **(extra or {})}
        if self.log is not None:
            self.log.write(rec)
            rec = self.log.records[-1]
        self.history.append(rec)
        self._reset_interval()

    def after_step(self, info):
        """Evaluate, log and checkpoint as scheduled; call on_step; return True to stop."""
        extra = None
        if self.val_data is not None and self.step % self.eval_every == 0:
            extra = self.evaluate_now()
        if extra is not None or self.step % self.log_every == 0:
            self.record(extra)
        if self.run_dir is not None and self.step % self.checkpoint_every == 0:
            self.last_ckpt, self.saved_step = self.save(self._path(LAST)), self.step
        if self.bar is not None:
            self.bar.update(self.step, info["loss"], self.tokens_per_s())
        return bool(self.on_step(self, info)) if self.on_step is not None else False

    def stop_reason(self, flag):
        """Why the loop must stop before the next step, or None; with `parallel`, the ranks agree."""
        reason = self._local_stop_reason(flag)
        return reason if self.parallel is None else self.parallel.first(reason)

    def _local_stop_reason(self, flag):
        if flag.requested:
            return "interrupted"
        if self.max_steps is not None and self.step >= self.max_steps:
            return self.limit_reason
        if self.patience is not None and self.bad_evals >= self.patience:
            return "early_stopping"
        if self.minutes is not None and time.monotonic() - self.t_start >= 60 * self.minutes:
            return "minutes"
        return None

    def run(self):
        """Train until a stop condition; write the final checkpoint; return a FitResult."""
        self.t_start = time.monotonic()
        if self.run_dir is not None:
            self._open_run_dir()
        self.bar = self.progress if hasattr(self.progress, "update") else (
            ProgressBar(self.max_steps) if self.progress and self.writes else None)
        self.t_interval = time.monotonic()      # the interval's counts may come from a checkpoint
        self.model.train()
        try:
            with _StopFlag() as flag:
                while (reason := self.stop_reason(flag)) is None:
                    if self.after_step(self.train_step()):
                        reason = "callback"
                        break
        except KeyboardInterrupt:
            reason = "interrupted"
        except BaseException:
            self.close()
            raise
        return self.finish(reason)

    def close(self):
        """Close the progress bar and metrics.jsonl."""
        if self.bar is not None and hasattr(self.bar, "close"):
            self.bar.close()
        if self.log is not None:
            self.log.close()

    def finish(self, reason):
        """Final log line and checkpoint, best weights back in the model, files closed.

        The checkpoint holds the open log interval; the final "partial" line that reports it is
        dropped on resume, so a resumed metrics.jsonl equals that of a run that never stopped.
        After an interrupt in the middle of an in-place update (a second Ctrl-C) the state is torn:
        no checkpoint is written and last.ckpt keeps the previous complete state.
        """
        try:
            if self.run_dir is not None and self.saved_step != self.step and not self.updating:
                self.last_ckpt, self.saved_step = self.save(self._path(LAST)), self.step
            if self.interval["steps"] and not self.updating:
                self.record({"partial": True})    # dropped on resume: its interval goes on
        finally:
            self.close()
        if self.keep_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        return FitResult(self.step, self.epoch(), self.best_val, self.best_step, self.history,
                         reason == "interrupted", reason, self.skipped, self.last_ckpt, self.best_ckpt)


def fit(model, optimizer, train_data, *, steps=None, epochs=None, minutes=None, val_data=None,
        eval_every=500, log_every=50, clip_norm=None, clip_value=None, schedule=None, tbptt=False,
        run_dir=None, checkpoint_every=500, keep_best=True, early_stopping=None, seed=0,
        progress=True, nonfinite="skip", resume=False, on_step=None, meta=None, parallel=None,
        monitor="loss"):
    """Train `model` with `optimizer` on `train_data` and return a FitResult (see the module docstring)."""
    options = dict(locals())
    for k in ("model", "optimizer", "train_data"):
        del options[k]
    return Trainer(model, optimizer, train_data, **options).run()
