"""Optimizers and gradient clipping; the update rules are torch.optim's.

    SGD, Adagrad, RMSprop, Adam, AdamW     update params in place from grads: opt.step()
    clip_grad_norm, clip_grad_value        rescale grads in place before opt.step()

`params` is a Module (its named_parameters()) or an iterable of (name, param, grad) triples. Each
class docstring states its step with g = grad, p = param, t = step count (1 on the first step).
Grads are read, never written: the caller zeroes them (module.zero_grad()).

State, saved without pickle: `arrays, meta = opt.state_dict()` gives flat float arrays keyed
"<state>/<param name>" (e.g. "exp_avg/out.W") and a JSON dict {"type": "Adam", "lr": ...,
"step": ..., <hyperparameters>}; opt.load_state_dict(arrays, meta) restores all of it, so a resumed
run is bitwise the run that never stopped.
"""
import math

import numpy as np

from ._checks import check_choice, check_float, check_int, check_real
from .errors import InputError, StateDictError


def _named_triples(params):
    """Checked (name, param, grad) triples from a Module or an iterable of triples."""
    if not hasattr(params, "named_parameters") and (isinstance(params, (str, bytes, dict))
                                                    or not hasattr(params, "__iter__")):
        raise InputError(f"params: expected a Module or an iterable of (name, param, grad) triples, "
                         f"got {type(params).__name__}")
    triples = list(params.named_parameters() if hasattr(params, "named_parameters") else params)
    if not triples:
        raise InputError("params: expected at least one (name, param, grad) triple, got none")
    names = set()
    for i, t in enumerate(triples):
        if not (isinstance(t, (tuple, list)) and len(t) == 3 and isinstance(t[0], str)):
            raise InputError(f"params[{i}]: expected a (name, param, grad) triple, got {t!r:.80}")
        name, p, g = t
        if name in names:
            raise InputError(f"params[{i}]: expected unique names, got {name!r} twice")
        names.add(name)
        if not (isinstance(p, np.ndarray) and p.dtype in (np.float32, np.float64)):
            raise InputError(f"param {name!r}: expected a float32 or float64 array, got {p!r:.80}")
        check_float(f"grad of {name!r}", g, p.dtype, shape=p.shape)
    return [tuple(t) for t in triples]


class Optimizer:
    """The params, the learning rate `lr`, the step count and per-parameter state arrays."""

    hyper_names = ()      # hyperparameters saved in meta and restored by load_state_dict

    def __init__(self, params, lr):
        self.params = _named_triples(params)
        self.lr = lr
        self.step_count = 0
        self.state = {name: {} for name, _, _ in self.params}   # name -> {state name: array}

    @property
    def lr(self):
        """The learning rate; schedules set it."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_real("lr", value, low=0)

    def _add_state(self, key, fill=0.0):
        """Allocate one state array per parameter, like the parameter, filled with `fill`."""
        for name, p, _ in self.params:
            self.state[name][key] = np.full_like(p, fill)     # p.shape

    def step(self):
        """Update every parameter in place from its gradient."""
        self.step_count += 1
        for name, p, g in self.params:
            self._update(p, g, self.state[name])

    def _update(self, p, g, s):
        raise NotImplementedError

    def zero_grad(self):
        """Set every gradient to zero (for params given as triples rather than a Module)."""
        for _, _, g in self.params:
            g[...] = 0

    def state_dict(self):
        """(arrays, meta): copies of the state arrays keyed "<state>/<param>", and a JSON dict."""
        arrays = {f"{k}/{name}": a.copy() for name, s in self.state.items() for k, a in s.items()}
        meta = {"type": type(self).__name__, "lr": self.lr, "step": self.step_count}
        meta.update({k: getattr(self, k) for k in self.hyper_names})
        return arrays, meta

    def load_state_dict(self, arrays, meta):
        """Restore lr, step count, hyperparameters and state arrays saved by state_dict()."""
        if not isinstance(meta, dict) or meta.get("type") != type(self).__name__:
            got = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
            raise StateDictError(f"meta['type']: expected {type(self).__name__!r}, got {got!r}")
        if not isinstance(arrays, dict):
            raise StateDictError(f"arrays: expected a dict of state arrays, got {type(arrays).__name__}")
        missing = [k for k in ("lr", "step", *self.hyper_names) if k not in meta]
        if missing:
            raise StateDictError(f"meta: missing keys {missing}")
        hyper = {k: meta[k] for k in self.hyper_names}
        fresh = type(self)(self.params, meta["lr"], **hyper)   # validates values, lays out state
        want = fresh.state_dict()[0]
        if set(want) != set(arrays):
            raise StateDictError(f"arrays: missing keys {sorted(set(want) - set(arrays))}, "
                                 f"unexpected keys {sorted(set(arrays) - set(want))}")
        for key, w in want.items():
            v = np.asarray(arrays[key])
            if v.shape != w.shape or v.dtype.kind != "f":
                raise StateDictError(f"arrays[{key!r}]: expected a float array of shape {w.shape}, "
                                     f"got {v.dtype.name} of shape {v.shape}")
            kind, name = key.split("/", 1)
            fresh.state[name][kind][...] = v
        fresh.step_count = check_int("meta['step']", meta["step"], low=0)
        self.__dict__.update(fresh.__dict__)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum μ, dampening τ, weight decay λ.

        g = g + λ p
        b = g  (t = 1),   b = μ b + (1 - τ) g  (t > 1)      when μ != 0
        g = g + μ b  (nesterov),   g = b  (otherwise)       when μ != 0
        p = p - lr g
    """

    hyper_names = ("momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr=0.001, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = check_real("momentum", momentum, low=0)
        self.dampening = check_real("dampening", dampening, low=0, high=1)
        self.nesterov = check_choice("nesterov", nesterov, (False, True))
        self.weight_decay = check_real("weight_decay", weight_decay, low=0)
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise InputError(f"nesterov: expected momentum > 0 and dampening = 0, "
                             f"got momentum {self.momentum}, dampening {self.dampening}")
        if self.momentum:
            self._add_state("momentum_buffer")

    def _update(self, p, g, s):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            b = s["momentum_buffer"]
            if self.step_count == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p -= self.lr * g


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) with learning-rate decay η and weight decay λ.

        g = g + λ p
        lr_t = lr / (1 + (t - 1) η)
        s = s + g²                                          (s starts at initial_accumulator_value)
        p = p - lr_t g / (√s + ε)
    """

    hyper_names = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr)
        self.lr_decay = check_real("lr_decay", lr_decay, low=0)
        self.weight_decay = check_real("weight_decay", weight_decay, low=0)
        self.initial_accumulator_value = check_real(
            "initial_accumulator_value", initial_accumulator_value, low=0)
        self.eps = check_real("eps", eps, low=0, low_open=True)
        self._add_state("sum", self.initial_accumulator_value)

    def _update(self, p, g, s):
        if self.weight_decay:
            g = g + self.weight_decay * p
        lr_t = self.lr / (1 + (self.step_count - 1) * self.lr_decay)
        s["sum"] += g * g
        p -= lr_t * (g / (np.sqrt(s["sum"]) + self.eps))


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012) with smoothing α, momentum μ, weight decay λ, optionally centered.

        g = g + λ p
        v = α v + (1 - α) g²
        m = α m + (1 - α) g,  d = √(v - m²) + ε   (centered),    d = √v + ε  (otherwise)
        b = μ b + g / d,  p = p - lr b   (μ > 0),       p = p - lr g / d  (otherwise)
    """

    hyper_names = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, lr)
        self.alpha = check_real("alpha", alpha, low=0, high=1)
        self.eps = check_real("eps", eps, low=0, low_open=True)
        self.weight_decay = check_real("weight_decay", weight_decay, low=0)
        self.momentum = check_real("momentum", momentum, low=0)
        self.centered = check_choice("centered", centered, (False, True))
        self._add_state("square_avg")
        if self.centered:
            self._add_state("grad_avg")
        if self.momentum:
            self._add_state("momentum_buffer")

    def _update(self, p, g, s):
        a = self.alpha
        if self.weight_decay:
            g = g + self.weight_decay * p
        v = s["square_avg"]
        v *= a
        v += (1 - a) * g * g
        if self.centered:
            m = s["grad_avg"]
            m += (1 - a) * (g - m)                       # m = α m + (1 - α) g
            d = np.sqrt(v - m * m) + self.eps
        else:
            d = np.sqrt(v) + self.eps
        if self.momentum:
            b = s["momentum_buffer"]
            b *= self.momentum
            b += g / d
            p -= self.lr * b
        else:
            p -= self.lr * (g / d)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with L2 weight decay λ added to the gradient, optionally AMSGrad.

        g = g + λ p
        m = β1 m + (1 - β1) g
        v = β2 v + (1 - β2) g²
        v̂ = max(v̂, v)  (amsgrad),   v̂ = v  (otherwise)
        p = p - lr / (1 - β1^t) · m / (√v̂ / √(1 - β2^t) + ε)
    """

    hyper_names = ("betas", "eps", "weight_decay", "amsgrad")
    decoupled = False     # AdamW: decay p directly instead of adding λ p to g

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise InputError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        b1 = check_real("betas[0]", betas[0], low=0)
        b2 = check_real("betas[1]", betas[1], low=0)
        for i, b in enumerate((b1, b2)):
            if b >= 1:
                raise InputError(f"betas[{i}]: expected a number in [0, 1), got {b}")
        self.betas = [b1, b2]
        self.eps = check_real("eps", eps, low=0, low_open=True)
        self.weight_decay = check_real("weight_decay", weight_decay, low=0)
        self.amsgrad = check_choice("amsgrad", amsgrad, (False, True))
        self._add_state("exp_avg")
        self._add_state("exp_avg_sq")
        if self.amsgrad:
            self._add_state("max_exp_avg_sq")

    def _update(self, p, g, s):
        (b1, b2), t = self.betas, self.step_count
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m, v = s["exp_avg"], s["exp_avg_sq"]
        m += (1 - b1) * (g - m)                          # m = β1 m + (1 - β1) g
        v *= b2
        v += (1 - b2) * g * g
        if self.amsgrad:
            v = np.maximum(s["max_exp_avg_sq"], v, out=s["max_exp_avg_sq"])
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        p -= self.lr / (1 - b1 ** t) * (m / denom)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay λ.

        p = p (1 - lr λ)
        then Adam's step with λ = 0.
    """

    decoupled = True

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


# -- gradient clipping ---------------------------------------------------------------------------
def clip_grad_norm(params, max_norm):
    """Scale all grads by max_norm / (‖g‖ + 1e-6) when that is < 1; return the global norm ‖g‖.

    A non-finite norm is returned without touching the grads, so the caller can skip the step.
    """
    max_norm = check_real("max_norm", max_norm, low=0, low_open=True)
    grads = [g for _, _, g in _named_triples(params)]
    norm = math.hypot(*(float(np.linalg.norm(g.ravel())) for g in grads))
    coef = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and coef < 1:
        for g in grads:
            g *= coef
    return norm


def clip_grad_value(params, clip):
    """Clamp every gradient element to [-clip, clip] in place."""
    clip = check_real("clip", clip, low=0, low_open=True)
    for _, _, g in _named_triples(params):
        np.clip(g, -clip, clip, out=g)
