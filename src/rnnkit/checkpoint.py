"""Training checkpoints and the run folder: everything a run needs to continue exactly, in ONE file.

A checkpoint is one rnnkit.io.safe file (safetensors layout, checksummed, written atomically: a temp
file, fsync, os.replace, so the path always holds the old complete file or the new one). Arrays:

    model/<param name>        every parameter (dotted names of model.named_parameters())
    optimizer/<state>/<name>  the optimizer's state arrays (opt.state_dict()[0])
    carry/<i>                 the leaves of the carried truncated-BPTT state (trainer_state["carry"])

and the JSON meta:

    {"kind": "rnnkit-checkpoint", "version": 1,
     "config":    model.config() (null when the model records none),
     "optimizer": opt.state_dict()[1] or null,       "schedule": schedule.state_dict() or null,
     "rng": {"loop": rng.bit_generator.state or null,
             "modules": {<module path>: <its rng.bit_generator.state>}},   e.g. dropout masks
     "carry": <structure of the carried state>,      "trainer": <trainer_state, JSON>}

Module paths are dotted child names ("" is the model itself); a Generator shared by several modules
is stored once, under its first path. NaN/Inf in the weights, optimizer state or carried state
raise NonFiniteError before anything is written, so non-finite weights never reach a checkpoint.

A run folder holds LAST ("last.ckpt", the newest state), BEST ("best.ckpt", the best validation
loss so far) and METRICS ("metrics.jsonl", one JSON object per line with at least a "step").
"""
import json
import os

import numpy as np

from .errors import FileFormatError, InputError, NonFiniteError, StateDictError
from .io.safe import atomic_write_text, load_arrays, save_arrays

KIND, VERSION = "rnnkit-checkpoint", 1
LAST, BEST, METRICS = "last.ckpt", "best.ckpt", "metrics.jsonl"


# -- carried state: nested tuples / lists / dicts of arrays <-> flat arrays + a JSON structure ------
def flatten_state(state, arrays, prefix="carry/"):
    """Put the array leaves of `state` into `arrays` (keys prefix + i) and return its JSON structure."""
    if state is None:
        return None
    if isinstance(state, np.ndarray):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = state
        return {"array": key}
    if isinstance(state, (tuple, list)):
        return {type(state).__name__: [flatten_state(s, arrays, prefix) for s in state]}
    if isinstance(state, dict) and all(isinstance(k, str) for k in state):
        return {"dict": {k: flatten_state(v, arrays, prefix) for k, v in state.items()}}
    raise InputError(f"trainer_state['carry']: expected None, an array, or tuples/lists/str-keyed "
                     f"dicts of arrays, got {type(state).__name__}")


def unflatten_state(spec, arrays):
    """Rebuild a state from flatten_state's structure and the arrays it named."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or len(spec) != 1:
        raise FileFormatError(f"checkpoint: corrupted carried-state structure {spec!r:.80}")
    (kind, value), = spec.items()
    if kind == "array" and value in arrays:
        return arrays[value]
    if kind in ("tuple", "list") and isinstance(value, list):
        items = [unflatten_state(s, arrays) for s in value]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and isinstance(value, dict):
        return {k: unflatten_state(v, arrays) for k, v in value.items()}
    raise FileFormatError(f"checkpoint: corrupted carried-state structure {spec!r:.80}")


# -- random generators ----------------------------------------------------------------------------
def module_rngs(model):
    """{module path: numpy Generator} for every module with an `rng` attribute, each Generator once."""
    found, seen = {}, set()

    def walk(m, path):
        rng = getattr(m, "rng", None)
        if isinstance(rng, np.random.Generator) and id(rng) not in seen:
            seen.add(id(rng))
            found[path] = rng
        for name, child in m.children.items():
            walk(child, f"{path}.{name}" if path else name)
    walk(model, "")
    return found


def rng_state(rng):
    """A Generator's bit_generator state as JSON (arrays, as MT19937 keeps, become lists)."""
    state = rng.bit_generator.state

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v.tolist() if isinstance(v, np.ndarray) else v
    return plain(state)


def _set_rng(name, rng, state):
    """Restore a Generator's bit_generator state, as StateDictError when it does not fit."""
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise StateDictError(f"checkpoint rng {name!r}: cannot restore ({e})") from None


# -- saving and loading ---------------------------------------------------------------------------
def _check_finite(arrays):
    """Raise NonFiniteError naming the first float array holding NaN or Inf."""
    for key, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise NonFiniteError(f"{key}: holds NaN or Inf; refusing to write a checkpoint with it")


def _config(model):
    """model.config(), or None for a model that records no configuration."""
    try:
        return model.config() if hasattr(model, "config") else None
    except NotImplementedError:
        return None


def save_checkpoint(path, model, optimizer=None, schedule=None, trainer_state=None, *, rng=None):
    """Write weights, optimizer, schedule, RNG states, config and trainer_state to `path` atomically."""
    trainer_state = dict(trainer_state or {})
    if not hasattr(model, "named_parameters"):
        raise InputError(f"model: expected an rnnkit Module, got {type(model).__name__}")
    arrays = {f"model/{name}": p for name, p, _ in model.named_parameters()}
    opt_arrays, opt_meta = optimizer.state_dict() if optimizer is not None else ({}, None)
    arrays.update({f"optimizer/{k}": a for k, a in opt_arrays.items()})
    carry = flatten_state(trainer_state.pop("carry", None), arrays)
    _check_finite(arrays)
    meta = {"kind": KIND, "version": VERSION,
            "config": _config(model),
            "optimizer": opt_meta,
            "schedule": schedule.state_dict() if schedule is not None else None,
            "rng": {"loop": rng_state(rng) if rng is not None else None,
                    "modules": {k: rng_state(g) for k, g in module_rngs(model).items()}},
            "carry": carry, "trainer": trainer_state}
    save_arrays(path, arrays, meta)


def read_checkpoint(path):
    """(arrays, meta) of a checkpoint file, checked to be a checkpoint of a version this rnnkit reads."""
    arrays, meta = load_arrays(path)
    if meta.get("kind") != KIND:
        raise FileFormatError(f"{path}: not an rnnkit training checkpoint (kind {meta.get('kind')!r})")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise FileFormatError(f"{path}: checkpoint version {meta.get('version')!r}; this rnnkit reads "
                              f"up to version {VERSION}")
    for key in ("config", "optimizer", "schedule", "rng", "carry", "trainer"):
        if key not in meta:
            raise FileFormatError(f"{path}: corrupted checkpoint: meta has no {key!r}")
    return arrays, meta


def checkpoint_config(path):
    """The model config stored in a checkpoint (None when the model had no config())."""
    return read_checkpoint(path)[1]["config"]


def _pick(arrays, prefix):
    """The entries of arrays under prefix, with the prefix removed."""
    return {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}


def model_weights(arrays):
    """{param name: array}: the model weights among a checkpoint's arrays (from read_checkpoint)."""
    return _pick(arrays, "model/")


def load_weights(path):
    """{param name: array} of a checkpoint's model weights, without touching any model."""
    return model_weights(read_checkpoint(path)[0])


def load_checkpoint(path, model, optimizer=None, schedule=None, *, rng=None):
    """Restore a checkpoint into model (and optimizer, schedule, rng, module rngs); return trainer_state.

    trainer_state is the dict given to save_checkpoint, with "carry" rebuilt as arrays.
    """
    arrays, meta = read_checkpoint(path)
    model.load_state_dict(model_weights(arrays))
    for what, obj in (("optimizer", optimizer), ("schedule", schedule)):
        if obj is not None and meta[what] is None:
            raise StateDictError(f"{path}: the checkpoint holds no {what} state, but a {what} was given")
    if optimizer is not None:
        optimizer.load_state_dict(_pick(arrays, "optimizer/"), meta["optimizer"])
    if schedule is not None:
        schedule.load_state_dict(meta["schedule"])
    rngs, saved = module_rngs(model), meta["rng"].get("modules", {})
    if set(rngs) != set(saved):
        raise StateDictError(f"{path}: module rngs differ: checkpoint has {sorted(saved)}, "
                             f"model has {sorted(rngs)}")
    for name, g in rngs.items():
        _set_rng(name, g, saved[name])
    if rng is not None and meta["rng"].get("loop") is not None:
        _set_rng("loop", rng, meta["rng"]["loop"])
    state = dict(meta["trainer"])
    state["carry"] = unflatten_state(meta["carry"], arrays)
    return state


# -- metrics.jsonl --------------------------------------------------------------------------------
def read_metrics(path):
    """The records of a metrics.jsonl file; a torn or unparseable line ends the list."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if not (line.endswith("\n") and isinstance(rec, dict) and isinstance(rec.get("step"), int)):
                break
            records.append(rec)
    return records


def _kept(record, step):
    """Whether a record survives a resume at `step`: earlier, or at it and not a partial interval."""
    return record["step"] < step or (record["step"] == step and not record.get("partial"))


class MetricsLog:
    """metrics.jsonl opened for appending; on resume at `resume_step`, later lines are dropped first,
    and so is a line at resume_step marked "partial" (the checkpoint carries its interval on)."""

    def __init__(self, path, resume_step=None):
        self.path = path
        keep = [r for r in read_metrics(path) if _kept(r, resume_step)] if resume_step is not None else []
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
        self.records = keep
        self.f = open(path, "a", encoding="utf-8")

    def write(self, record):
        """Append one record as a JSON line and flush it to the file."""
        clean = {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in record.items()}
        self.f.write(json.dumps(clean) + "\n")
        self.f.flush()
        self.records.append(clean)

    def close(self):
        """Close the file."""
        self.f.close()
