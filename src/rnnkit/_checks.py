"""Argument checks shared by every module: each error names the argument, the expected and the actual value."""
import numbers

import numpy as np

from .errors import DTypeError, InputError, ShapeError


def check_array(name, x, ndim=None, dtype=None, shape=None):
    """Return x as an ndarray after checking ndim, dtype and shape (None in `shape` means any size)."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)) or np.isscalar(x):
            try:
                x = np.asarray(x)
            except (ValueError, TypeError):
                raise ShapeError(f"{name}: expected a rectangular array, got a ragged nested "
                                 f"{type(x).__name__}") from None
        else:
            raise DTypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ShapeError(f"{name}: expected a {ndim}-d array, got shape {x.shape}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise DTypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {x.dtype.name}"
                         f" (convert with .astype(np.{np.dtype(dtype).name}))")
    if shape is not None:
        want = tuple(shape)
        if len(want) != x.ndim or any(w is not None and w != s for w, s in zip(want, x.shape)):
            pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
            raise ShapeError(f"{name}: expected shape {pretty}, got {x.shape}")
    return x


def check_float(name, x, dtype, ndim=None, shape=None):
    """Check a floating-point array of exactly `dtype`."""
    x = check_array(name, x, ndim=ndim, shape=shape)
    if x.dtype != np.dtype(dtype):
        kind = "an integer" if x.dtype.kind in "iub" else x.dtype.name
        raise DTypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {kind} array"
                         f" (convert with .astype(np.{np.dtype(dtype).name}))")
    return x


def check_int_array(name, x, low, high, ndim=None, shape=None):
    """Check an integer array with every value in [low, high)."""
    x = check_array(name, x, ndim=ndim, shape=shape)
    if x.dtype.kind not in "iu":
        if x.dtype.kind == "f" and x.size and np.all(np.isfinite(x)) and np.all(x == np.round(x)):
            x = x.astype(np.int64)
        elif x.size == 0:
            x = x.astype(np.int64)
        else:
            raise DTypeError(f"{name}: expected integers, got dtype {x.dtype.name}")
    if x.size:
        lo, hi = int(x.min()), int(x.max())
        if lo < low or hi >= high:
            raise InputError(f"{name}: expected values in [{low}, {high - 1}], got min {lo}, max {hi}")
    return x


def check_int(name, v, low=None, high=None):
    """Check a Python integer in [low, high] (inclusive; None = unbounded)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise InputError(f"{name}: expected an integer, got {v!r}")
    v = int(v)
    if (low is not None and v < low) or (high is not None and v > high):
        rng = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise InputError(f"{name}: expected an integer in {rng}, got {v}")
    return v


def check_real(name, v, low=None, high=None, low_open=False):
    """Check a finite real number in [low, high] (or (low, high] when low_open)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
        raise InputError(f"{name}: expected a finite number, got {v!r}")
    v = float(v)
    if low is not None and (v < low or (low_open and v == low)):
        raise InputError(f"{name}: expected a number {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and v > high:
        raise InputError(f"{name}: expected a number <= {high}, got {v}")
    return v


def check_choice(name, v, choices):
    """Check that v is one of `choices`."""
    if v not in choices:
        raise InputError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {v!r}")
    return v


def check_dtype(name, dtype):
    """Accept float32 or float64 (as a numpy dtype, type or name) and return the np.dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{name}: expected float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"{name}: expected float32 or float64, got {dt.name}")
    return dt


def check_file_path(name, path):
    """path as a str naming an existing file, else InputError naming the argument."""
    import os
    try:
        path = os.fspath(path)
    except TypeError:
        raise InputError(f"{name}: expected a str or os.PathLike, got {type(path).__name__}") from None
    if not os.path.isfile(path):
        raise InputError(f"{name}: no such file {path!r}")
    return path
