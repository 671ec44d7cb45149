"""Optimizers, schedules and clipping against torch.optim; state round trips; argument errors."""
import io
import json

import numpy as np
import pytest

from rnnkit.errors import InputError, StateDictError
from rnnkit.layers.module import Module
from rnnkit.optim import (SGD, Adagrad, Adam, AdamW, CosineAnnealing, ReduceOnPlateau, RMSprop,
                          StepLR, Warmup, clip_grad_norm, clip_grad_value)

SHAPES = [(3, 4), (4,), (2, 3, 2)]

CASES = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (Adagrad, dict(lr=0.1)),
    (Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3,
                   eps=1e-6)),
    (RMSprop, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    (RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (RMSprop, dict(lr=0.01, alpha=0.5, momentum=0.5, centered=True, weight_decay=0.05)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    (Adam, dict(lr=0.01, betas=(0.3, 0.7))),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, betas=(0.85, 0.95), weight_decay=0.3, amsgrad=True)),
]


class Tiny(Module):
    """A module with a few float64 parameters and a child, as a params source."""

    def __init__(self, rng):
        super().__init__()
        self.add_param("W", rng.standard_normal(SHAPES[0]))
        self.add_param("b", rng.standard_normal(SHAPES[1]))
        child = self.add_child("inner", Module())
        child.add_param("U", rng.standard_normal(SHAPES[2]))


def make_triples(seed=0):
    """(name, param, grad) triples of float64 arrays."""
    rng = np.random.default_rng(seed)
    return [(f"p{i}", rng.standard_normal(s), np.zeros(s)) for i, s in enumerate(SHAPES)]


def grad_steps(n, seed=1):
    """n lists of random gradients, one array per parameter."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(n)]


def run(opt, triples, grads):
    """Set each step's grads and step; return copies of the params after each step."""
    history = []
    for gs in grads:
        for (_, _, g), new in zip(triples, gs):
            g[...] = new
        opt.step()
        history.append([p.copy() for _, p, _ in triples])
    return history


def torch_optimizer(torch, cls, kwargs, params):
    """The torch.optim counterpart of an rnnkit optimizer class."""
    return getattr(torch.optim, cls.__name__)(params, **kwargs)


@pytest.mark.parametrize("cls,kwargs", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_matches_torch(cls, kwargs):
    torch = pytest.importorskip("torch")
    triples = make_triples()
    tparams = [torch.tensor(p.copy(), requires_grad=True) for _, p, _ in triples]
    topt = torch_optimizer(torch, cls, kwargs, tparams)
    opt = cls(triples, **kwargs)
    grads = grad_steps(7)
    ours = run(opt, triples, grads)
    for step, gs in enumerate(grads):
        for tp, g in zip(tparams, gs):
            tp.grad = torch.tensor(g)
        topt.step()
        for mine, tp in zip(ours[step], tparams):
            np.testing.assert_allclose(mine, tp.detach().numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls,kwargs", CASES[1::2], ids=lambda c: getattr(c, "__name__", str(c)))
def test_grads_untouched_params_in_place(cls, kwargs):
    m = Tiny(np.random.default_rng(0))
    arrays = [p for _, p, _ in m.named_parameters()]
    before = [p.copy() for p in arrays]
    rng = np.random.default_rng(2)
    for _, _, g in m.named_parameters():
        g[...] = rng.standard_normal(g.shape)
    grads = [g.copy() for _, _, g in m.named_parameters()]
    opt = cls(m, **kwargs)
    opt.step()
    opt.step()
    for (_, p, g), p0, g0, a in zip(m.named_parameters(), before, grads, arrays):
        assert p is a and not np.array_equal(p, p0)
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("cls", [SGD, Adagrad, RMSprop, Adam, AdamW])
def test_float32_stays_float32(cls):
    rng = np.random.default_rng(0)
    triples = [("w", rng.standard_normal((3, 2)).astype(np.float32), np.ones((3, 2), np.float32))]
    opt = cls(triples, lr=0.01)
    opt.step()
    assert triples[0][1].dtype == np.float32
    assert all(a.dtype == np.float32 for a in opt.state_dict()[0].values())
    opt.zero_grad()
    assert not np.any(triples[0][2])


def save_load(arrays, meta):
    """Round trip through np.savez and JSON, with pickling off."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    return loaded, json.loads(json.dumps(meta, allow_nan=False))


@pytest.mark.parametrize("cls,kwargs", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_state_dict_resume_is_bitwise(cls, kwargs):
    grads = grad_steps(6, seed=3)
    triples = make_triples()
    opt = cls(triples, **kwargs)
    run(opt, triples, grads[:3])
    opt.lr = opt.lr * 0.5                         # as a schedule would
    arrays, meta = save_load(*opt.state_dict())
    params_at_3 = [p.copy() for _, p, _ in triples]
    straight = run(opt, triples, grads[3:])[-1]

    resumed = [(n, p, np.zeros_like(p)) for (n, _, _), p in zip(triples, params_at_3)]
    opt2 = cls(resumed, lr=1.0)                   # lr and hyperparameters come from meta
    opt2.load_state_dict(arrays, meta)
    assert opt2.lr == opt.lr and opt2.step_count == 3
    for a, b in zip(straight, run(opt2, resumed, grads[3:])[-1]):
        assert np.array_equal(a, b)


def test_state_dict_format():
    triples = make_triples()
    opt = Adam(triples, lr=0.01, amsgrad=True)
    run(opt, triples, grad_steps(2))
    arrays, meta = opt.state_dict()
    assert set(arrays) == {f"{k}/p{i}" for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
                           for i in range(3)}
    assert meta == {"type": "Adam", "lr": 0.01, "step": 2, "betas": [0.9, 0.999], "eps": 1e-8,
                    "weight_decay": 0.0, "amsgrad": True}
    arrays["exp_avg/p0"][...] = 7                 # copies, not the live state
    assert not np.any(opt.state["p0"]["exp_avg"] == 7)


def test_load_state_dict_errors():
    triples = make_triples()
    arrays, meta = Adam(triples).state_dict()
    with pytest.raises(StateDictError, match="type"):
        SGD(triples, momentum=0.9).load_state_dict(arrays, meta)
    with pytest.raises(StateDictError, match="missing keys"):
        Adam(triples).load_state_dict({k: v for k, v in arrays.items() if "p1" not in k}, meta)
    with pytest.raises(StateDictError, match="exp_avg/p0"):
        Adam(triples).load_state_dict({**arrays, "exp_avg/p0": np.zeros(5)}, meta)
    with pytest.raises(StateDictError, match="step"):
        Adam(triples).load_state_dict(arrays, {k: v for k, v in meta.items() if k != "step"})
    with pytest.raises(InputError, match="betas"):
        Adam(triples).load_state_dict(arrays, {**meta, "betas": [1.5, 0.9]})
    opt = Adam(triples, lr=0.3)
    with pytest.raises(StateDictError, match="unexpected keys"):
        opt.load_state_dict(arrays, {**meta, "amsgrad": True, "lr": 0.7})
    assert opt.lr == 0.3 and not opt.amsgrad      # a failed load changes nothing


# -- schedules ------------------------------------------------------------------------------------
def lr_sequences(torch, make_ours, make_theirs, n, metrics=None):
    """lr after each of n steps from an rnnkit schedule and a torch scheduler."""
    opt = SGD(make_triples(), lr=0.5)
    tparam = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tparam], lr=0.5)
    sched, tsched = make_ours(opt), make_theirs(topt)
    ours, theirs = [opt.lr], [topt.param_groups[0]["lr"]]
    for i in range(n):
        m = None if metrics is None else metrics[i]
        sched.step(m)
        topt.step()
        tsched.step() if m is None else tsched.step(m)
        ours.append(opt.lr)
        theirs.append(topt.param_groups[0]["lr"])
    return np.array(ours), np.array(theirs)


@pytest.mark.parametrize("step_size,gamma", [(1, 0.9), (3, 0.1), (4, 0.5)])
def test_step_lr_matches_torch(step_size, gamma):
    torch = pytest.importorskip("torch")
    ours, theirs = lr_sequences(torch, lambda o: StepLR(o, step_size, gamma),
                                lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("T_max,eta_min", [(10, 0.0), (7, 0.01), (1, 0.1)])
def test_cosine_matches_torch(T_max, eta_min):
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR
    ours, theirs = lr_sequences(torch, lambda o: CosineAnnealing(o, T_max, eta_min),
                                lambda o: sched(o, T_max, eta_min), 3 * T_max + 2)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert ours[T_max] == pytest.approx(eta_min, abs=1e-15)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(factor=0.5, patience=2, threshold=0.01),
    dict(factor=0.5, patience=0, mode="max", min_lr=0.1),
    dict(factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2),
    dict(factor=0.5, patience=1, mode="max", threshold_mode="abs", threshold=0.1, cooldown=1),
])
def test_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    metrics = list(np.cumsum(rng.standard_normal(60)) + 5.0)
    metrics[10] = float("nan")
    ours, theirs = lr_sequences(torch, lambda o: ReduceOnPlateau(o, **kwargs),
                                lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs),
                                len(metrics), metrics)
    np.testing.assert_array_equal(ours, theirs)
    assert ours[-1] < ours[0]                     # the test does reach a cut


def test_warmup_then_after():
    opt = SGD(make_triples(), lr=0.8)
    after = StepLR(opt, step_size=2, gamma=0.5)
    sched = Warmup(opt, 4, after)
    lrs = [opt.lr]
    for _ in range(8):
        sched.step()
        lrs.append(opt.lr)
    assert lrs == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.4, 0.4, 0.2, 0.2], abs=1e-15)
    plain = Warmup(SGD(make_triples(), lr=1.0), 2)
    seq = [plain.optimizer.lr] + [(plain.step(), plain.optimizer.lr)[1] for _ in range(3)]
    assert seq == [0.5, 1.0, 1.0, 1.0]


def test_warmup_passes_metric_on():
    opt = SGD(make_triples(), lr=1.0)
    sched = Warmup(opt, 2, ReduceOnPlateau(opt, factor=0.5, patience=0))
    sched.step()                                  # warm-up ignores the (missing) metric
    for m in (3.0, 4.0, 5.0):
        sched.step(m)
    assert opt.lr == 0.25
    with pytest.raises(InputError, match="metric"):
        sched.step()


def drive(sched, n, metrics):
    """Step a schedule n times; return the optimizer's lr after each step."""
    out = []
    for i in range(n):
        sched.step(metrics[i])
        out.append(sched.optimizer.lr)
    return out


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 3, 0.5),
    lambda o: CosineAnnealing(o, 9, 0.01),
    lambda o: ReduceOnPlateau(o, factor=0.5, patience=1, cooldown=1),
    lambda o: Warmup(o, 4, CosineAnnealing(o, 6)),
    lambda o: Warmup(o, 3, ReduceOnPlateau(o, factor=0.5, patience=0)),
])
def test_schedule_state_round_trip(make):
    metrics = list(np.random.default_rng(5).standard_normal(14) ** 2)
    opt = SGD(make_triples(), lr=0.5)
    sched = make(opt)
    drive(sched, 5, metrics)
    state = json.loads(json.dumps(sched.state_dict(), allow_nan=False))
    opt_meta = opt.state_dict()
    rest = drive(sched, 9, metrics[5:])

    opt2 = SGD(make_triples(), lr=0.5)
    sched2 = make(opt2)
    opt2.load_state_dict(*opt_meta)
    sched2.load_state_dict(state)
    assert drive(sched2, 9, metrics[5:]) == rest


def test_schedule_errors():
    opt = SGD(make_triples(), lr=0.5)
    with pytest.raises(InputError, match="optimizer"):
        StepLR(object(), 2)
    with pytest.raises(InputError, match="step_size"):
        StepLR(opt, 0)
    with pytest.raises(InputError, match="gamma"):
        StepLR(opt, 2, gamma=0)
    with pytest.raises(InputError, match="T_max"):
        CosineAnnealing(opt, 0)
    with pytest.raises(InputError, match="eta_min"):
        CosineAnnealing(opt, 5, eta_min=-1)
    with pytest.raises(InputError, match="warmup_steps"):
        Warmup(opt, 0)
    with pytest.raises(InputError, match="after"):
        Warmup(opt, 3, StepLR(SGD(make_triples(), lr=0.1), 2))
    with pytest.raises(InputError, match="factor"):
        ReduceOnPlateau(opt, factor=1.0)
    with pytest.raises(InputError, match="mode"):
        ReduceOnPlateau(opt, mode="lowest")
    with pytest.raises(InputError, match="patience"):
        ReduceOnPlateau(opt, patience=-1)
    with pytest.raises(InputError, match="metric"):
        ReduceOnPlateau(opt).step()
    with pytest.raises(StateDictError, match="type"):
        StepLR(opt, 2).load_state_dict(CosineAnnealing(opt, 3).state_dict())


# -- clipping -------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    triples = make_triples()
    for (_, _, g), new in zip(triples, grad_steps(1)[0]):
        g[...] = new
    tparams = [torch.zeros(g.shape, dtype=torch.float64) for _, _, g in triples]
    for tp, (_, _, g) in zip(tparams, triples):
        tp.grad = torch.tensor(g)
    norm = clip_grad_norm(triples, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    assert norm == pytest.approx(float(tnorm), rel=1e-14)
    for (_, _, g), tp in zip(triples, tparams):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=0, atol=1e-14)


def test_clip_grad_norm_module_and_nonfinite():
    m = Tiny(np.random.default_rng(0))
    for _, _, g in m.named_parameters():
        g[...] = 2.0
    n = sum(g.size for _, _, g in m.named_parameters())
    assert clip_grad_norm(m, 1.0) == pytest.approx(2.0 * np.sqrt(n), rel=1e-14)
    total = np.sqrt(sum(np.sum(g * g) for _, _, g in m.named_parameters()))
    assert total == pytest.approx(1.0, rel=1e-5)
    m.grads["b"][1] = np.inf
    before = [g.copy() for _, _, g in m.named_parameters()]
    assert clip_grad_norm(m, 1.0) == np.inf
    m.grads["b"][1] = np.nan
    assert np.isnan(clip_grad_norm(m, 1.0))
    for (_, _, g), g0 in zip(m.named_parameters(), before):
        assert np.array_equal(g[np.isfinite(g)], g0[np.isfinite(g0)])   # untouched


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    triples = make_triples()
    for (_, _, g), new in zip(triples, grad_steps(1)[0]):
        g[...] = new
    tparams = [torch.zeros(g.shape, dtype=torch.float64) for _, _, g in triples]
    for tp, (_, _, g) in zip(tparams, triples):
        tp.grad = torch.tensor(g)
    assert clip_grad_value(triples, 0.7) is None
    torch.nn.utils.clip_grad_value_(tparams, 0.7)
    for (_, _, g), tp in zip(triples, tparams):
        assert np.array_equal(g, tp.grad.numpy())
    assert max(np.abs(g).max() for _, _, g in triples) == 0.7


# -- argument errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kwargs,name", [
    (SGD, dict(lr=-0.1), "lr"),
    (SGD, dict(lr=float("nan")), "lr"),
    (SGD, dict(momentum=-0.5), "momentum"),
    (SGD, dict(dampening=1.5), "dampening"),
    (SGD, dict(nesterov=True), "nesterov"),
    (SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (SGD, dict(weight_decay=-1), "weight_decay"),
    (Adagrad, dict(lr_decay=-1), "lr_decay"),
    (Adagrad, dict(eps=0), "eps"),
    (Adagrad, dict(initial_accumulator_value=-1), "initial_accumulator_value"),
    (RMSprop, dict(alpha=1.5), "alpha"),
    (RMSprop, dict(eps=-1e-8), "eps"),
    (RMSprop, dict(centered="yes"), "centered"),
    (Adam, dict(betas=(1.0, 0.999)), "betas\\[0\\]"),
    (Adam, dict(betas=(0.9, -0.1)), "betas\\[1\\]"),
    (Adam, dict(betas=0.9), "betas"),
    (Adam, dict(eps=0.0), "eps"),
    (AdamW, dict(weight_decay=-0.01), "weight_decay"),
    (AdamW, dict(amsgrad=None), "amsgrad"),
])
def test_bad_arguments(cls, kwargs, name):
    with pytest.raises(InputError, match=name):
        cls(make_triples(), **kwargs)


def test_bad_params_and_lr():
    with pytest.raises(InputError, match="params"):
        SGD([])
    with pytest.raises(InputError, match="params\\[0\\]"):
        SGD([np.zeros(3)])
    with pytest.raises(InputError, match="unique"):
        SGD([("w", np.zeros(2), np.zeros(2)), ("w", np.zeros(2), np.zeros(2))])
    with pytest.raises(InputError, match="param 'w'"):
        SGD([("w", np.zeros(2, np.int64), np.zeros(2))])
    with pytest.raises(InputError, match="grad of 'w'"):
        SGD([("w", np.zeros(2), np.zeros(3))])
    with pytest.raises(InputError, match="grad of 'w'"):
        SGD([("w", np.zeros(2), np.zeros(2, np.float32))])
    opt = SGD(make_triples(), lr=0.1)
    with pytest.raises(InputError, match="lr"):
        opt.lr = -1.0
    assert opt.lr == 0.1
    with pytest.raises(InputError, match="max_norm"):
        clip_grad_norm(make_triples(), 0)
    with pytest.raises(InputError, match="clip"):
        clip_grad_value(make_triples(), -1.0)
