"""The generation plan (rnnkit.models.generation) against ManyToMany.step, and plain temperature
sampling without a sort against the general sort-based path: same logits, states and characters."""
import hashlib

import numpy as np
import pytest

from rnnkit import decode, tasks
from rnnkit.data import Vocab
from rnnkit.decode import generate, prime, sample_logits, sampling_probs
from rnnkit.errors import InputError, NonFiniteError, ShapeError
from rnnkit.models.generation import SMALL_B, GenerationPlan, applies
from rnnkit.models.many_to_many import ManyToMany

V, D, H = 13, 12, 16
TOL = {"float32": 1e-5, "float64": 1e-12}


def close(a, b, dtype, what=""):
    """Within TOL[dtype] of the larger magnitude (relative to max |b|)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    scale = max(np.abs(b).max(), 1e-30)
    assert np.abs(a - b).max() <= TOL[dtype] * scale, f"{what}: max diff {np.abs(a - b).max():.3g}"


def close_state(s1, s2, dtype):
    for a, b in zip(s1 if isinstance(s1, tuple) else (s1,), s2 if isinstance(s2, tuple) else (s2,)):
        close(a, b, dtype, "state")


def model(cell="lstm", dtype="float32", num_layers=1, hidden_size=H, **kw):
    kw.setdefault("embedding_dim", None if kw.get("one_hot") else D)
    return ManyToMany(vocab_size=V, cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                      dtype=dtype, seed=3, **kw).eval()


CASES = {
    "lstm": dict(cell="lstm"), "gru": dict(cell="gru"), "rnn": dict(cell="rnn"),
    "rnn-relu": dict(cell="rnn", nonlinearity="relu"),
    "lstm-proj": dict(cell="lstm", proj_size=6), "lstm-peepholes": dict(cell="lstm", peepholes=True),
    "lstm-tied": dict(cell="lstm", embedding_dim=H, tie_weights=True),
    "lstm-proj-tied": dict(cell="lstm", proj_size=6, embedding_dim=6, tie_weights=True),
    "gru-tied": dict(cell="gru", embedding_dim=H, tie_weights=True),
    "rnn-one-hot": dict(cell="rnn", one_hot=True), "lstm-one-hot": dict(cell="lstm", one_hot=True),
    "gru-learn-init": dict(cell="gru", learn_init=True),
}


def run_both(m, B, steps, seed=0):
    """Feed the same random ids to model.step and its plan; compare logits and state at every step."""
    plan = m.generation_step()
    assert isinstance(plan, GenerationPlan)
    rng = np.random.default_rng(seed)
    s1 = s2 = None
    for _ in range(steps):
        ids = rng.integers(0, V, B)
        y1, s1 = m.step(ids, s1)
        y2, s2 = plan(ids, s2)
        close(y2, y1, m.dtype.name, "logits")
        close_state(s2, s1, m.dtype.name)
    return s1, s2


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_logits_and_state_equal_model_step(case, dtype, num_layers):
    m = model(dtype=dtype, num_layers=num_layers, **CASES[case])
    for B in (1, 3):
        run_both(m, B, steps=6, seed=B)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plan_equals_the_blas_path_of_a_wide_layer(dtype):
    """H = 384: B H 4H is above kernels.sequence.SMALL_WORK, so model.step takes NumPy's BLAS."""
    run_both(model("lstm", dtype, hidden_size=384, embedding_dim=32), B=1, steps=3)


def test_states_pass_between_the_plan_and_model_step():
    m = model("lstm", "float64", num_layers=2)
    plan, ids = m.generation_step(), np.array([4, 7])
    state, _ = prime(lambda x, s: m.step(x, s), np.array([[1, 2], [3, 5]]))   # general path
    y1, s1 = m.step(ids, state)
    y2, s2 = plan(ids, state)                 # a state the plan did not make: checked, then used
    close(y2, y1, "float64")
    y3, _ = m.step(ids, s2)                   # and the plan's state goes back to model.step
    y4, _ = plan(ids, s1)
    close(y4, y3, "float64")


def test_seeded_generate_gives_the_same_characters_on_both_paths():
    for cell in ("lstm", "gru", "rnn"):
        m = model(cell, "float32", num_layers=2)
        general = lambda x, s: m.step(x, s)                                     # noqa: E731 (not upgraded)
        first = np.array([1, 5, 9])
        a, la, sa = generate(general, None, first, 60, stop_id=0, temperature=0.9, seed=7)
        b, lb, sb = generate(m.generation_step(), None, first, 60, stop_id=0, temperature=0.9, seed=7)
        c, lc, _ = generate(m.step, None, first, 60, stop_id=0, temperature=0.9, seed=7)   # upgraded
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(la, lb)
        close_state(sb, sa, "float32")


def test_generate_and_prime_build_the_plan_from_a_models_own_step(monkeypatch):
    m = model("gru")
    built = []
    monkeypatch.setattr(ManyToMany, "generation_step", lambda self: built.append(1) or GenerationPlan(self))
    state, _ = prime(m.step, np.array([[1], [2]]))
    generate(m.step, state, np.array([3]), 5)
    assert len(built) == 2


def test_rnnkit_sample_uses_the_plan(monkeypatch):
    vocab = Vocab.from_texts(["abcdefghijkl\n"], level="char")
    m = ManyToMany(vocab_size=len(vocab), embedding_dim=8, hidden_size=8).eval()
    built = []
    real = ManyToMany.generation_step
    monkeypatch.setattr(ManyToMany, "generation_step", lambda self: built.append(1) or real(self))
    text = tasks.sample_text(m, vocab, "abc", 20, temperature=0.8, seed=1)
    assert len(built) == 1 and text.startswith("abc")
    monkeypatch.setattr(ManyToMany, "generation_step", lambda self: lambda x, s: self.step(x, s))
    assert tasks.sample_text(m, vocab, "abc", 20, temperature=0.8, seed=1) == text   # general path


@pytest.mark.parametrize("kw", [dict(cell="gru", reset_after=False), dict(cell="lstm", layer_norm=True),
                                dict(cell="lstm", zoneout=0.1), dict(cell="mingru"),
                                dict(cell="lstm", kernels="numpy")])
def test_the_general_path_where_no_plan_applies(kw):
    m = model(**kw)
    assert not applies(m) and m.generation_step() == m.step
    ids, out = np.array([2]), generate(m.step, None, np.array([2]), 4, seed=1)
    assert out[0].shape == (4, 1) and ids.shape == (1,)


def test_real_vector_input_takes_the_general_path():
    m = ManyToMany(input_size=4, output_size=3, hidden_size=5, task="regress").eval()
    assert m.generation_step() == m.step


def test_dropout_in_training_and_large_batches_go_to_model_step():
    m = model("lstm", "float64", num_layers=2, dropout=0.5).train()
    plan = m.generation_step()
    y, s = plan(np.array([1]), None)                         # training: dropout acts, as in model.step
    assert y.shape == (1, V) and s[0].shape == (2, 1, H)
    m.eval()
    run_both(m, B=SMALL_B + 2, steps=2)
    run_both(m, B=2, steps=2)


def test_bad_ids_and_states_raise_as_model_step_does():
    m = model("lstm")
    plan = m.generation_step()
    for bad in (np.array([V]), np.array([-1]), [0, V + 3]):
        with pytest.raises(InputError, match="ids"):
            m.step(bad)
        with pytest.raises(InputError, match="ids"):
            plan(bad)
    _, s = plan(np.array([1, 2]))
    for step in (m.step, plan):
        with pytest.raises((InputError, ShapeError)):
            step(np.array([1, 2, 3]), s)                     # state of B = 2 for 3 ids
        with pytest.raises((InputError, ShapeError)):
            step(np.array([1]), (s[0],))


def test_a_plan_built_after_training_sees_the_new_weights():
    m = model("lstm", "float64")
    old = m.generation_step()
    for _, p, _ in m.named_parameters():
        p += 0.05
    ids = np.array([3])
    y, _ = m.step(ids)
    close(m.generation_step()(ids)[0], y, "float64")
    assert np.abs(old(ids)[0] - y).max() > 1e-3                # a plan holds E W_x + b as built


# -- sampling without a sort ----------------------------------------------------------------------
def general_ids(z, T, u):
    """The sort-based path: sampling_probs, then the inverse CDF of u."""
    probs = sampling_probs(z, T)                                            # (B, V)
    cdf = np.cumsum(probs, axis=1)
    ids = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1)
    last = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(ids, last)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [0.3, 1.0, 2.5])
def test_plain_sampling_equals_the_sort_based_path(dtype, T):
    rng = np.random.default_rng(11)
    z = (3 * rng.standard_normal((4000, 29))).astype(dtype)
    z[rng.random(z.shape) < 0.2] = -np.inf                                  # forbidden ids
    z[:, 5] = np.maximum(z[:, 5], 0)                                        # a finite entry per row
    ids = sample_logits(z, T, rng=np.random.default_rng(5))
    u = np.random.default_rng(5).random(len(z))
    ref = general_ids(z, T, u)
    assert ids.dtype == np.int64 and np.mean(ids == ref) > 0.9999          # boundaries: rounding only
    np.testing.assert_array_equal(decode._plain_numpy(z, T, u), ref)
    assert not np.isinf(z[np.arange(len(z)), ids]).any()


def test_plain_sampling_checks_its_logits():
    z = np.zeros((2, 4), np.float32)
    for value, match in ((np.nan, "NaN"), (np.inf, "NaN")):
        bad = z.copy()
        bad[1, 2] = value
        with pytest.raises(NonFiniteError, match=match):
            sample_logits(bad, rng=0)
    bad = z.copy()
    bad[0] = -np.inf
    with pytest.raises(NonFiniteError, match="row of -inf"):
        sample_logits(bad, rng=0)


def test_top_k_of_at_least_v_and_top_p_of_one_take_the_plain_path():
    z = np.random.default_rng(2).standard_normal((500, 7))
    a = sample_logits(z, 0.8, rng=3)
    np.testing.assert_array_equal(sample_logits(z, 0.8, top_k=7, rng=3), a)
    np.testing.assert_array_equal(sample_logits(z, 0.8, top_p=1.0, rng=3), a)


def test_numba_cache_stamp_follows_seqloops():
    from rnnkit.kernels import generation, seqloops
    with open(seqloops.__file__, "rb") as f:
        sha = hashlib.sha256(f.read().replace(b"\r\n", b"\n")).hexdigest()[:16]
    assert generation.SEQLOOPS_SHA == sha, f"seqloops.py changed: set SEQLOOPS_SHA = {sha!r}"
