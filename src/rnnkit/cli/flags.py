"""The flags every training command shares and what they build: the optimizer, the learning-rate
schedule, the cell options and the budget. Errors a user can make end in fail(): one line, exit 2."""
import argparse

from .. import optim
from .._checks import check_choice
from ..errors import InputError

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
CELLS = ("rnn", "lstm", "gru", "mingru", "minlstm")
VARIANT_FLAGS = ("layer_norm", "input_dropout", "recurrent_dropout", "zoneout", "weight_drop")
SCHEDULES = ("constant", "cosine", "step", "plateau")
BUDGET_KEYS = ("epochs", "minutes", "steps")
DEFAULTS = dict(cell="lstm", hidden=128, layers=1, bidirectional=False, dropout=0.0, optimizer="adam",
                lr=2e-3, clip=5.0, batch=32, seq_len=64, seed=0, val_split=0.1, early_stopping=None,
                eval_every=200, run=None, dtype="float32", lr_schedule="constant", warmup=0, min_lr=0.0)
DEFAULT_BUDGET = {"epochs": 10}
MAX_HIDDEN = 65536      # beyond this a layer's weights outgrow any CPU's memory


def fail(msg):
    """Stop the command with one clear line (exit status 2): raises InputError(msg)."""
    raise InputError(msg)


def add_training_args(parser, **defaults):
    """Add the flags every training command shares; `defaults` overrides their defaults by dest name.

    epochs / minutes / steps in `defaults` set the budget used when the user gives none of them.
    """
    d = {**DEFAULTS, **{k: v for k, v in defaults.items() if k not in BUDGET_KEYS}}
    budget = {k: defaults[k] for k in BUDGET_KEYS if defaults.get(k) is not None} or DEFAULT_BUDGET
    _model_args(parser, d)
    _variant_args(parser)
    _loop_args(parser, d, budget)
    extra = {k: v for k, v in defaults.items() if k not in DEFAULTS and k not in BUDGET_KEYS}
    parser.set_defaults(default_budget=budget, **extra)
    return parser


def _model_args(parser, d):
    """The "model" group: cell, sizes, direction, dropout, dtype (defaults d)."""
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=d["cell"],
                   help="recurrent cell (mingru, minlstm: Feng et al. 2024, one-way, no variant flags)")
    g.add_argument("--hidden", type=int, default=d["hidden"], help="hidden units per layer")
    g.add_argument("--layers", type=int, default=d["layers"], help="stacked recurrent layers")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=d["bidirectional"],
                   help="read the sequence both ways")
    g.add_argument("--dropout", type=float, default=d["dropout"], help="dropout between layers and before the output")
    g.add_argument("--dtype", choices=("float32", "float64"), default=d["dtype"], help="floating-point type")


def _variant_args(parser):
    """The "cell variants" group: layer norm and the recurrent regularisers."""
    g = parser.add_argument_group("cell variants (rnn, lstm, gru)")
    g.add_argument("--layer-norm", action="store_true", help="layer-normalised cell (Ba et al. 2016)")
    g.add_argument("--input-dropout", type=float, default=0.0, metavar="P",
                   help="variational dropout on each layer's input (the embeddings for layer 0), one mask "
                        "per sequence")
    g.add_argument("--recurrent-dropout", type=float, default=0.0, metavar="P",
                   help="variational dropout on h_{t-1}, one mask per sequence (Gal & Ghahramani 2016)")
    g.add_argument("--zoneout", type=float, default=0.0, metavar="P",
                   help="zoneout on the states (Krueger et al. 2016)")
    g.add_argument("--weight-drop", type=float, default=0.0, metavar="P",
                   help="DropConnect on W_h (Merity et al. 2017)")


# rnnkit.train.MONITORS, written out so that parsing flags does not load the training loop (tested equal)
MONITORS = ("loss", "accuracy")


def _loop_args(parser, d, budget):
    """The "training" group: optimizer, schedule, batches, budget, validation, run folder (defaults d)."""
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
                   help="stop after K evaluations without a new best (see --monitor)")
    g.add_argument("--monitor", choices=MONITORS, default="loss",
                   help="what picks the best weights (kept in the run, and what early stopping waits for): "
                        "the lowest validation loss, or the highest validation accuracy (classify, tag, lm, seq2seq)")
    g.add_argument("--eval-every", type=int, default=d["eval_every"],
                   help="evaluate every N steps (default: " + ("once per epoch" if d["eval_every"] is None
                                                              else str(d["eval_every"])) + ")")
    g.add_argument("--run", default=d["run"], metavar="DIR", help="run folder (default runs/<task>-<time>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --run DIR from its last checkpoint")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--diagnostics", type=int, default=None, metavar="N",
                   help="every N steps, record gradient norms per time step, gate saturation and "
                        "hidden-state traces into diagnostics.jsonl (see rnnkit inspect RUN --plots)")


def add_embedding_dropout(parser):
    """--embedding-dropout, for the commands whose model starts with a word or character embedding."""
    parser.add_argument("--embedding-dropout", type=float, default=0.0, metavar="P",
                        help="drop whole word types from the embedding, one mask per batch (Gal & "
                             "Ghahramani 2016): a dropped word is zero wherever it occurs")


def embedding_options(args):
    """{"embedding_dropout": P} for a model constructor, or {} when --embedding-dropout is 0."""
    p = getattr(args, "embedding_dropout", 0.0)
    if not 0 <= p < 1:
        fail(f"--embedding-dropout: expected a probability in [0, 1), got {p}")
    return {"embedding_dropout": p} if p else {}


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
    if getattr(args, "monitor", "loss") == "accuracy" and getattr(args, "task", None) == "forecast":
        fail("--monitor accuracy: a forecast has no accuracy (it is a regression); use --monitor loss")
