"""Learning-rate schedules: each step() sets optimizer.lr; the value sequences are torch's.

    StepLR(opt, step_size, gamma)       lr = base * gamma ** (epoch // step_size)
    CosineAnnealing(opt, T_max, eta_min) lr = eta_min + (base - eta_min)(1 + cos(pi epoch / T_max)) / 2
    Warmup(opt, warmup_steps, after)    lr = base (epoch + 1) / W for the first W steps, then `after`
    ReduceOnPlateau(opt, factor, ...)   lr *= factor after `patience` evaluations without improvement

A schedule's state_dict() is one JSON dict, so a resumed run continues the same sequence.
"""
import math
import numbers

from ._checks import check_choice, check_int, check_real
from .errors import InputError, StateDictError
from .optimizers import Optimizer


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
