"""Synthetic sequence tasks with known answers and known baselines; every generator is seeded.

Adding problem (Hochreiter & Schmidhuber 1997; the form of Le, Jaitly & Hinton 2015):
    x (T, N, 2): x[t, :, 0] ~ U[0, 1]; x[:, :, 1] is 0 except one 1 in t < T/2 and one in t >= T/2.
    y (N, 1) = sum of the two marked values. Baseline: always predicting the mean 1 gives
    MSE = Var(u1 + u2) = 2/12 ~ 0.167; a model that solves the task gets far below 0.01.
Copy task (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016):
    ids 0 = blank, 1..K = symbols, K+1 = delimiter; T = delay + 2 n_copy. The input holds n_copy
    random symbols, blanks, the delimiter at t = n_copy + delay - 1, then blanks; the target is blank
    except its last n_copy steps, which repeat the symbols. Baseline: blanks, then uniform guesses
    on the last n_copy steps, gives cross-entropy n_copy ln(K) / T per step.
Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a):
    ids 0..3 = distractors a b c d, 4 = X, 5 = Y, 6 = B (start), 7 = E (end). B at t = 0, E at
    t = T-1, one X or Y at t1 in [0.1 T, 0.2 T] and one at t2 in [0.5 T, 0.6 T], distractors
    elsewhere. Class = 2 [s1 == Y] + [s2 == Y]: XX 0, XY 1, YX 2, YY 3. Baseline: 25% accuracy,
    cross-entropy ln 4 ~ 1.386.
Sine mixtures: s_t = sum_k a_k sin(2 pi f_k t + phi_k) + noise * eps_t, with a_k ~ U[0.5, 1] / K,
    f_k ~ U[freq_range] (cycles per step), phi_k ~ U[0, 2 pi), eps_t ~ N(0, 1), per sequence.
    Baselines for next-step prediction: predicting 0 gives MSE sum_k a_k^2 / 2 + noise^2;
    repeating the last value gives MSE ~ sum_k a_k^2 (1 - cos 2 pi f_k) + 2 noise^2.
Mackey-Glass (Mackey & Glass 1977): dx/dt = beta x(t - tau) / (1 + x(t - tau)^p) - gamma x(t),
    beta 0.2, gamma 0.1, p 10, tau 17 (chaotic). Integrated by RK4 with a fixed step dt; the delayed
    value at half steps is the mean of its grid neighbours. The history on [-tau, 0] is
    x0 + 0.02 U[-1, 1] (seeded, so seeds give different trajectories); the first `discard` time
    units are dropped, then one value is kept every `sample_every` time units. The series stays in
    about [0.2, 1.4]. Baseline: repeating the last value.
"""
import numpy as np

from .._checks import check_dtype, check_int, check_real
from ..errors import InputError


def rng_from_seed(seed):
    """A np.random.Generator from a non-negative integer seed."""
    return np.random.default_rng(check_int("seed", seed, low=0))


def make_adding(n, T=100, seed=0, dtype=np.float32):
    """Adding problem: inputs x (T, N, 2) and targets y (N, 1); mean-guess MSE ~ 0.167."""
    n, T = check_int("n", n, low=1), check_int("T", T, low=2)
    dtype = check_dtype("dtype", dtype)
    rng = rng_from_seed(seed)
    x = np.zeros((T, n, 2), dtype=dtype)                           # (T, N, 2)
    x[:, :, 0] = rng.uniform(0.0, 1.0, size=(T, n))
    half = T // 2
    t1 = rng.integers(0, half, size=n)                             # (N,)
    t2 = rng.integers(half, T, size=n)                             # (N,)
    cols = np.arange(n)
    x[t1, cols, 1] = 1.0
    x[t2, cols, 1] = 1.0
    y = (x[t1, cols, 0] + x[t2, cols, 0])[:, None].astype(dtype)   # (N, 1)
    return x, y


def make_copy(n, n_copy=10, delay=20, n_symbols=8, seed=0):
    """Copy task: input ids (T, N) and target ids (T, N), T = delay + 2 n_copy, vocabulary K + 2."""
    n, n_copy = check_int("n", n, low=1), check_int("n_copy", n_copy, low=1)
    delay, K = check_int("delay", delay, low=1), check_int("n_symbols", n_symbols, low=1)
    rng = rng_from_seed(seed)
    T = delay + 2 * n_copy
    symbols = rng.integers(1, K + 1, size=(n_copy, n))             # (n_copy, N)
    x = np.zeros((T, n), dtype=np.int64)                           # (T, N)
    y = np.zeros((T, n), dtype=np.int64)                           # (T, N)
    x[:n_copy] = symbols
    x[n_copy + delay - 1] = K + 1
    y[T - n_copy:] = symbols
    return x, y


def make_temporal_order(n, T=100, seed=0):
    """Temporal order: ids (T, N) over 8 symbols and the class (N,) in 0..3 of the X/Y order."""
    n, T = check_int("n", n, low=1), check_int("T", T, low=20)
    rng = rng_from_seed(seed)
    x = rng.integers(0, 4, size=(T, n))                            # (T, N) distractors
    x[0], x[T - 1] = 6, 7
    t1 = rng.integers(T // 10, T // 5 + 1, size=n)                 # (N,)
    t2 = rng.integers(T // 2, (6 * T) // 10 + 1, size=n)           # (N,)
    s1, s2 = rng.integers(0, 2, size=n), rng.integers(0, 2, size=n)  # 0 = X, 1 = Y
    cols = np.arange(n)
    x[t1, cols], x[t2, cols] = 4 + s1, 4 + s2
    return x.astype(np.int64), (2 * s1 + s2).astype(np.int64)


def make_sine_mixture(n, T=200, n_components=3, freq_range=(0.01, 0.1), noise=0.05, seed=0,
                      dtype=np.float32):
    """N noisy sums of K sines of random frequency, phase and amplitude: series (T, N)."""
    n, T = check_int("n", n, low=1), check_int("T", T, low=1)
    K = check_int("n_components", n_components, low=1)
    noise, dtype = check_real("noise", noise, low=0.0), check_dtype("dtype", dtype)
    if (not isinstance(freq_range, (tuple, list)) or len(freq_range) != 2
            or not 0 <= freq_range[0] <= freq_range[1] <= 0.5):
        raise InputError(f"freq_range: expected (low, high) with 0 <= low <= high <= 0.5 "
                         f"cycles per step, got {freq_range!r}")
    rng = rng_from_seed(seed)
    a = rng.uniform(0.5, 1.0, size=(K, n)) / K                     # (K, N)
    f = rng.uniform(freq_range[0], freq_range[1], size=(K, n))     # (K, N)
    phi = rng.uniform(0.0, 2 * np.pi, size=(K, n))                 # (K, N)
    t = np.arange(T, dtype=np.float64)[:, None, None]              # (T, 1, 1)
    s = (a * np.sin(2 * np.pi * f * t + phi)).sum(axis=1)          # (T, N)
    s += noise * rng.standard_normal(size=(T, n))
    return s.astype(dtype)


def _steps(name, value, dt):
    """value / dt as a whole number of steps, or an InputError."""
    k = int(round(value / dt))
    if k < 1 or abs(k * dt - value) > 1e-9 * max(1.0, value):
        raise InputError(f"{name}: expected a positive multiple of dt={dt}, got {value}")
    return k


def make_mackey_glass(n, tau=17.0, beta=0.2, gamma=0.1, power=10.0, dt=0.1, sample_every=1.0,
                      x0=1.2, discard=500.0, seed=0):
    """Mackey-Glass series (N,) float64, one value every `sample_every` time units."""
    n = check_int("n", n, low=1)
    dt = check_real("dt", dt, low=0.0, low_open=True)
    for name, v in (("beta", beta), ("gamma", gamma), ("power", power), ("x0", x0)):
        check_real(name, v, low=0.0, low_open=True)
    check_real("discard", discard, low=0.0)
    d = _steps("tau", check_real("tau", tau, low=0.0, low_open=True), dt)
    s = _steps("sample_every", check_real("sample_every", sample_every, low=0.0, low_open=True), dt)
    skip = int(round(discard / dt))
    rng = rng_from_seed(seed)
    x = list(x0 + 0.02 * rng.uniform(-1.0, 1.0, size=d + 1))       # grid t = -tau .. 0

    def f(xt, xd):
        return beta * xd / (1.0 + xd ** power) - gamma * xt

    for _ in range(skip + n * s):
        xt, xd0, xd1 = x[-1], x[-1 - d], x[-d]                     # x(t), x(t - tau), x(t - tau + dt)
        xdh = 0.5 * (xd0 + xd1)                                    # x(t - tau + dt/2)
        k1 = f(xt, xd0)
        k2 = f(xt + 0.5 * dt * k1, xdh)
        k3 = f(xt + 0.5 * dt * k2, xdh)
        k4 = f(xt + dt * k3, xd1)
        x.append(xt + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))
    series = np.array(x[d + 1 + skip:], dtype=np.float64)          # (n s,)
    return series[s - 1::s].copy()                                 # (N,)
