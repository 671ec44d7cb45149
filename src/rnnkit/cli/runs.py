"""`rnnkit evaluate RUN --data FILE` and `rnnkit inspect RUN`: what a run folder holds and how good it is.

evaluate, by the run's task:
    lm        loss (nats per token), perplexity = exp(loss), bits per token = loss / ln 2, accuracy
    classify  accuracy and, per class, the fraction of its examples predicted right
    tag       token accuracy (padding excluded)
inspect: the run's flags and model configuration, parameter counts per module, the training summary
and metrics (first and last loss, best validation loss), and the files with their sizes; with
--plots, also the pictures of diagnostics.jsonl (rnnkit.diagnostics) written into the run folder.
"""
import json
import os

from ..checkpoint import BEST, LAST, METRICS, checkpoint_config, read_metrics
from ..io.model_file import load
from ..models import build
from .classify import add_data_args, add_ensemble_arg, evaluate_classify
from .common import MODEL_FILE, fail, load_run, read_run_info
from .lm import evaluate_lm
from .forecast import evaluate_forecast
from .seq2seq import evaluate_seq2seq
from .tag import evaluate_tag

EVALUATORS = {"lm": evaluate_lm, "classify": evaluate_classify, "tag": evaluate_tag,
              "forecast": evaluate_forecast, "seq2seq": evaluate_seq2seq}


def _show(scores, indent="  "):
    """Print a scores dict as aligned `key  value` lines; per-class counts one line per class."""
    for k, v in scores.items():
        if k == "per_class":
            print(f"{indent}per class:")
            for name, c in v.items():
                acc = "-" if c["accuracy"] is None else f"{c['accuracy']:.4f}"
                print(f"{indent}  {name:<20} {acc}  ({c['correct']}/{c['count']})")
        elif isinstance(v, float):
            print(f"{indent}{k:<22} {v:.4f}")
        else:
            print(f"{indent}{k:<22} {v}")


def cmd_evaluate(args):
    """`rnnkit evaluate RUN --data FILE`."""
    model, meta = load_run(args.run_dir, tuple(EVALUATORS), "evaluate")
    if not args.data and not (meta["task"] == "classify" and args.data_dir):
        fail("--data: give the file to evaluate on")
    if args.ensemble and meta["task"] != "classify":
        fail(f"--ensemble: averages classify runs; {args.run_dir} is a {meta['task']} run")
    scores = EVALUATORS[meta["task"]](args, model, meta)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{meta['task']} run {args.run_dir} on {args.data or args.data_dir}:")
        _show(scores)
    return 0


def _model_of(path):
    """(model, metadata) from model.rnnkit, else a model rebuilt from last.ckpt's config (untrained)."""
    model_path = os.path.join(path, MODEL_FILE)
    if os.path.exists(model_path):
        return load(model_path, with_metadata=True)
    for name in (LAST, BEST):
        if os.path.exists(os.path.join(path, name)):
            config = checkpoint_config(os.path.join(path, name))
            if config is not None:
                return build(config), {}
    fail(f"{path}: not an rnnkit run folder (no {MODEL_FILE} or {LAST})")


def parameter_counts(model):
    """{module path: scalar parameters} for every module that holds parameters itself."""
    counts = {}
    for name, p, _ in model.named_parameters():
        module = name.rsplit(".", 1)[0] if "." in name else "(model)"
        counts[module] = counts.get(module, 0) + p.size
    return counts


def _metrics_summary(path):
    """Lines about metrics.jsonl: records, first and last training loss, best validation loss."""
    recs = [r for r in read_metrics(os.path.join(path, METRICS)) if not r.get("partial")] or \
        read_metrics(os.path.join(path, METRICS))
    if not recs:
        return ["  (no metrics yet)"]
    loss = [r for r in recs if r.get("loss") is not None]
    val = [r for r in recs if r.get("val_loss") is not None]
    out = [f"  records {len(recs)}, last step {recs[-1]['step']}, {recs[-1].get('elapsed', 0):.0f} s of training"]
    if loss:
        out.append(f"  training loss {loss[0]['loss']:.4f} (step {loss[0]['step']}) -> "
                   f"{loss[-1]['loss']:.4f} (step {loss[-1]['step']})")
    if val:
        best = min(val, key=lambda r: r["val_loss"])
        acc = f", accuracy {best['val_accuracy']:.4f}" if best.get("val_accuracy") is not None else ""
        out.append(f"  best validation loss {best['val_loss']:.4f} at step {best['step']}{acc}")
    return out


def _plots(path):
    """Lines for --plots: the diagnostics pictures written into the run folder, or how to record them."""
    from ..diagnostics import DIAGNOSTICS, plot_diagnostics, read_diagnostics
    records = read_diagnostics(os.path.join(path, DIAGNOSTICS))
    if not records:
        return [f"  no {DIAGNOSTICS} in {path}: record diagnostics while training with "
                f"`rnnkit train TASK ... --diagnostics 50` (every 50 steps)"]
    return ["  " + p for p in plot_diagnostics(records, path)]


def cmd_inspect(args):
    """`rnnkit inspect RUN`."""
    path = args.run_dir
    if not os.path.isdir(path):
        fail(f"{path}: no such run folder" if not os.path.exists(path) else f"{path}: not a folder")
    info = read_run_info(path)
    model, meta = _model_of(path)
    print(f"run {path}: task {meta.get('task') or info.get('task', '?')}")
    if info.get("args"):
        flags = {k: v for k, v in info["args"].items() if v is not None and k not in ("command", "task")}
        print("flags: " + " ".join(f"{k}={v}" for k, v in flags.items()))
    print("model: " + " ".join(f"{k}={v}" for k, v in model.config().items() if v not in (None, False)))
    if "vocab" in meta:
        v = meta["vocab"]
        print(f"vocabulary: {len(v['itos']):,} {v['level']} tokens"
              + (", negation scopes marked" if v.get("negation_scope") else ""))
    for key in ("classes", "tags"):
        if key in meta:
            print(f"{key}: {', '.join(map(str, meta[key][:20]))}")
    print(f"parameters: {model.num_parameters():,}")
    for module, n in parameter_counts(model).items():
        print(f"  {module:<24} {n:>12,}")
    if "training" in meta:
        print("training: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in meta["training"].items()))
    print("metrics:")
    print("\n".join(_metrics_summary(path)))
    if getattr(args, "plots", False):
        print("plots:")
        print("\n".join(_plots(path)))
    print("files:")
    for name in sorted(os.listdir(path)):
        print(f"  {name:<24} {os.path.getsize(os.path.join(path, name)):>12,} bytes")
    return 0


def register(sub):
    """Add `evaluate` and `inspect`."""
    p = sub.add_parser("evaluate", help="score a trained run on a data file",
                       description="Score an lm, classify or tag run on a file in its task's format.")
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="text (lm), labelled texts (classify), tagged tokens (tag)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="classify: a folder with one file per class")
    add_data_args(p)
    add_ensemble_arg(p)
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("inspect", help="show a run's configuration, parameters, metrics and files",
                       description="Show what a run folder holds.")
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    p.add_argument("--plots", action="store_true",
                   help="draw diagnostics.jsonl (gradient norm per time step, gate saturation, hidden "
                        "states) as PNG files in the run folder")
    p.set_defaults(func=cmd_inspect)
