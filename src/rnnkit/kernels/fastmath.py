"""tanh and sigmoid for numba kernels: a vectorisable rational approximation in float32, exact in float64.

float32 (the Eigen / ONNX Runtime MLAS minimax rationals, odd numerator over even denominator):
    tanh(x)    ≈ x P(x²) / Q(x²),          x clamped to [-9, 9]      |error| ≤ 4e-7
    sigmoid(x) ≈ 1/2 + x P'(x²) / Q'(x²),  x clamped to [-18, 18]    |error| ≤ 2.2e-7
NaN passes through, as from libm. Only multiplies, adds, one divide and two selects: LLVM turns
the loops that call them into AVX code (≈ 0.5 ns per element, against 10-20 ns for a libm call).
float64 keeps math.tanh and the overflow-free exp form of sigmoid, so float64 results are exact.

The functions dispatch on the argument's type at compile time (numba `overload`); they are called
from kernels compiled with JIT_OPTIONS: error_model="numpy" drops the division-by-zero branch that
would stop vectorisation, cache=True keeps the machine code on disk between runs.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})

_f = np.float32
TANH_P = tuple(_f(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                               5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                               4.89352455891786e-03))          # x^13 ... x^1 (Horner order)
TANH_Q = tuple(_f(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                               4.89352518554385e-03))          # x^6 ... x^0
SIG_P = tuple(_f(v) for v in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                              8.51377133304701e-03, 2.48287947061529e-01))   # x^9 ... x^1
SIG_Q = tuple(_f(v) for v in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                              1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01))


def tanh(x):
    """tanh for numba kernels (dispatches on float32 / float64 when compiled)."""
    return math.tanh(x)


def sigmoid(x):
    """1 / (1 + exp(-x)) for numba kernels (dispatches on float32 / float64 when compiled)."""
    return 1 / (1 + math.exp(-x))


@register_jitable(inline="always")
def _clamp(x, lo, hi):
    y = hi if x > hi else x                 # written so that NaN passes through
    return lo if y < lo else y


def _tanh32(x):
    x = _clamp(x, _f(-9.0), _f(9.0))
    x2 = x * x
    p0, p1, p2, p3, p4, p5, p6 = TANH_P
    q0, q1, q2, q3 = TANH_Q
    p = (((((p0 * x2 + p1) * x2 + p2) * x2 + p3) * x2 + p4) * x2 + p5) * x2 + p6
    q = ((q0 * x2 + q1) * x2 + q2) * x2 + q3
    return x * p / q


def _sigmoid32(x):
    x = _clamp(x, _f(-18.0), _f(18.0))
    x2 = x * x
    p0, p1, p2, p3, p4 = SIG_P
    q0, q1, q2, q3, q4, q5 = SIG_Q
    p = (((p0 * x2 + p1) * x2 + p2) * x2 + p3) * x2 + p4
    q = ((((q0 * x2 + q1) * x2 + q2) * x2 + q3) * x2 + q4) * x2 + q5
    return x * p / q + _f(0.5)


def _tanh64(x):
    return math.tanh(x)


def _sigmoid64(x):
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _is_f32(x):
    return isinstance(x, types.Float) and x.bitwidth == 32


@overload(tanh, inline="always")
def _tanh_impl(x):
    return _tanh32 if _is_f32(x) else _tanh64


@overload(sigmoid, inline="always")
def _sigmoid_impl(x):
    return _sigmoid32 if _is_f32(x) else _sigmoid64
