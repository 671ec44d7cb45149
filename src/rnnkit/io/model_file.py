"""rnnkit model files: `save(model, path)` and `load(path)`.

A model file is one rnnkit safe file (see rnnkit.io.safe: safetensors layout, SHA-256 checksum,
written atomically, never pickled) holding
    arrays   every parameter under its dotted name (model.named_parameters())
    meta     {"kind": "rnnkit-model", "model_format": 1, "config": model.config(),
              "metadata": {...}}   the caller's JSON-able extras: vocabulary, task, training summary
Loading rebuilds the model from its config with rnnkit.models.build and copies the weights in;
a file whose arrays do not fit its config (another architecture, missing or misshaped weights)
fails with FileFormatError before the model is used.
"""
import numpy as np

from ..errors import FileFormatError, InputError, NonFiniteError, StateDictError
from .safe import load_arrays, save_arrays

MODEL_FORMAT = 1


def save(model, path, **metadata):
    """Write model (weights + config) and JSON-able metadata to `path` atomically."""
    if not hasattr(model, "config") or not hasattr(model, "named_parameters"):
        raise InputError(f"model: expected an rnnkit module with config(), got {type(model).__name__}")
    arrays = {name: p for name, p, _ in model.named_parameters()}
    bad = [name for name, p in arrays.items() if not np.all(np.isfinite(p))]
    if bad:
        raise NonFiniteError(f"model: NaN or Inf in {bad[:5]}; refusing to save non-finite weights")
    meta = {"kind": "rnnkit-model", "model_format": MODEL_FORMAT, "config": model.config(),
            "metadata": metadata}
    save_arrays(path, arrays, meta)


def load(path, expect=None, with_metadata=False):
    """Read a model file; `expect` (a type name or tuple of names) guards against the wrong kind of model."""
    from ..models import build
    arrays, meta = load_arrays(path)
    if not isinstance(meta, dict) or meta.get("kind") != "rnnkit-model":
        raise FileFormatError(f"{path}: an rnnkit file, but not a model file (kind {meta.get('kind')!r})")
    if meta.get("model_format") != MODEL_FORMAT:
        raise FileFormatError(f"{path}: model format {meta.get('model_format')!r}, this rnnkit reads "
                              f"{MODEL_FORMAT} (made by a newer rnnkit?)")
    config = meta.get("config")
    kind = config.get("type") if isinstance(config, dict) else None
    if expect is not None and kind not in ((expect,) if isinstance(expect, str) else tuple(expect)):
        raise FileFormatError(f"{path}: holds a {kind} model, expected {expect}")
    try:
        model = build(config)
        model.load_state_dict(arrays)
    except (InputError, StateDictError) as e:
        raise FileFormatError(f"{path}: weights do not fit the {kind} model it describes: {e}") from None
    for _, p, _ in model.named_parameters():
        if not np.all(np.isfinite(p)):
            raise FileFormatError(f"{path}: holds non-finite weights")
    return (model, meta.get("metadata", {})) if with_metadata else model
