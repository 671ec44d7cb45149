"""Sampling from a model one step at a time: temperature, top-k, top-p (nucleus), greedy; priming.

For logits z (B, V), the distribution sampled is

    p = softmax(z / T)                                 temperature T > 0; T = 0 is greedy: argmax z
    top-k:  p_v = 0 unless v is among the k largest z (ties: the lower id first), renormalised
    top-p:  sort p descending; keep the smallest prefix whose mass is >= top_p (always the first),
            p_v = 0 for the rest, renormalised (Holtzman et al., 2020). top-k applies first.

Logits may hold -inf (a forbidden id) but not NaN or +inf, and each row needs a finite entry.
A draw is the inverse CDF of one uniform number per row, so a seeded Generator repeats its samples.
Plain temperature sampling (T > 0, no top-k, no top-p) skips the sort: id = the first v with
e_0 + ... + e_v > u (e_0 + ... + e_{V-1}), e = exp((z - max z) / T), one fused pass (numba when
present); the same distribution and the same inverse CDF as the general path.

A step function carries the recurrent state, so one generated token costs one step, never a
recomputation of the prefix:

    step_fn(ids (B,) int64, state) -> (logits (B, V), state)        state None = the initial one

prime(step_fn, prompt (T, B)) feeds a prompt and returns (state, logits of its last step);
generate(step_fn, state, first_ids, max_len) feeds first_ids, then each sampled token back in.
To continue a prompt: state, _ = prime(step_fn, prompt[:-1]); generate(step_fn, state, prompt[-1], n).
Given a model's own step (model.step of a model with generation_step(), e.g. ManyToMany), prime
and generate run the model's generation plan instead: the same results, built once per call.
"""
import functools
import math

import numpy as np

from ._checks import check_array, check_int, check_int_array, check_real
from .errors import InputError, NonFiniteError, ShapeError


def _check_logits(logits):
    """Float logits (B, V), V >= 1, no NaN or +inf, a finite entry in every row."""
    z = check_array("logits", logits, ndim=2)
    if z.dtype.kind != "f":
        raise InputError(f"logits: expected a float array, got dtype {z.dtype.name}")
    if z.shape[1] < 1:
        raise ShapeError(f"logits: expected shape (B, V) with V >= 1, got {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise NonFiniteError("logits: expected no NaN or +inf (-inf marks a forbidden id)")
    if z.shape[0] and not np.isfinite(z).any(axis=1).all():
        raise NonFiniteError("logits: expected a finite entry in every row, got a row of -inf")
    return z


def _check_sampling(temperature, top_k, top_p):
    """Validated (temperature, top_k, top_p)."""
    if type(temperature) is float and 0 <= temperature < math.inf and top_k is None and top_p is None:
        return temperature, None, None                                       # the common case, quickly
    T = check_real("temperature", temperature, low=0)
    k = None if top_k is None else check_int("top_k", top_k, low=1)
    p = None if top_p is None else check_real("top_p", top_p, low=0, high=1, low_open=True)
    return T, k, p


def sampling_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution (B, V) float64 that sample_logits draws from (one-hot at argmax for T = 0)."""
    z = _check_logits(logits).astype(np.float64)                             # (B, V)
    T, k, p = _check_sampling(temperature, top_k, top_p)
    B, V = z.shape
    if T == 0:
        probs = np.zeros((B, V))                                             # (B, V)
        probs[np.arange(B), z.argmax(axis=1)] = 1.0
        return probs
    order = np.argsort(-z, axis=1, kind="stable")                            # (B, V) largest first
    s = np.take_along_axis(z, order, axis=1)                                 # (B, V) sorted, max first
    s = (s - s[:, :1]) / T                                                   # (B, V) <= 0: no overflow
    if k is not None and k < V:
        s[:, k:] = -np.inf
    e = np.exp(s)                                                            # (B, V)
    q = e / e.sum(axis=1, keepdims=True)                                     # (B, V) sorted probs
    if p is not None and p < 1:
        before = np.cumsum(q, axis=1) - q                                    # (B, V) mass before each
        q = np.where(before < p * (1 - 1e-12), q, 0.0)                       # keeps the first: 0 < p
        q /= q.sum(axis=1, keepdims=True)
    probs = np.empty_like(q)                                                 # (B, V)
    np.put_along_axis(probs, order, q, axis=1)
    return probs


def _as_rng(rng):
    """A numpy Generator from a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0):
        return np.random.default_rng(rng)
    raise InputError(f"rng: expected a numpy Generator, a seed >= 0 or None, got {rng!r:.60}")


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """One id per row of logits (B, V) -> ids (B,) int64, drawn from sampling_probs(...)."""
    T, k, p = _check_sampling(temperature, top_k, top_p)
    return _sample(logits, T, k, p, _as_rng(rng))


def _plain_numpy(z, T, u):
    """sample_plain of rnnkit.kernels.generation in NumPy: z (B, V) checked, T > 0, u (B,) -> ids (B,)."""
    z = z.astype(np.float64)                                                 # (B, V)
    e = np.exp((z - z.max(axis=1, keepdims=True)) / T)                       # (B, V)
    cdf = np.cumsum(e, axis=1)                                               # (B, V)
    ids = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1)                     # (B,) first cdf > u
    last = z.shape[1] - 1 - np.argmax(e[:, ::-1] > 0, axis=1)                # (B,) last id with e > 0
    return np.minimum(ids, last).astype(np.int64)


@functools.lru_cache(maxsize=None)
def _plain_kernel():
    """rnnkit.kernels.generation.sample_plain, or None without numba."""
    from . import kernels
    if not kernels.available():
        return None
    from .kernels.generation import sample_plain
    return sample_plain


def _sample_plain(z, T, rng):
    """softmax(z / T) sampling without a sort; z (B, V) float32/64 (checked here, cheaply) -> ids (B,)."""
    u = rng.random(z.shape[0])                                               # (B,) one draw per row
    kernel = _plain_kernel()
    if kernel is None:
        return _plain_numpy(_check_logits(z), T, u)
    ids = np.empty(z.shape[0], np.int64)                                     # (B,)
    if kernel(z, T, u, ids):
        _check_logits(z)                                                     # raises: NaN, +inf, -inf row
    return ids


def _sample(logits, T, k, p, rng):
    """sample_logits with checked T, k, p and a Generator."""
    z = logits
    if (T > 0 and type(z) is np.ndarray and z.ndim == 2 and z.dtype.char in "fd"
            and z.shape[1] >= 1 and (k is None or k >= z.shape[1]) and (p is None or p >= 1)):
        return _sample_plain(z, T, rng)                                      # no top-k / top-p to apply
    probs = sampling_probs(logits, T, k, p)                                  # (B, V)
    B, V = probs.shape
    if T == 0:
        return probs.argmax(axis=1).astype(np.int64)                         # (B,)
    u = rng.random(B)                                                        # (B,) one draw per row
    cdf = np.cumsum(probs, axis=1)                                           # (B, V)
    ids = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1)                     # (B,) first cdf > u
    last = V - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)                     # (B,) last id with p > 0
    return np.minimum(ids, last).astype(np.int64)


def _check_ids(name, ids, ndim):
    """Non-negative integer ids of `ndim` dimensions, as int64."""
    ids = check_int_array(name, ids, 0, np.iinfo(np.int64).max, ndim=ndim)
    return ids.astype(np.int64, copy=False)


def _step(step_fn, ids, state):
    """Call step_fn and check that it returned (logits (B, V), state)."""
    out = step_fn(ids, state)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise InputError(f"step_fn: expected it to return (logits (B, V), state), got {type(out).__name__}")
    logits, state = out
    if not (type(logits) is np.ndarray and logits.ndim == 2):
        logits = check_array("step_fn's logits", logits, ndim=2)
    if logits.shape[0] != len(ids):
        raise ShapeError(f"step_fn's logits: expected {len(ids)} rows (one per id), got shape {logits.shape}")
    return logits, state


def _fast_step(step_fn):
    """step_fn, or the generation plan of the model when step_fn is that model's own step method."""
    if not callable(step_fn):
        raise InputError(f"step_fn: expected a function (ids, state) -> (logits, state), got {step_fn!r:.60}")
    make = getattr(getattr(step_fn, "__self__", None), "generation_step", None)
    return make() if make is not None and getattr(step_fn, "__name__", None) == "step" else step_fn


def prime(step_fn, prompt_ids, state=None):
    """Feed prompt_ids (T, B) one step at a time -> (state, logits (B, V) of the last step, None if T = 0)."""
    step_fn = _fast_step(step_fn)
    prompt = _check_ids("prompt_ids", prompt_ids, 2)
    logits = None
    for t in range(prompt.shape[0]):
        logits, state = _step(step_fn, prompt[t], state)
    return state, logits


def generate(step_fn, state, first_ids, max_len, stop_id=None, temperature=1.0, top_k=None,
             top_p=None, seed=0, pad=0):
    """Sample up to max_len tokens after first_ids (B,) -> (ids (T, B), lengths (B,), state).

    ids[t] is the token sampled after feeding ids[t-1] (first_ids at t = 0). A sequence that
    emits stop_id keeps it, then gets `pad`; generation ends when all have stopped or at max_len.
    lengths counts the tokens before stop_id (T when none was emitted). The returned state is the
    state after the last step (for stopped sequences it has run on their pad inputs).
    """
    step_fn = _fast_step(step_fn)
    ids = _check_ids("first_ids", first_ids, 1)
    max_len = check_int("max_len", max_len, low=1)
    stop_id = None if stop_id is None else check_int("stop_id", stop_id, low=0)
    pad = check_int("pad", pad, low=0)
    temp, k, p = _check_sampling(temperature, top_k, top_p)                 # checked once, not per step
    rng = _as_rng(seed)
    B = ids.shape[0]
    done = np.zeros(B, dtype=bool)                                           # (B,)
    lengths = np.full(B, -1, dtype=np.int64)                                 # (B,) -1 = not stopped
    out = []
    for t in range(max_len):
        logits, state = _step(step_fn, ids, state)
        ids = _sample(logits, temp, k, p, rng)                               # (B,)
        if stop_id is not None:
            ids = np.where(done, pad, ids)                                   # (B,) pad after a stop
            hit = ~done & (ids == stop_id)
            lengths[hit], done = t, done | hit
        out.append(ids)
        if stop_id is not None and done.all():
            break
    T = len(out)
    lengths[lengths < 0] = T
    return np.stack(out).astype(np.int64), lengths, state                    # (T, B)
