"""rnnkit.gradcheck: passes right gradients, catches wrong ones, restores inputs, checks modules."""
import numpy as np
import pytest

from rnnkit.errors import InputError, ShapeError
from rnnkit.gradcheck import check_module, gradcheck
from rnnkit.layers.basic import Linear
from rnnkit.layers.module import Module


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x, G = rng.standard_normal((2, 4, 3))                                    # (4, 3) each
    W = rng.standard_normal((3, 2))                                          # (3, 2)
    f = lambda: float(np.sum(np.sin(x) * G) + np.sum(np.tanh(x @ W) ** 2))
    t = np.tanh(x @ W)                                                       # (4, 2)
    dA = 2 * t * (1 - t * t)                                                 # (4, 2)
    return f, {"x": x, "W": W}, {"x": np.cos(x) * G + dA @ W.T, "W": x.T @ dA}


def test_known_gradient_passes():
    f, inputs, analytic = _problem()
    before = {k: v.copy() for k, v in inputs.items()}
    errs = gradcheck(f, inputs, analytic)
    assert set(errs) == {"x", "W"} and max(errs.values()) < 1e-6
    for k in inputs:
        assert np.array_equal(inputs[k], before[k])                          # restored exactly


def test_wrong_gradient_fails_naming_the_worst_coordinate():
    f, inputs, analytic = _problem()
    analytic["W"][2, 1] += 1e-3
    with pytest.raises(AssertionError, match=r"W\[2, 1\].*analytic.*numeric.*1 of 6"):
        gradcheck(f, inputs, analytic)
    analytic["W"][2, 1] -= 1e-3
    analytic["x"] = -analytic["x"]
    with pytest.raises(AssertionError, match=r"x\["):
        gradcheck(f, inputs, analytic)


def test_max_checks_samples_coordinates():
    calls = []
    x = np.random.default_rng(0).standard_normal((50, 40))                   # (50, 40)

    def f():
        calls.append(1)
        return float(np.sum(x ** 3))

    errs = gradcheck(f, {"x": x}, {"x": 3 * x ** 2}, max_checks=7)
    assert len(calls) == 14 and errs["x"] < 1e-6
    bad = 3 * x ** 2
    bad[::2] *= 1.01                                                          # half the rows are wrong
    with pytest.raises(AssertionError):
        gradcheck(f, {"x": x}, {"x": bad}, max_checks=20)


def test_inputs_restored_when_f_raises():
    x = np.arange(3.0)

    def f():
        if x[1] != 1.0:
            raise RuntimeError("boom")
        return float(x.sum())

    with pytest.raises(RuntimeError):
        gradcheck(f, {"x": x}, {"x": np.ones(3)})
    assert np.array_equal(x, np.arange(3.0))


def test_bad_arguments():
    x = np.ones(3)
    with pytest.raises(InputError, match=r"inputs\['x'\].*float64.*float32"):
        gradcheck(lambda: 0.0, {"x": x.astype(np.float32)}, {"x": x})
    with pytest.raises(ShapeError, match=r"analytic\['x'\].*\(3,\).*\(2,\)"):
        gradcheck(lambda: 0.0, {"x": x}, {"x": np.ones(2)})
    with pytest.raises(InputError, match="missing"):
        gradcheck(lambda: 0.0, {"x": x}, {})
    with pytest.raises(InputError, match="eps"):
        gradcheck(lambda: 0.0, {"x": x}, {"x": x}, eps=0)


def test_check_module_linear_passes_and_catches_a_bug():
    lin = Linear(4, 3, dtype=np.float64, seed=1)
    x = np.random.default_rng(2).standard_normal((5, 2, 4))                  # (T, B, D)
    fwd = lambda m, x: m.forward(x)
    bwd = lambda m, d, cache: {"x": m.backward(d[0], cache)}
    errs = check_module(lin, fwd, bwd, {"x": x})
    assert set(errs) == {"W", "b", "x"} and max(errs.values()) < 1e-6

    class Broken(Linear):
        def backward(self, dy, cache):
            dx = super().backward(dy, cache)
            self.grads["b"] *= 1.001
            return dx

    with pytest.raises(AssertionError, match=r"\bb\["):
        check_module(Broken(4, 3, dtype=np.float64), fwd, bwd, {"x": x})
    with pytest.raises(InputError, match="float64"):
        check_module(Linear(4, 3), fwd, bwd, {"x": x.astype(np.float32)})


class _Step(Module):
    """A toy recurrent step: h = tanh(x W + h0), out = 2 h, masked by lengths; returns (out, h, cache)."""

    def __init__(self):
        super().__init__()
        self.W = self.add_param("W", np.random.default_rng(0).standard_normal((3, 2)))

    def forward(self, x, h0, lengths):
        h = np.tanh(x @ self.W + h0)                                         # (B, 2)
        m = (lengths > 0)[:, None]                                           # (B, 1)
        return 2 * h * m, h, (x, h, m)

    def backward(self, dout, cache, dh):
        x, h, m = cache
        da = (2 * dout * m + dh) * (1 - h * h)                               # (B, 2)
        self.grads["W"] += x.T @ da
        return da @ self.W.T, da


def test_check_module_with_several_outputs_and_a_non_float_input():
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal((4, 3)), "h0": rng.standard_normal((4, 2)),
              "lengths": np.array([1, 0, 2, 1])}
    errs = check_module(_Step(), lambda m, x, h0, lengths: m.forward(x, h0, lengths),
                        lambda m, d, cache: dict(zip(("x", "h0"), m.backward(d[0], cache, d[1]))),
                        inputs)
    assert set(errs) == {"W", "x", "h0"} and max(errs.values()) < 1e-6
    with pytest.raises(AssertionError, match="h0"):                          # dstate dropped
        check_module(_Step(), lambda m, x, h0, lengths: m.forward(x, h0, lengths),
                     lambda m, d, cache: dict(zip(("x", "h0"), m.backward(d[0], cache, 0 * d[1]))),
                     inputs)
