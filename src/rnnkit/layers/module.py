"""Module: the base of every layer and model.

A module holds parameters in `params` and their gradients in `grads` (same keys, same shapes) and
child modules in `children`; it never holds activations. The contract every module follows:

    out, cache = m.forward(x, ...)        # cache: whatever backward needs
    dx = m.backward(dout, cache)          # adds parameter gradients into m.grads
    out = m(x, ...)                       # inference: forward without keeping a cache

Parameter names are dotted paths: "encoder.W_x_l0", "out.W". Optimizers update arrays in place,
so a parameter array keeps its identity for the life of the module.
"""
from collections.abc import Mapping

import numpy as np

from ..errors import StateDictError


class Module:
    """Parameters, gradients and child modules; no activations."""

    def __init__(self):
        self.params = {}      # name -> ndarray
        self.grads = {}       # name -> ndarray, same shape as params[name]
        self.children = {}    # name -> Module
        self.training = True

    # -- building -------------------------------------------------------------------------------
    def add_param(self, name, value):
        """Register a parameter (and a zero gradient of the same shape) and return it."""
        value = np.asarray(value)
        if not value.flags.c_contiguous:
            value = value.copy()                       # C order; keeps 0-d shapes (ascontiguousarray would not)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def add_child(self, name, module):
        """Register a child module and return it."""
        self.children[name] = module
        return module

    # -- walking --------------------------------------------------------------------------------
    def named_parameters(self, prefix=""):
        """Yield (dotted name, param, grad) for this module and its children, each array once."""
        seen = set()
        for name, p, g in self._walk(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p, g

    def _walk(self, prefix):
        for k, p in self.params.items():
            yield prefix + k, p, self.grads[k]
        for k, child in self.children.items():
            yield from child._walk(f"{prefix}{k}.")

    def modules(self):
        """Yield this module and every descendant."""
        yield self
        for child in self.children.values():
            yield from child.modules()

    def num_parameters(self):
        """Number of scalar parameters (shared arrays counted once)."""
        return sum(p.size for _, p, _ in self.named_parameters())

    # -- modes and gradients --------------------------------------------------------------------
    def train(self, mode=True):
        """Switch dropout and similar layers to training (True) or evaluation (False) behaviour."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Evaluation mode: no dropout."""
        return self.train(False)

    def zero_grad(self):
        """Set every gradient to zero."""
        for _, _, g in self.named_parameters():
            g[...] = 0

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self, grads=False):
        """A dict of copies of every parameter (or gradient) under its dotted name."""
        return {name: (g if grads else p).copy() for name, p, g in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters in place; missing, extra or misshaped entries raise."""
        if not isinstance(state, Mapping):
            raise StateDictError(f"state_dict: expected a dict of arrays, got {type(state).__name__}")
        mine = {name: p for name, p, _ in self.named_parameters()}
        missing = sorted(set(mine) - set(state))
        extra = sorted(set(state) - set(mine))
        if missing or extra:
            raise StateDictError(f"state_dict: missing keys {missing}, unexpected keys {extra}")
        for name, p in mine.items():
            v = np.asarray(state[name])
            if v.shape != p.shape:
                raise StateDictError(f"state_dict[{name!r}]: expected shape {p.shape}, got {v.shape}")
            if v.dtype.kind not in "fiu":
                raise StateDictError(f"state_dict[{name!r}]: expected numbers, got dtype {v.dtype}")
            p[...] = v

    # -- configuration --------------------------------------------------------------------------
    def set_config(self, **kwargs):
        """Record the constructor arguments (JSON-able; dtypes become their names) for config()."""
        self._config = {k: (np.dtype(v).name if k == "dtype" else v) for k, v in kwargs.items()}

    def config(self):
        """{"type": class name, **constructor arguments}: what rnnkit.models.build needs to rebuild it."""
        if not hasattr(self, "_config"):
            raise NotImplementedError(f"{type(self).__name__} does not record its configuration")
        return {"type": type(self).__name__, **self._config}

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        """Inference: forward without a cache."""
        return self.infer(*args, **kwargs)

    def infer(self, *args, **kwargs):
        """Forward without a cache; subclasses may override with a leaner path."""
        out = self.forward(*args, **kwargs)
        return out[0] if len(out) == 2 else out[:-1]


def load_torch_layout(module, state, mine):
    """Copy a PyTorch-layout dict (NumPy arrays or CPU tensors) into `mine` (key -> (param, transposed?)).

    Every entry is checked (keys, shapes, numeric dtype) before any is copied, so a failed load
    leaves the module unchanged.
    """
    if not isinstance(state, Mapping):
        raise StateDictError(f"state_dict: expected a dict of arrays, got {type(state).__name__}")
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    if missing or extra:
        raise StateDictError(f"state_dict: missing keys {missing}, unexpected keys {extra}"
                             f" for {type(module).__name__}")
    values = []
    for key, (p, transpose) in mine.items():
        v = state[key]
        v = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
        want = p.shape[::-1] if transpose else p.shape
        if v.shape != want:
            raise StateDictError(f"state_dict[{key!r}]: expected shape {want}, got {v.shape}")
        if v.dtype.kind not in "fiu":
            raise StateDictError(f"state_dict[{key!r}]: expected numbers, got dtype {v.dtype}")
        values.append((p, v.T if transpose else v))
    for p, v in values:
        p[...] = v
