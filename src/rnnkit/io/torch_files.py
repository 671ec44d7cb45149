"""PyTorch files and state dicts: weights in and out of .pt/.pth files, and whole pipelines by name.

    load_torch_file(path)                  -> {key: ndarray}; the file holds a state_dict, or a dict
                                              with the state_dict under "model_state_dict" or "state_dict"
    save_torch_file(state, path)           torch.save({key: tensor}), written atomically
    to_torch_state_dict(modules, names)    {f"{name}.{key}": ndarray}, key from module.torch_state_dict()
    from_torch_state_dict(modules, sd, names)  the inverse, through module.load_torch_state_dict()

Names are the PyTorch attribute names of the modules, e.g. modules [Embedding, LSTM, Linear] with
names ["emb", "lstm", "out"] <-> "emb.weight", "lstm.weight_ih_l0", ..., "out.weight", "out.bias"
(Linear's weight is W^T, a recurrent layer's weight_ih is W_x^T with gates i, f, g, o / r, z, n).
A name None skips a module without weights (Dropout); a name "" (one module only) means no prefix,
the keys of a bare nn.LSTM's state_dict.

Files are read ONLY through torch.load(path, weights_only=True, map_location="cpu"): PyTorch's
restricted unpickler, which builds tensors, containers, numbers and strings and refuses any other
global, so a file whose pickle would call code is rejected before anything runs. Every file that
cannot be read so raises FileFormatError; torch is imported on first use (ImportError without it).
"""
import io
import re

import numpy as np

from .._checks import check_file_path
from ..errors import FileFormatError, InputError, StateDictError
from .safe import atomic_write_bytes

_WRAPPERS = ("model_state_dict", "state_dict")


def _torch():
    """The torch package, imported on first use."""
    try:
        import torch
    except ImportError:
        raise ImportError("reading and writing PyTorch files needs torch (pip install torch)") from None
    return torch


def _numpy(name, v):
    """A tensor or array as a NumPy array (bfloat16 becomes float32, which NumPy lacks)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu()
        v = v.float() if str(v.dtype) == "torch.bfloat16" else v
        return v.numpy().copy()
    a = np.asarray(v)
    if a.dtype.kind not in "fiub":
        raise StateDictError(f"{name}: expected a tensor or numeric array, got {type(v).__name__}")
    return a


def _reason(e):
    """The useful part of torch.load's error (not its advice to retry with weights_only=False)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    if found:
        return f"the pickle calls {found.group(1)}, which is not a tensor or container type"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not
             ln.startswith(("Weights only load failed", "Check the documentation"))]
    return f"{type(e).__name__}: {(lines or [''])[0][:200]}"


def _check_path(path):
    """path as a str naming an existing file, else InputError."""
    return check_file_path("path", path)


def load_torch_file(path):
    """Read the state_dict of a .pt/.pth file (torch.load, weights_only=True) as {key: ndarray}."""
    torch = _torch()
    path = _check_path(path)
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:                          # UnpicklingError, RuntimeError, EOFError, ...
        raise FileFormatError(f"{path}: not a readable PyTorch weights file: the weights-only loader "
                              f"refused it ({_reason(e)}); nothing in it was run") from None
    if isinstance(obj, dict) and not any(hasattr(v, "detach") for v in obj.values()):
        obj = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), obj)
    if not isinstance(obj, dict):
        raise FileFormatError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not hasattr(v, "detach")]
    if bad:
        raise FileFormatError(f"{path}: expected a state_dict of str -> tensor, got non-tensor or "
                              f"non-str entries {bad[:5]!r}")
    return {k: _numpy(k, v) for k, v in obj.items()}


def save_torch_file(state, path):
    """Write {key: ndarray or tensor} with torch.save, atomically; torch.load reads it back."""
    torch = _torch()
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise InputError(f"state: expected a dict of str -> arrays, got {type(state).__name__}")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(_numpy(f"state[{k!r}]", v)))
               for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _named(modules, names):
    """[(module, prefix)] for every module with a name, checked."""
    if not isinstance(modules, (list, tuple)):
        raise InputError(f"modules: expected a list of rnnkit modules, got {type(modules).__name__}")
    if not isinstance(names, (list, tuple)) or len(names) != len(modules):
        raise InputError(f"names: expected a list of {len(modules)} names (one per module), "
                         f"got {names!r:.100}")
    given = [n for n in names if n is not None]
    if any(not isinstance(n, str) for n in given) or len(set(given)) != len(given) \
            or ("" in given and len(given) > 1) \
            or any(a != b and b.startswith(a + ".") for a in given for b in given):
        raise InputError(f"names: expected distinct str names (or None), none a dotted prefix of "
                         f"another, and '' only alone; got {list(names)!r}")
    pairs = []
    for i, (m, n) in enumerate(zip(modules, names)):
        if n is None:
            continue
        if not hasattr(m, "torch_state_dict"):
            raise InputError(f"names[{i}]: expected None for {type(m).__name__}, which has no PyTorch "
                             f"weights, got {n!r}")
        pairs.append((m, n + "." if n else ""))
    return pairs


def to_torch_state_dict(modules, names):
    """{f"{name}.{key}": ndarray} of every named module, in PyTorch's names and layouts."""
    return {prefix + k: v for m, prefix in _named(modules, names) for k, v in m.torch_state_dict().items()}


def from_torch_state_dict(modules, sd, names):
    """Load a PyTorch state_dict (arrays or tensors) into the named modules; all or nothing."""
    pairs = _named(modules, names)
    if not isinstance(sd, dict):
        raise InputError(f"sd: expected a dict of str -> arrays, got {type(sd).__name__}")
    sd = {k: _numpy(f"sd[{k!r}]", v) for k, v in sd.items()}
    parts = [{k[len(p):]: v for k, v in sd.items() if k.startswith(p)} for _, p in pairs]
    extra = sorted(set(sd) - {p + k for (_, p), part in zip(pairs, parts) for k in part})
    if extra:
        raise StateDictError(f"sd: unexpected keys {extra} (no module is named by their prefix)")
    backup = [m.state_dict() for m, _ in pairs]
    try:
        for (m, p), part in zip(pairs, parts):
            try:
                m.load_torch_state_dict(part)
            except StateDictError as e:
                raise StateDictError(f"{p[:-1] or 'sd'} ({type(m).__name__}): {e}") from None
    except BaseException:
        for (m, _), saved in zip(pairs, backup):  # leave every module as it was
            m.load_state_dict(saved)
        raise
