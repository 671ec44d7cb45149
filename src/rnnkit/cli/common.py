"""What every training command shares: its flags, the optimizer, the budget, the run folder.

A run folder (--run DIR, default runs/<task>-<YYYYmmdd-HHMMSS>) holds

    run.json        {"task": ..., "args": the command's flags, "rnnkit": version}
    last.ckpt       the newest training state (weights, optimizer, data position): --resume
    best.ckpt       the state at the best validation loss
    metrics.jsonl   one JSON line per log interval or evaluation (rnnkit.train.fit)
    model.rnnkit    the trained model (best weights) + metadata {"task": ..., vocabulary, ...}
    loss.png        training and validation loss against the step
    diagnostics.jsonl  with --diagnostics N: per-step gradient norms, gate saturation, hidden-state
                    traces every N steps (rnnkit.diagnostics; pictures: rnnkit inspect RUN --plots)

The budget is whichever of --epochs, --minutes, --steps the user gave (all of them: the first
reached stops); when none is given, the command's own default budget applies. Ctrl-C stops after
the current step and leaves last.ckpt; the same command with --resume continues it exactly
(the run's own flags from run.json are put back, all but the budget and the file paths).
Training runs OpenBLAS on one thread unless OMP/OPENBLAS/MKL_NUM_THREADS says otherwise.
"""
import contextlib
import ctypes
import json
import os
import time

from .. import __version__
from ..errors import FileFormatError, InputError
from .._threads import THREAD_VARS, set_numba_threads
from ..progress import ProgressBar, format_duration
from .flags import BUDGET_KEYS, budget, check_training_args, fail, make_optimizer, make_schedule

TASKS = ("lm", "classify", "tag", "forecast", "seq2seq")
MODEL_FILE, RUN_FILE, LOSS_PNG = "model.rnnkit", "run.json", "loss.png"
# flags a resumed run takes from the command line rather than from its run.json
KEEP_ON_RESUME = BUDGET_KEYS + ("resume", "quiet", "run", "eval_every", "early_stopping", "text", "data",
                                "data_dir", "val_data", "csv", "pairs", "file")

_TRAIN_SUBPARSERS = {}
BLAS_VARS = THREAD_VARS
BLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads64_",
                "scipy_openblas_set_num_threads")


def blas_threads(n=1):
    """Run OpenBLAS and numba on n threads unless a *_NUM_THREADS variable says otherwise; True when set.

    rnnkit's per-step products are small ((B, H) @ (H, 4H)): on a few shared cores, BLAS threads
    cost more in hand-offs than they bring (measured 6-9x slower training on 2 busy cores).
    """
    if any(os.environ.get(v) for v in BLAS_VARS):
        return False
    set_numba_threads(n)
    try:
        with open("/proc/self/maps") as f:          # the OpenBLAS numpy loaded (Linux)
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:
        return False
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in BLAS_SETTERS:
            if hasattr(lib, name):
                getattr(lib, name)(ctypes.c_int(n))
                return True
    return False


def train_subparsers(sub):
    """The subparsers of `rnnkit train` (created once per top-level subparsers object)."""
    key = id(sub)
    if key not in _TRAIN_SUBPARSERS:
        p = sub.add_parser("train", help="train a model on your data (lm, classify, tag, forecast, seq2seq)",
                           description="Train a model; every task writes a run folder (--run).")
        _TRAIN_SUBPARSERS[key] = (sub, p.add_subparsers(dest="task", required=True, metavar="TASK"))
    return _TRAIN_SUBPARSERS[key][1]


def check_file(flag, path):
    """One clear line when the file a flag names is missing or is a folder; returns path."""
    if not os.path.exists(path):
        fail(f"{flag}: no such file: {path}")
    if os.path.isdir(path):
        fail(f"{flag}: {path} is a folder, expected a file")
    return path


def new_model(make, *args):
    """make(*args), with a MemoryError turned into one clear line."""
    try:
        return make(*args)
    except MemoryError:
        fail("the model does not fit in memory: choose a smaller --hidden, --embedding, --layers or vocabulary")


def run_dir(args, task):
    """The run folder: --run, or runs/<task>-<timestamp> (checked against --resume)."""
    if args.run is None:
        if args.resume:
            fail("--resume: name the run to continue with --run DIR")
        args.run = os.path.join("runs", f"{task}-{time.strftime('%Y%m%d-%H%M%S')}")
    path = args.run
    if os.path.exists(path) and not os.path.isdir(path):
        fail(f"--run: {path} exists and is not a folder")
    has_ckpt = os.path.exists(os.path.join(path, "last.ckpt"))
    if has_ckpt and not args.resume:
        fail(f"--run: {path} already holds a run; add --resume to continue it, or choose another folder")
    if args.resume:
        if not has_ckpt:
            fail(f"--resume: {path} holds no checkpoint (last.ckpt) to continue from")
        old = read_run_info(path).get("task")
        if old is not None and old != task:
            fail(f"--resume: {path} is a {old!r} run; `rnnkit train {task}` cannot continue it")
    return path


def read_run_info(path):
    """The run.json of a run folder as a dict ({} when absent or unreadable)."""
    try:
        with open(os.path.join(path, RUN_FILE), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def resume_state(args, task=None):
    """(model config, meta) saved in --run DIR's last.ckpt when --resume is given, else None.

    Call it before the flags are used: it also puts back the run's own flags (all but the budget,
    file paths, --eval-every, --early-stopping and --quiet), so that the data and the model are
    cut exactly as in the run being continued. With `task`, a run of another task is refused.
    """
    if not getattr(args, "resume", False) or args.run is None:
        return None
    from ..checkpoint import read_checkpoint
    path = os.path.join(args.run, "last.ckpt")
    if not os.path.exists(path):
        fail(f"--resume: {args.run} holds no checkpoint (last.ckpt) to continue from")
    info = read_run_info(args.run)
    if task is not None and info.get("task") not in (None, task):
        fail(f"--resume: {args.run} is a {info['task']!r} run; `rnnkit train {task}` cannot continue it")
    _restore_flags(args, info.get("args", {}))
    meta = read_checkpoint(path)[1]
    return meta["config"], meta["trainer"].get("meta") or {}


def _restore_flags(args, saved):
    """Set the flags saved in run.json back on args (see resume_state); say which ones changed."""
    changed = []
    for k, v in saved.items():
        if k in KEEP_ON_RESUME or not hasattr(args, k) or getattr(args, k) == v:
            continue
        setattr(args, k, v)
        changed.append("--" + k.replace("_", "-"))
    if changed:
        print(f"resuming with the run's own {', '.join(changed)}")


def _write_run_info(path, args, task):
    """Write run.json (the task and the flags) unless resuming."""
    flags = {k: v for k, v in vars(args).items() if k not in ("func", "default_budget")
             and isinstance(v, (str, int, float, bool, type(None), list))}
    from ..io import atomic_write_text
    atomic_write_text(os.path.join(path, RUN_FILE),
                      json.dumps({"task": task, "args": flags, "rnnkit": __version__}, indent=1) + "\n")


def loss_curve(path, history, title="loss"):
    """Write loss.png from fit's history (train and validation loss against step); None if impossible."""
    train = [(r["step"], r["loss"]) for r in history if r.get("loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    series = {name: ([s for s, _ in pts], [v for _, v in pts])
              for name, pts in (("train", train), ("validation", val)) if pts}
    if not series:
        return None
    try:
        from ..plots import line_plot
    except ImportError:
        return None
    return line_plot(path, series, title=title, xlabel="step", ylabel="loss (nats per item)")


class BudgetBar(ProgressBar):
    """A progress bar filled by the larger of steps done / max steps and time used / minutes."""

    def __init__(self, steps=None, minutes=None, stream=None):
        super().__init__(total=None, stream=stream)
        self.steps, self.seconds = steps, None if minutes is None else 60.0 * minutes

    def text(self, step, loss=None, tokens_per_s=None):
        """The bar's line at `step`."""
        elapsed = self.clock() - self.t0
        fracs = [step / self.steps] if self.steps else []
        fracs += [elapsed / self.seconds] if self.seconds else []
        frac = min(max(fracs), 1.0) if fracs else None
        parts = [] if frac is None else [f"[{'#' * int(frac * self.width):.<{self.width}}]  {100 * frac:3.0f}%"]
        parts.append(f"step {step}")
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if tokens_per_s is not None:
            parts.append(f"{tokens_per_s:,.0f} tok/s")
        if frac:
            parts.append(f"ETA {format_duration(elapsed * (1 - frac) / frac)}")
        return "  ".join(parts)


def _progress(args, b, train_data):
    """The progress bar for fit (False with --quiet)."""
    if args.quiet:
        return False
    steps = [v for v in (b["steps"], b["epochs"] and b["epochs"] * len(train_data)) if v]
    return BudgetBar(min(steps) if steps else None, b["minutes"])


def _diagnostics(args, model, kwargs):
    """With --diagnostics N: a Recorder put into kwargs["on_step"] (a context that removes it)."""
    every = getattr(args, "diagnostics", None)
    if every is None:
        return contextlib.nullcontext()
    if every < 1:
        fail(f"--diagnostics: expected an integer >= 1 (steps between records), got {every}")
    from ..diagnostics import Recorder
    kwargs["on_step"] = Recorder(model, every, on_step=kwargs.get("on_step"))
    return kwargs["on_step"]


def train_model(args, model, train_data, val_data, task, meta, **fit_kwargs):
    """fit() into the run folder with a progress bar, resume and Ctrl-C; save model.rnnkit and loss.png.

    fit_kwargs go to rnnkit.train.fit (e.g. tbptt=True, log_every=10); returns its FitResult.
    """
    from ..distributed import DataParallel, mpi_world_size
    from ..io.model_file import save
    from ..train import _per_evaluation, fit
    check_training_args(args)
    blas_threads(1)
    optimizer = make_optimizer(args, model)
    # under `mpiexec -n N`: data-parallel over N ranks; rank 0 alone writes and prints
    parallel = DataParallel() if mpi_world_size() > 1 else None
    root = parallel is None or parallel.is_root
    path = run_dir(args, task)
    if parallel is not None:
        path = parallel.first(path if root else None)     # one folder name for all ranks
    if root:
        os.makedirs(path, exist_ok=True)
    if root and not args.resume:
        _write_run_info(path, args, task)
    b = budget(args)
    if args.eval_every is None:
        args.eval_every = max(1, len(train_data))      # once per epoch
    schedule = make_schedule(args, optimizer, b, len(train_data))
    if schedule is not None and val_data is None and _per_evaluation(schedule):
        fail("--lr-schedule plateau: needs validation data (--val-split > 0 or a validation file)")
    kwargs = dict(steps=b["steps"], epochs=b["epochs"], minutes=b["minutes"], val_data=val_data, schedule=schedule,
                  eval_every=args.eval_every, log_every=min(50, args.eval_every),
                  clip_norm=args.clip if args.clip and args.clip > 0 else None,
                  run_dir=path, checkpoint_every=max(args.eval_every, 100),
                  early_stopping=args.early_stopping if val_data is not None else None,
                  seed=args.seed, progress=_progress(args, b, train_data) if root else False,
                  resume=args.resume, meta=meta, parallel=parallel, monitor=getattr(args, "monitor", "loss"))
    kwargs.update(fit_kwargs)
    with _diagnostics(args, model, kwargs):
        result = fit(model, optimizer, train_data, **kwargs)
    if not root:
        return result
    summary = {"steps": result.steps, "epochs": round(result.epoch, 4), "best_val": result.best_val,
               "best_step": result.best_step, "stop_reason": result.stop_reason, "monitor": kwargs["monitor"]}
    save(model, os.path.join(path, MODEL_FILE), task=task, training=summary, **meta)
    try:
        loss_curve(os.path.join(path, LOSS_PNG), result.history, f"{task}: loss")
    except (InputError, ValueError, OSError):
        pass    # a picture is a bonus: never fail a finished run over it
    report(result, path, kwargs["monitor"])
    return result


def report(result, path, monitor="loss"):
    """Print how training ended and where the run folder is."""
    best = ("" if result.best_val is None
            else f", best validation {monitor} {result.best_val:.4f} (step {result.best_step})")
    if result.interrupted:
        print(f"interrupted at step {result.steps}{best}; the checkpoint is saved: run the same command "
              f"with --resume --run {path} to continue")
    else:
        print(f"trained {result.steps} steps ({result.stop_reason}){best}")
    print(f"run folder: {path}")


def load_run(run_dir, task, command=None):
    """(model, metadata) of a run folder's model.rnnkit, checked to be a run of `task` (or of one of a tuple)."""
    from ..io.model_file import load
    tasks = (task,) if isinstance(task, str) else tuple(task)
    p = os.fspath(run_dir)
    if not os.path.exists(p):
        fail(f"{p}: no such run folder")
    if not os.path.isdir(p):
        fail(f"{p}: not a run folder (a file); pass the folder that training wrote (--run)")
    model_path = os.path.join(p, MODEL_FILE)
    if not os.path.exists(model_path):
        if os.path.exists(os.path.join(p, "last.ckpt")):
            fail(f"{p} holds no {MODEL_FILE} yet (training did not finish); continue it with --resume --run {p}")
        fail(f"{p}: not an rnnkit run folder (no {MODEL_FILE})")
    try:
        model, metadata = load(model_path, with_metadata=True)
    except FileFormatError as e:
        fail(f"{p}: cannot read {MODEL_FILE}: {e}")
    kind = metadata.get("task")
    if kind not in tasks:
        need = " or ".join(repr(t) for t in tasks)
        who = f"`rnnkit {command}`" if command else "this command"
        fail(f"{p} is a {kind!r} run; {who} needs a {need} run")
    return model, metadata
