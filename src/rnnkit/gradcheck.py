"""Finite-difference gradient checks for analytic backward passes.

For every checked coordinate i of an array x, the central difference

    n_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

is compared with the analytic gradient a_i by

    err_i = |a_i - n_i| / max(|a_i|, |n_i|, atol / rtol)

and the check fails when err_i > rtol, i.e. when |a_i - n_i| > max(atol, rtol * max(|a_i|, |n_i|)).
Checks run in float64 only: float32 round-off swamps a central difference. For a loss of many
terms, round-off in f grows with its size; eps=1e-5 then gives a cleaner difference.

check_module wraps a Module: it draws a random upstream gradient G for each output (never all
ones, so that errors cannot cancel), takes the loss L = Σ out * G, and checks every parameter
and every input the backward pass returns a gradient for.
"""
import numpy as np

from ._checks import check_int, check_real
from .errors import DTypeError, InputError, ShapeError


def _check_arrays(inputs, analytic):
    """Every input is a float64 array with an analytic gradient of its shape."""
    for name, x in inputs.items():
        if not isinstance(x, np.ndarray) or x.dtype != np.float64:
            got = x.dtype.name if isinstance(x, np.ndarray) else type(x).__name__
            raise DTypeError(f"inputs[{name!r}]: expected a float64 array (gradient checks run in"
                             f" float64), got {got}")
        if name not in analytic:
            raise InputError(f"analytic: missing the gradient of {name!r}")
        if np.shape(analytic[name]) != x.shape:
            raise ShapeError(f"analytic[{name!r}]: expected shape {x.shape}, got {np.shape(analytic[name])}")
    extra = sorted(set(analytic) - set(inputs))
    if extra:
        raise InputError(f"analytic: unexpected keys {extra} (not in inputs)")


def _numeric(f, x, flat_idx, eps):
    """Central differences of f at the flat indices of x, perturbing x in place and restoring it."""
    n = np.empty(len(flat_idx))                                              # (K,)
    for k, i in enumerate(flat_idx):
        idx = np.unravel_index(i, x.shape)
        orig = x[idx]
        try:
            x[idx] = orig + eps
            fp = float(f())
            x[idx] = orig - eps
            fm = float(f())
        finally:
            x[idx] = orig
        n[k] = (fp - fm) / (2 * eps)
    return n


def gradcheck(f, inputs, analytic, eps=1e-6, rtol=1e-6, atol=1e-8, max_checks=None, seed=0):
    """Compare analytic gradients with central differences of the scalar f(); returns name -> max error."""
    eps = check_real("eps", eps, low=0.0, low_open=True)
    rtol = check_real("rtol", rtol, low=0.0, low_open=True)
    atol = check_real("atol", atol, low=0.0)
    if max_checks is not None:
        max_checks = check_int("max_checks", max_checks, low=1)
    _check_arrays(inputs, analytic)
    rng = np.random.default_rng(seed)
    errors, failures = {}, []
    for name, x in inputs.items():
        if max_checks is None or max_checks >= x.size:
            flat_idx = np.arange(x.size)                                     # (K,)
        else:
            flat_idx = np.sort(rng.choice(x.size, size=max_checks, replace=False))  # (K,)
        a = np.asarray(analytic[name], dtype=np.float64).reshape(-1)[flat_idx]  # (K,)
        n = _numeric(f, x, flat_idx, eps)                                    # (K,)
        err = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), atol / rtol)  # (K,)
        errors[name] = float(err.max()) if err.size else 0.0
        if err.size and not errors[name] <= rtol:
            k = int(np.nanargmax(err)) if not np.isnan(err).all() else 0
            idx = tuple(int(i) for i in np.unravel_index(flat_idx[k], x.shape))
            bad = int(np.sum(~(err <= rtol)))
            failures.append(f"{name}{list(idx)}: analytic {a[k]:.10g}, numeric {n[k]:.10g},"
                            f" error {err[k]:.3g} > rtol {rtol:g} ({bad} of {err.size} checked failed)")
    if failures:
        raise AssertionError("gradient check failed:\n  " + "\n  ".join(failures))
    return errors


def _like(out, rng):
    """A random upstream gradient with the structure of `out` (tuples, arrays, None)."""
    if isinstance(out, (tuple, list)):
        return tuple(_like(o, rng) for o in out)
    if isinstance(out, np.ndarray) and out.dtype.kind == "f":
        return rng.standard_normal(out.shape).astype(out.dtype)              # same shape as out
    return None


def _dot(out, G):
    """Σ out * G over every array of a (possibly nested) output."""
    if isinstance(out, (tuple, list)):
        return sum(_dot(o, g) for o, g in zip(out, G))
    return 0.0 if G is None else float(np.sum(out * G))


def check_module(module, forward_fn, backward_fn, inputs, seed=0, **tol):
    """Gradcheck every parameter of `module` and every input backward_fn returns a gradient for.

    forward_fn(module, **inputs) -> (out_1, ..., out_k, cache), as Module.forward returns;
    backward_fn(module, douts, cache) -> {input name: gradient} (or None), douts = (dout_1, ..., dout_k).
    Parameters are named as in module.named_parameters(), inputs by their keys; `tol` goes to
    gradcheck (eps, rtol, atol, max_checks). The module must be float64 and deterministic (eval()
    for dropout). Returns gradcheck's name -> max error. Example:

        lin = Linear(3, 2, dtype=np.float64)
        check_module(lin, lambda m, x: m.forward(x),
                     lambda m, d, cache: {"x": m.backward(d[0], cache)},
                     {"x": np.random.default_rng(0).standard_normal((4, 3))})

        # a recurrent layer: forward(x, state, lengths) -> (out, state, cache),
        # backward(dout, cache, dstate) -> (dx, dstate)
        check_module(rnn, lambda m, x, h0, lengths: m.forward(x, h0, lengths),
                     lambda m, d, cache: dict(zip(("x", "h0"), m.backward(d[0], cache, d[1]))),
                     {"x": x, "h0": h0, "lengths": lengths})
    """
    rng = np.random.default_rng(seed)
    module.zero_grad()
    *outs, cache = forward_fn(module, **inputs)
    G = _like(tuple(outs), rng)
    dins = backward_fn(module, G, cache)
    arrays, analytic = {}, {}
    for name, p, g in module.named_parameters():
        arrays[name], analytic[name] = p, g.copy()
    for name, d in (dins or {}).items():
        if d is None:
            continue
        if name in arrays or name not in inputs:
            raise InputError(f"backward_fn: gradient {name!r} is a parameter name or not an input"
                             f" (inputs: {sorted(inputs)})")
        arrays[name], analytic[name] = inputs[name], np.array(d)

    def loss():
        *o, _ = forward_fn(module, **inputs)
        return _dot(tuple(o), G)

    return gradcheck(loss, arrays, analytic, seed=seed, **tol)
