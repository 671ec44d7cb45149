"""Sampling (temperature, top-k, top-p, greedy), priming and generation with a carried state."""
import numpy as np
import pytest

import rnnkit
from rnnkit.decode import generate, prime, sample_logits, sampling_probs
from rnnkit.errors import InputError, NonFiniteError, ShapeError


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


LOGITS = np.array([[2.0, 0.5, -1.0, 1.0, 0.0, -0.5]])                  # (1, 6)
N = 20000


def counts_of(ids, V):
    return np.bincount(ids, minlength=V)


def chi_square(counts, p):
    keep = p > 0
    expected = counts.sum() * p[keep]
    return float(np.sum((counts[keep] - expected) ** 2 / expected))


# 99.9% quantile of chi-square with 5 degrees of freedom: 20.52
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0])
def test_samples_follow_softmax_over_temperature(T):
    ids = sample_logits(np.repeat(LOGITS, N, axis=0), temperature=T, rng=np.random.default_rng(0))
    assert ids.shape == (N,) and ids.dtype == np.int64
    p = softmax(LOGITS[0] / T)
    assert chi_square(counts_of(ids, 6), p) < 20.52
    assert np.allclose(sampling_probs(LOGITS, T)[0], p)


def test_samples_are_not_uniform():
    ids = sample_logits(np.repeat(LOGITS, N, axis=0), rng=np.random.default_rng(1))
    assert chi_square(counts_of(ids, 6), np.full(6, 1 / 6)) > 1000     # the test has power


def test_top_k_never_leaves_the_k_largest():
    ids = sample_logits(np.repeat(LOGITS, N, axis=0), top_k=3, rng=np.random.default_rng(2))
    assert set(np.unique(ids)) == {0, 1, 3}
    p = softmax(LOGITS[0])
    p[[2, 4, 5]] = 0
    assert chi_square(counts_of(ids, 6), p / p.sum()) < 13.82        # 2 d.o.f., 99.9%
    assert np.array_equal(sample_logits(LOGITS, top_k=1, rng=0), [0])
    assert np.allclose(sampling_probs(LOGITS, top_k=100), softmax(LOGITS))   # k > V: all kept


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.8, 0.95, 1.0])
def test_top_p_keeps_the_smallest_set_with_enough_mass(top_p):
    p = softmax(LOGITS[0])
    order = np.argsort(-p)
    n_keep = int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)      # first prefix with mass >= p
    kept = set(order[:n_keep])
    assert p[order[:n_keep]].sum() >= top_p - 1e-12 and p[order[:n_keep - 1]].sum() < top_p
    probs = sampling_probs(LOGITS, top_p=top_p)[0]
    assert set(np.flatnonzero(probs)) == kept
    assert np.allclose(probs[order[:n_keep]], p[order[:n_keep]] / p[order[:n_keep]].sum())
    ids = sample_logits(np.repeat(LOGITS, 5000, axis=0), top_p=top_p, rng=np.random.default_rng(3))
    assert set(np.unique(ids)) <= kept


def test_top_k_then_top_p_and_forbidden_ids():
    z = np.array([[3.0, -np.inf, 2.9, 0.0, -np.inf]])
    probs = sampling_probs(z, top_k=2, top_p=0.99)
    assert set(np.flatnonzero(probs[0])) == {0, 2}
    ids = sample_logits(np.repeat(z, 2000, axis=0), rng=np.random.default_rng(4))
    assert not np.isin(ids, [1, 4]).any()


def test_temperature_zero_is_argmax():
    z = np.random.default_rng(5).standard_normal((50, 9))
    assert np.array_equal(sample_logits(z, temperature=0), z.argmax(axis=1))
    assert np.array_equal(sample_logits(z, temperature=0, top_k=3, top_p=0.1), z.argmax(axis=1))
    assert np.array_equal(sample_logits(z, temperature=1e-300, rng=0), z.argmax(axis=1))  # no overflow


def test_same_seed_same_samples():
    z = np.repeat(LOGITS, 100, axis=0)
    assert np.array_equal(sample_logits(z, rng=7), sample_logits(z, rng=7))
    assert not np.array_equal(sample_logits(z, rng=7), sample_logits(z, rng=8))


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=2.5), "top_k"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(rng="seed"), "rng"),
])
def test_bad_sampling_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        sample_logits(LOGITS, **kwargs)


def test_bad_logits():
    with pytest.raises(ShapeError, match="logits"):
        sample_logits(LOGITS[0])
    with pytest.raises(NonFiniteError, match="NaN"):
        sample_logits(np.array([[0.0, np.nan]]))
    with pytest.raises(NonFiniteError, match="row of -inf"):
        sample_logits(np.array([[-np.inf, -np.inf]]))
    with pytest.raises(InputError, match="float"):
        sample_logits(np.array([[1, 2]]))


class TinyLM(rnnkit.Module):
    """Embedding -> LSTM -> Linear in float64: full forward over (T, B) ids, or one step."""

    def __init__(self, V=9, E=5, H=7):
        super().__init__()
        self.embed = self.add_child("embed", rnnkit.Embedding(V, E, dtype=np.float64, seed=1))
        self.rnn = self.add_child("rnn", rnnkit.LSTM(E, H, 2, dtype=np.float64, seed=2))
        self.out = self.add_child("out", rnnkit.Linear(H, V, dtype=np.float64, seed=3))

    def logits(self, ids, state=None):
        """ids (T, B) -> logits (T, B, V), state."""
        h, state = self.rnn(self.embed(ids), state)
        return self.out(h), state

    def step(self, ids, state):
        z, state = self.logits(ids[None], state)
        return z[0], state


def test_prime_then_steps_equals_full_forward():
    lm = TinyLM()
    seq = np.random.default_rng(0).integers(0, 9, (12, 3))                   # (T, B)
    full, _ = lm.logits(seq)
    state, last = prime(lm.step, seq[:5])
    assert np.allclose(last, full[4], rtol=0, atol=1e-12)
    for t in range(5, 12):
        z, state = lm.step(seq[t], state)
        assert np.allclose(z, full[t], rtol=0, atol=1e-12)
    assert prime(lm.step, seq[:0]) == (None, None)


def test_greedy_generation_equals_recomputed_argmax():
    lm = TinyLM()
    prompt = np.array([[1, 4], [2, 0], [3, 8]])                               # (T, B)
    state, _ = prime(lm.step, prompt[:-1])
    ids, lengths, _ = generate(lm.step, state, prompt[-1], max_len=6, temperature=0)
    seq = prompt
    for t in range(6):                                  # recompute the whole prefix every step
        z, _ = lm.logits(seq)
        nxt = z[-1].argmax(axis=1)
        assert np.array_equal(ids[t], nxt)
        seq = np.concatenate([seq, nxt[None]])
    assert ids.shape == (6, 2) and np.array_equal(lengths, [6, 6])


def counting_step(ids, state):
    """Emits ids + 1 with certainty: logits (B, 10) peaked at (ids + 1) % 10; counts its calls."""
    state = (state or 0) + 1
    z = np.full((len(ids), 10), -30.0)
    z[np.arange(len(ids)), (ids + 1) % 10] = 30.0
    return z, state


def test_generate_stops_at_stop_id_and_at_max_len():
    ids, lengths, calls = generate(counting_step, None, np.array([5, 1]), max_len=10, stop_id=7, pad=0)
    assert np.array_equal(ids[:, 0], [6, 7, 0, 0, 0, 0])        # stopped after 7, then padded
    assert np.array_equal(ids[:, 1], [2, 3, 4, 5, 6, 7])        # the last sequence ends the loop
    assert np.array_equal(lengths, [1, 5]) and calls == 6       # one step per token
    ids, lengths, calls = generate(counting_step, None, np.array([0]), max_len=4, stop_id=9)
    assert np.array_equal(ids[:, 0], [1, 2, 3, 4]) and np.array_equal(lengths, [4]) and calls == 4
    ids, _, _ = generate(counting_step, None, np.array([0]), max_len=3, top_k=1, seed=3)
    assert ids.shape == (3, 1)


def test_generate_sampling_is_seeded():
    lm = TinyLM()
    a = generate(lm.step, None, np.array([0, 1, 2]), 8, temperature=1.5, top_p=0.9, seed=11)[0]
    b = generate(lm.step, None, np.array([0, 1, 2]), 8, temperature=1.5, top_p=0.9, seed=11)[0]
    c = generate(lm.step, None, np.array([0, 1, 2]), 8, temperature=1.5, top_p=0.9, seed=12)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_generate_arguments():
    with pytest.raises(InputError, match="max_len"):
        generate(counting_step, None, np.array([0]), max_len=0)
    with pytest.raises(InputError, match="first_ids"):
        generate(counting_step, None, np.array([-1]), max_len=3)
    with pytest.raises(InputError, match="step_fn"):
        generate(None, None, np.array([0]), max_len=3)
    with pytest.raises(InputError, match="top_p"):
        generate(counting_step, None, np.array([0]), max_len=3, top_p=2)
    with pytest.raises(ShapeError, match="prompt_ids"):
        prime(counting_step, np.array([1, 2]))
    with pytest.raises(InputError, match="step_fn"):
        generate(lambda ids, s: ids, None, np.array([0]), max_len=3)
