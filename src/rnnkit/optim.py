"""Optimizers, learning-rate schedules and gradient clipping; the update rules are torch.optim's.

    SGD, Adagrad, RMSprop, Adam, AdamW     update params in place from grads: opt.step()
    StepLR, CosineAnnealing, Warmup,       set opt.lr once per epoch or batch: sched.step(metric)
    ReduceOnPlateau
    clip_grad_norm, clip_grad_value        rescale grads in place before opt.step()

`params` is a Module (its named_parameters()) or an iterable of (name, param, grad) triples. Each
class docstring states its step with g = grad, p = param, t = step count (1 on the first step).
Grads are read, never written: the caller zeroes them (module.zero_grad()).

State, saved without pickle: `arrays, meta = opt.state_dict()` gives flat float arrays keyed
"<state>/<param name>" (e.g. "exp_avg/out.W") and a JSON dict {"type": "Adam", "lr": ...,
"step": ..., <hyperparameters>}; opt.load_state_dict(arrays, meta) restores all of it, so a resumed
run is bitwise the run that never stopped. A schedule's state_dict() is one JSON dict.
"""
import math
import numbers

import numpy as np

from ._checks import check_choice, check_float, check_int, check_real
from .errors import InputError, StateDictError


def _named_triples(params):
    """Checked (name, param, grad) triples from a Module or an iterable of triples."""
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


# -- learning-rate schedules ---------------------------------------------------------------------
class Schedule:
    """Sets optimizer.lr at each step(); `epoch` counts the calls; `base_lr` is the initial lr."""

    state_names = ("epoch", "base_lr")

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise InputError(f"optimizer: expected an rnnkit Optimizer, "
                             f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self, metric=None):
        """Advance one epoch and set the optimizer's lr."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)

    def lr_at(self, epoch):
        raise NotImplementedError

    def state_dict(self):
        """A JSON dict of the schedule's counters (its settings come from the constructor)."""
        return {"type": type(self).__name__, **{k: getattr(self, k) for k in self.state_names}}

    def load_state_dict(self, state):
        """Restore the counters saved by state_dict()."""
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise StateDictError(f"state['type']: expected {type(self).__name__!r}, got {got!r}")
        missing = [k for k in self.state_names if k not in state]
        if missing:
            raise StateDictError(f"state: missing keys {missing}")
        self.epoch = check_int("state['epoch']", state["epoch"], low=0)
        self.base_lr = check_real("state['base_lr']", state["base_lr"], low=0)


class StepLR(Schedule):
    """lr = base_lr · γ^⌊epoch / step_size⌋."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size = check_int("step_size", step_size, low=1)
        self.gamma = check_real("gamma", gamma, low=0, low_open=True)

    def lr_at(self, epoch):
        """The lr after `epoch` steps."""
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealing(Schedule):
    """lr = η_min + (base_lr - η_min) (1 + cos(π epoch / T_max)) / 2  (SGDR, Loshchilov 2017)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max = check_int("T_max", T_max, low=1)
        self.eta_min = check_real("eta_min", eta_min, low=0)

    def lr_at(self, epoch):
        """The lr after `epoch` steps (periodic with period 2 T_max past T_max)."""
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + cos) / 2


class Warmup(Schedule):
    """lr = base_lr (epoch + 1) / W for epoch < W; then `after` sets it (its epoch 0 = our W - 1).

    Create `after` first, on the same optimizer: it reads base_lr from optimizer.lr.
    """

    def __init__(self, optimizer, warmup_steps, after=None):
        super().__init__(optimizer)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=1)
        if after is not None and not (isinstance(after, Schedule) and after.optimizer is optimizer):
            raise InputError(f"after: expected a schedule on the same optimizer, got {after!r:.80}")
        self.after = after
        optimizer.lr = self.lr_at(0)

    def step(self, metric=None):
        """Advance one step: warm up, then hand over to `after` (passing `metric` on)."""
        self.epoch += 1
        if self.epoch < self.warmup_steps or self.after is None:
            self.optimizer.lr = self.lr_at(self.epoch)
        else:
            self.after.step(metric)

    def lr_at(self, epoch):
        """The warm-up lr after `epoch` steps."""
        return self.base_lr * min(epoch + 1, self.warmup_steps) / self.warmup_steps

    def state_dict(self):
        """Counters, with the `after` schedule's state nested."""
        after = None if self.after is None else self.after.state_dict()
        return {**super().state_dict(), "after": after}

    def load_state_dict(self, state):
        """Restore the counters and the `after` schedule's."""
        super().load_state_dict(state)
        if self.after is not None:
            self.after.load_state_dict(state.get("after"))


class ReduceOnPlateau(Schedule):
    """lr = max(lr · factor, min_lr) after more than `patience` epochs without a new best.

    Improving (mode 'min', threshold_mode 'rel'): metric < best (1 - threshold); 'abs':
    metric < best - threshold; mode 'max' mirrors these. After a cut, `cooldown` epochs are not
    counted as bad. Cuts smaller than 1e-8 are skipped. step(metric) needs the metric.
    """

    state_names = ("epoch", "base_lr", "best", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer, factor=0.1, patience=10, threshold=1e-4, mode="min", min_lr=0.0,
                 threshold_mode="rel", cooldown=0):
        super().__init__(optimizer)
        self.factor = check_real("factor", factor, low=0, high=1)
        if self.factor == 1:
            raise InputError("factor: expected a number in [0, 1), got 1.0")
        self.patience = check_int("patience", patience, low=0)
        self.threshold = check_real("threshold", threshold, low=0)
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.min_lr = check_real("min_lr", min_lr, low=0)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.best = None          # no epoch seen yet
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def is_better(self, metric):
        """Whether `metric` improves on the best by more than the threshold."""
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            best = math.inf if self.best is None else self.best
            return metric < (best * (1 - self.threshold) if rel else best - self.threshold)
        best = -math.inf if self.best is None else self.best
        return metric > (best * (1 + self.threshold) if rel else best + self.threshold)

    def step(self, metric=None):
        """Record this epoch's metric; cut the lr after too many epochs without improvement."""
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise InputError(f"metric: expected a number, got {metric!r:.80}")
        metric = float(metric)
        self.epoch += 1
        if self.is_better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            lr = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - lr > 1e-8:
                self.optimizer.lr = lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def load_state_dict(self, state):
        """Restore the counters and the best metric."""
        super().load_state_dict(state)
        best = state["best"]
        self.best = None if best is None else check_real("state['best']", best)
        self.num_bad_epochs = check_int("state['num_bad_epochs']", state["num_bad_epochs"], low=0)
        counter = state["cooldown_counter"]
        self.cooldown_counter = check_int("state['cooldown_counter']", counter, low=0)


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
