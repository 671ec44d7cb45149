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
import argparse
import contextlib
import ctypes
import json
import os
import time

from .. import __version__, optim
from .._checks import check_choice
from ..errors import FileFormatError, InputError
from ..progress import ProgressBar, format_duration

TASKS = ("lm", "classify", "tag", "forecast", "seq2seq")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
CELLS = ("rnn", "lstm", "gru", "mingru", "minlstm")
VARIANT_FLAGS = ("layer_norm", "recurrent_dropout", "zoneout", "weight_drop")
SCHEDULES = ("constant", "cosine", "step", "plateau")
MODEL_FILE, RUN_FILE, LOSS_PNG = "model.rnnkit", "run.json", "loss.png"
BUDGET_KEYS = ("epochs", "minutes", "steps")
DEFAULTS = dict(cell="lstm", hidden=128, layers=1, bidirectional=False, dropout=0.0, optimizer="adam",
                lr=2e-3, clip=5.0, batch=32, seq_len=64, seed=0, val_split=0.1, early_stopping=None,
                eval_every=200, run=None, dtype="float32", lr_schedule="constant", warmup=0, min_lr=0.0)
DEFAULT_BUDGET = {"epochs": 10}
# flags a resumed run takes from the command line rather than from its run.json
KEEP_ON_RESUME = BUDGET_KEYS + ("resume", "quiet", "run", "eval_every", "early_stopping", "text", "data",
                                "data_dir", "val_data", "csv", "pairs", "file")

MAX_HIDDEN = 65536      # beyond this a layer's weights outgrow any CPU's memory
_TRAIN_SUBPARSERS = {}
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads64_",
                "scipy_openblas_set_num_threads")


def fail(msg):
    """Stop the command with one clear line (exit status 2): raises InputError(msg)."""
    raise InputError(msg)


def blas_threads(n=1):
    """Run OpenBLAS on n threads unless a *_NUM_THREADS variable says otherwise; True when set.

    rnnkit's per-step products are small ((B, H) @ (H, 4H)): on a few shared cores, BLAS threads
    cost more in hand-offs than they bring (measured 6-9x slower training on 2 busy cores).
    """
    if any(os.environ.get(v) for v in BLAS_VARS):
        return False
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


def add_training_args(parser, **defaults):
    """Add the flags every training command shares; `defaults` overrides their defaults by dest name.

    epochs / minutes / steps in `defaults` set the budget used when the user gives none of them.
    """
    d = {**DEFAULTS, **{k: v for k, v in defaults.items() if k not in BUDGET_KEYS}}
    budget = {k: defaults[k] for k in BUDGET_KEYS if defaults.get(k) is not None} or DEFAULT_BUDGET
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=d["cell"],
                   help="recurrent cell (mingru, minlstm: Feng et al. 2024, one-way, no variant flags)")
    g.add_argument("--hidden", type=int, default=d["hidden"], help="hidden units per layer")
    g.add_argument("--layers", type=int, default=d["layers"], help="stacked recurrent layers")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=d["bidirectional"],
                   help="read the sequence both ways")
    g.add_argument("--dropout", type=float, default=d["dropout"], help="dropout between layers and before the output")
    g.add_argument("--dtype", choices=("float32", "float64"), default=d["dtype"], help="floating-point type")
    g = parser.add_argument_group("cell variants (rnn, lstm, gru)")
    g.add_argument("--layer-norm", action="store_true", help="layer-normalised cell (Ba et al. 2016)")
    g.add_argument("--recurrent-dropout", type=float, default=0.0, metavar="P",
                   help="variational dropout on h_{t-1}, one mask per sequence (Gal & Ghahramani 2016)")
    g.add_argument("--zoneout", type=float, default=0.0, metavar="P",
                   help="zoneout on the states (Krueger et al. 2016)")
    g.add_argument("--weight-drop", type=float, default=0.0, metavar="P",
                   help="DropConnect on W_h (Merity et al. 2017)")
    g = parser.add_argument_group("training")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"], help="update rule")
    g.add_argument("--lr", type=float, default=d["lr"], help="learning rate")
    g.add_argument("--lr-schedule", choices=SCHEDULES, default=d["lr_schedule"],
                   help="constant; cosine (to --min-lr over the step or epoch budget); step (x0.5 at each "
                        "quarter of it); plateau (x0.5 after 2 evaluations without a better validation loss)")
    g.add_argument("--warmup", type=int, default=d["warmup"], metavar="N",
                   help="raise the lr linearly over the first N steps (constant, cosine, step)")
    g.add_argument("--min-lr", type=float, default=d["min_lr"], help="the lr cosine ends at")
    g.add_argument("--clip", type=float, default=d["clip"], help="clip the gradient norm to this (0: off)")
    g.add_argument("--batch", type=int, default=d["batch"], help="sequences per batch")
    g.add_argument("--seq-len", type=int, default=d["seq_len"], help="time steps per window (truncated BPTT)")
    shown = ", ".join(f"--{k} {v}" for k, v in budget.items())
    g.add_argument("--epochs", type=int, default=None, help=f"budget: passes over the data (default: {shown})")
    g.add_argument("--minutes", type=float, default=None, help="budget: minutes of training")
    g.add_argument("--steps", type=int, default=None, help="budget: optimizer steps")
    g.add_argument("--seed", type=int, default=d["seed"], help="random seed (weights, shuffling, dropout)")
    g.add_argument("--val-split", type=float, default=d["val_split"],
                   help="fraction of the data held out for validation")
    g.add_argument("--early-stopping", type=int, default=d["early_stopping"], metavar="K",
                   help="stop after K evaluations without a better validation loss")
    g.add_argument("--eval-every", type=int, default=d["eval_every"],
                   help="evaluate every N steps (default: " + ("once per epoch" if d["eval_every"] is None
                                                              else str(d["eval_every"])) + ")")
    g.add_argument("--run", default=d["run"], metavar="DIR", help="run folder (default runs/<task>-<time>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --run DIR from its last checkpoint")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--diagnostics", type=int, default=None, metavar="N",
                   help="every N steps, record gradient norms per time step, gate saturation and "
                        "hidden-state traces into diagnostics.jsonl (see rnnkit inspect RUN --plots)")
    extra = {k: v for k, v in defaults.items() if k not in DEFAULTS and k not in BUDGET_KEYS}
    parser.set_defaults(default_budget=budget, **extra)
    return parser


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


def make_optimizer(args, model):
    """The optimizer named by --optimizer with --lr over the model's parameters."""
    check_choice("--optimizer", args.optimizer, OPTIMIZERS)
    if not args.lr > 0:
        fail(f"--lr: expected a number > 0, got {args.lr}")
    if args.optimizer in ("sgd", "momentum"):
        return optim.SGD(model, lr=args.lr, momentum=0.9 if args.optimizer == "momentum" else 0.0)
    cls = {"adagrad": optim.Adagrad, "rmsprop": optim.RMSprop, "adam": optim.Adam, "adamw": optim.AdamW}
    return cls[args.optimizer](model, lr=args.lr)


def cell_options(args):
    """The model keyword arguments of the cell-variant flags the user gave ({} for none)."""
    if args.cell in ("mingru", "minlstm") and getattr(args, "bidirectional", False):
        fail(f"--cell {args.cell}: runs forward in time only; add --no-bidirectional")
    given = {k: getattr(args, k, 0) for k in VARIANT_FLAGS}
    given = {k: v for k, v in given.items() if v}
    for k, v in given.items():
        if k != "layer_norm" and not 0 <= v < 1:
            fail(f"--{k.replace('_', '-')}: expected a probability in [0, 1), got {v}")
    if given and args.cell not in ("rnn", "lstm", "gru"):
        fail(f"--{next(iter(given)).replace('_', '-')}: a variant of rnn, lstm or gru, not of --cell {args.cell}")
    return given


def make_schedule(args, optimizer, b, n_batches):
    """The schedule named by --lr-schedule (None for constant without warm-up); b is budget(args)."""
    kind = getattr(args, "lr_schedule", "constant")
    warmup, min_lr = getattr(args, "warmup", 0), getattr(args, "min_lr", 0.0)
    check_choice("--lr-schedule", kind, SCHEDULES)
    if warmup < 0:
        fail(f"--warmup: expected an integer >= 0 (steps), got {warmup}")
    if not 0 <= min_lr < args.lr:
        fail(f"--min-lr: expected a number in [0, --lr = {args.lr}), got {min_lr}")
    if kind == "plateau":
        if warmup:
            fail("--warmup: not available with --lr-schedule plateau (it steps per evaluation)")
        return optim.ReduceOnPlateau(optimizer, factor=0.5, patience=2, min_lr=min_lr)
    total = [v for v in (b["steps"], b["epochs"] and b["epochs"] * n_batches) if v]
    if kind in ("cosine", "step") and not total:
        fail(f"--lr-schedule {kind}: needs a step count to decay over; give --steps or --epochs "
             f"(--minutes may still cap the time)")
    span = max(1, min(total) - warmup) if total else 1
    after = None
    if kind == "cosine":
        after = optim.CosineAnnealing(optimizer, T_max=span, eta_min=min_lr)
    elif kind == "step":
        after = optim.StepLR(optimizer, step_size=max(1, span // 4), gamma=0.5)
    return optim.Warmup(optimizer, warmup, after) if warmup else after


def budget(args):
    """{"epochs", "minutes", "steps"}: those the user gave, else the command's default budget."""
    given = {k: getattr(args, k, None) for k in BUDGET_KEYS}
    for k, v in given.items():
        if v is not None and not v > 0:
            fail(f"--{k}: expected a number > 0, got {v}")
    if all(v is None for v in given.values()):
        given.update(getattr(args, "default_budget", DEFAULT_BUDGET))
    return given


def check_training_args(args):
    """One clear line for sizes and fractions out of range."""
    for name in ("hidden", "layers", "batch", "seq_len", "eval_every"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(args, name)}")
    if getattr(args, "hidden", None) is not None and args.hidden > MAX_HIDDEN:
        fail(f"--hidden: expected at most {MAX_HIDDEN:,} units, got {args.hidden:,}")
    if args.clip is not None and not args.clip >= 0:
        fail(f"--clip: expected a gradient-norm bound > 0 (or 0: no clipping), got {args.clip}")
    if not 0 <= args.dropout < 1:
        fail(f"--dropout: expected a number in [0, 1), got {args.dropout}")
    if not 0 <= args.val_split < 1:
        fail(f"--val-split: expected a fraction in [0, 1), got {args.val_split}")
    if args.early_stopping is not None and args.early_stopping < 1:
        fail(f"--early-stopping: expected an integer >= 1, got {args.early_stopping}")
    if args.seed < 0:
        fail(f"--seed: expected an integer >= 0, got {args.seed}")


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
                  resume=args.resume, meta=meta, parallel=parallel)
    kwargs.update(fit_kwargs)
    with _diagnostics(args, model, kwargs):
        result = fit(model, optimizer, train_data, **kwargs)
    if not root:
        return result
    summary = {"steps": result.steps, "epochs": round(result.epoch, 4), "best_val": result.best_val,
               "best_step": result.best_step, "stop_reason": result.stop_reason}
    save(model, os.path.join(path, MODEL_FILE), task=task, training=summary, **meta)
    try:
        loss_curve(os.path.join(path, LOSS_PNG), result.history, f"{task}: loss")
    except (InputError, ValueError, OSError):
        pass    # a picture is a bonus: never fail a finished run over it
    report(result, path)
    return result


def report(result, path):
    """Print how training ended and where the run folder is."""
    best = "" if result.best_val is None else f", best validation loss {result.best_val:.4f} (step {result.best_step})"
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
