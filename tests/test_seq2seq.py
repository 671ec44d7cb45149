"""EncoderDecoder, Attention and beam search: finite differences (float64) of every parameter end to
end through objective, the attention module alone (with masks), decoding (beam_size=1 is greedy,
beam search beats greedy, scores are the model's log-probabilities) and a learning test (reversal)."""
import numpy as np
import pytest

from rnnkit import beam
from rnnkit.data.batching import pad_sequences
from rnnkit.data.text_tasks import make_reversal_pairs
from rnnkit.errors import InputError, ShapeError
from rnnkit.functional import log_softmax
from rnnkit.gradcheck import check_module, gradcheck
from rnnkit.layers.attention import Attention, masked_softmax
from rnnkit.models.seq2seq import EncoderDecoder
from rnnkit.optim import Adam, CosineAnnealing, clip_grad_norm

S, T, B, V_SRC, V_TGT = 5, 4, 3, 9, 8


# -- attention alone --------------------------------------------------------------------------------
def _attn_inputs(rng, Hq, Hk, S=4, B=3):
    return rng.standard_normal((B, Hq)), rng.standard_normal((S, B, Hk))


@pytest.mark.parametrize("kind,Hq,Hk", [("additive", 3, 5), ("dot", 4, 4), ("general", 3, 5)])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_attention_gradients(kind, Hq, Hk, lengths):
    rng = np.random.default_rng(0)
    m = Attention(Hq, Hk, kind, dtype=np.float64, seed=1)
    q, k = _attn_inputs(rng, Hq, Hk)
    mask = None if lengths is None else np.arange(4)[:, None] < np.array(lengths)[None, :]
    errs = check_module(m, lambda m, query, keys: m.forward(query, keys, mask),
                        lambda m, d, cache: dict(zip(("query", "keys"), m.backward(d[0], d[1], cache))),
                        {"query": q, "keys": k}, rtol=1e-6, atol=1e-9)
    assert set(errs) == {"query", "keys"} | set(m.params)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_precompute_once_for_many_queries(kind):
    """The decoder's use: precompute K once, attend with several queries, dK summed, one backward."""
    rng = np.random.default_rng(1)
    m = Attention(4, 4, kind, dtype=np.float64, seed=2)
    mask = np.arange(4)[:, None] < np.array([2, 4, 3])[None, :]

    def forward(m, q1, q2, keys):
        K, pre = m.precompute(keys)
        c1, w1, a1 = m.attend(q1, keys, K, mask)
        c2, w2, a2 = m.attend(q2, keys, K, mask)
        return c1, w1, c2, w2, (pre, a1, a2)

    def backward(m, d, cache):
        pre, a1, a2 = cache
        dq1, dk1, dK1 = m.attend_backward(d[0], d[1], a1)
        dq2, dk2, dK2 = m.attend_backward(d[2], d[3], a2)
        return dict(q1=dq1, q2=dq2, keys=dk1 + dk2 + m.precompute_backward(dK1 + dK2, pre))

    q1, keys = _attn_inputs(rng, 4, 4)
    errs = check_module(m, forward, backward, {"q1": q1, "q2": rng.standard_normal((3, 4)), "keys": keys},
                        rtol=1e-6, atol=1e-9)
    assert {"q1", "q2", "keys"} <= set(errs)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_matches_the_equations(kind):
    rng = np.random.default_rng(2)
    Hq = 5 if kind == "dot" else 3
    q, k = _attn_inputs(rng, Hq, 5)
    lengths = np.array([4, 1, 3])
    m = Attention(Hq, 5, kind, dtype=np.float64, seed=3)
    P = m.params
    if kind == "additive":
        e = np.tanh(q @ P["W_q"] + k @ P["W_k"] + P["b"]) @ P["v"]          # (S, B)
    elif kind == "dot":
        e = np.einsum("bh,sbh->sb", q, k)
    else:
        e = np.einsum("bq,qh,sbh->sb", q, P["W"], k)
    c, w, _ = m.forward(q, k, np.arange(4)[:, None] < lengths[None, :])
    for b, L in enumerate(lengths):
        p = np.exp(e[:L, b] - e[:L, b].max())
        np.testing.assert_allclose(w[:L, b], p / p.sum(), rtol=1e-12)
        assert np.all(w[L:, b] == 0)
        np.testing.assert_allclose(c[b], (w[:L, b, None] * k[:L, b]).sum(0), rtol=1e-12)


def test_masked_softmax_is_stable_and_never_nan():
    e = np.array([[1e4, -1e4, 3.0], [1e4 + 1, 5.0, 7.0]], dtype=np.float32)  # (S=2, B=3)
    mask = np.array([[True, True, False], [True, False, False]])            # column 2: length 0
    w = masked_softmax(e, mask)
    assert np.all(np.isfinite(w)) and w.dtype == np.float32
    np.testing.assert_allclose(w.sum(0), [1, 1, 0], rtol=1e-6)
    assert w[1, 1] == 0 and np.all(w[:, 2] == 0)
    m = Attention(2, 2, "dot", dtype=np.float64)
    c, w, cache = m.forward(np.ones((3, 2)) * 1e3, np.ones((2, 3, 2)), mask)
    dq, dk = m.backward(np.ones((3, 2)), None, cache)
    assert np.all(c[2] == 0) and np.all(np.isfinite(dq)) and np.all(np.isfinite(dk))


def test_attention_bad_arguments():
    with pytest.raises(InputError, match="key_size"):
        Attention(3, 4, "dot")
    with pytest.raises(InputError, match="attn_size"):
        Attention(3, 4, "general", attn_size=5)
    with pytest.raises(InputError, match="kind"):
        Attention(3, 4, "cosine")
    m = Attention(3, 4, dtype=np.float64)
    with pytest.raises(ShapeError, match="keys"):
        m.forward(np.zeros((2, 3)), np.zeros((5, 2, 3)))
    with pytest.raises(ShapeError, match="mask"):
        m.forward(np.zeros((2, 3)), np.zeros((5, 2, 4)), np.ones((5, 3), bool))


# -- the model, end to end --------------------------------------------------------------------------
def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return dict(src=rng.integers(0, V_SRC, (S, B)), src_lengths=np.array([5, 2, 4]),
                tgt_in=rng.integers(0, V_TGT, (T, B)), tgt_out=rng.integers(0, V_TGT, (T, B)),
                tgt_lengths=np.array([4, 3, 1]))


def _reset_rngs(m):
    """The same scheduled-sampling draws and dropout masks on every call."""
    m.rng = np.random.default_rng(7)
    m.drop.rng = np.random.default_rng(8)
    m.encoder.rng = np.random.default_rng(9)


def _check_objective(m, batch, max_checks=6):
    m.zero_grad()
    _reset_rngs(m)
    m.objective(batch)
    params = {name: p for name, p, _ in m.named_parameters()}
    analytic = {name: g.copy() for name, _, g in m.named_parameters()}

    def loss():
        _reset_rngs(m)
        loss_sum, count, _, _ = m.objective(batch, train=False)
        return loss_sum / count

    gradcheck(loss, params, analytic, rtol=1e-5, atol=1e-8, max_checks=max_checks)
    for name, g in analytic.items():        # every parameter is used: gradients reach the encoder
        assert np.abs(g).max() > 0, name
    return params


CONFIGS = {
    "lstm_last_init": dict(cell="lstm", context="last"),
    "lstm_last_every_step": dict(cell="lstm", context="last", feed="every_step"),
    "gru_last_init_bidirectional": dict(cell="gru", context="last", bidirectional_encoder=True),
    "gru_transform_init": dict(cell="gru", context="transform"),
    "lstm_transform_init_bidirectional": dict(cell="lstm", context="transform", bidirectional_encoder=True),
    "lstm_transform_every_step_bidirectional": dict(cell="lstm", context="transform", feed="every_step",
                                                    bidirectional_encoder=True),
    "rnn_transform_every_step": dict(cell="rnn", context="transform", feed="every_step"),
    "lstm_additive_init": dict(cell="lstm", attention="additive"),
    "gru_additive_every_step_bidirectional": dict(cell="gru", attention="additive", feed="every_step",
                                                  bidirectional_encoder=True),
    "gru_dot_init": dict(cell="gru", attention="dot"),
    "lstm_dot_every_step": dict(cell="lstm", attention="dot", feed="every_step"),
    "lstm_general_init_bidirectional": dict(cell="lstm", attention="general", bidirectional_encoder=True),
    "lstm_2_layers_additive_bidirectional_dropout": dict(cell="lstm", num_layers=2, dropout=0.3,
                                                         bidirectional_encoder=True),
    "gru_2_layers_last_every_step": dict(cell="gru", context="last", feed="every_step", num_layers=2),
    "lstm_additive_scheduled_sampling": dict(cell="lstm", sampling_prob=0.5),
    "gru_transform_init_scheduled_sampling": dict(cell="gru", context="transform", sampling_prob=0.5),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_objective_gradients(name):
    kw = dict(context="attention", hidden_size=4, embedding_dim=3, dtype="float64", seed=1)
    m = EncoderDecoder(V_SRC, V_TGT, **{**kw, **CONFIGS[name]})
    params = _check_objective(m, _batch())
    assert any(n.startswith("encoder.") for n in params)


def test_scheduled_sampling_feeds_the_models_own_argmax():
    m = EncoderDecoder(V_SRC, V_TGT, cell="gru", hidden_size=5, embedding_dim=3, dtype="float64",
                       sampling_prob=1.0, seed=3)
    m.out.b[m.eos] -= 10                                  # no eos: greedy decodes every step
    b = _batch(1)
    b["tgt_in"][0] = m.bos
    sampled, _ = m.forward(b["src"], b["src_lengths"], b["tgt_in"])
    ids, lengths, _ = m.greedy(b["src"], b["src_lengths"], max_len=T)
    assert np.all(lengths == T)
    np.testing.assert_array_equal(sampled.argmax(-1), ids)   # step t fed argmax of step t - 1
    m.eval()                                               # evaluation: teacher forcing again
    forced, _ = m.forward(b["src"], b["src_lengths"], b["tgt_in"])
    m.train()
    m.sampling_prob = 0.0
    np.testing.assert_array_equal(m.forward(b["src"], b["src_lengths"], b["tgt_in"])[0], forced)
    assert not np.allclose(forced, sampled)


def test_objective_counts_and_metrics():
    m = EncoderDecoder(V_SRC, V_TGT, hidden_size=4, embedding_dim=3, dtype="float64")
    b = _batch()
    loss_sum, count, metrics, state = m.objective(b, train=False)
    logits, _ = m.forward(b["src"], b["src_lengths"], b["tgt_in"])
    logp = log_softmax(logits)
    real = np.arange(T)[:, None] < b["tgt_lengths"][None, :]
    want = -sum(logp[t, j, b["tgt_out"][t, j]] for t in range(T) for j in range(B) if real[t, j])
    assert count == 8 and state is None and metrics["sequences"] == B
    np.testing.assert_allclose(loss_sum, want, rtol=1e-12)
    hit = (logits.argmax(-1) == b["tgt_out"]) & real
    assert metrics["correct"] == hit.sum()
    assert metrics["exact"] == sum(hit[:L, j].all() for j, L in enumerate(b["tgt_lengths"]))
    assert all(np.all(g == 0) for _, _, g in m.named_parameters())   # train=False: no backward


def test_config_rebuilds_the_model():
    m = EncoderDecoder(V_SRC, V_TGT, cell="gru", hidden_size=6, context="transform", feed="every_step",
                       sampling_prob=0.25, seed=4)
    cfg = m.config()
    assert cfg["type"] == "EncoderDecoder"
    kw = {k: v for k, v in cfg.items() if k != "type"}
    m2 = EncoderDecoder(**kw)
    assert m2.config() == cfg
    for (n1, p1, _), (n2, p2, _) in zip(m.named_parameters(), m2.named_parameters()):
        assert n1 == n2 and np.array_equal(p1, p2)


def test_bad_arguments():
    with pytest.raises(InputError, match="context"):
        EncoderDecoder(5, 5, context="mean")
    with pytest.raises(InputError, match="attention"):
        EncoderDecoder(5, 5, attention="dot", bidirectional_encoder=True)
    with pytest.raises(InputError, match="eos"):
        EncoderDecoder(5, 5, bos=2, eos=2)
    m = EncoderDecoder(V_SRC, V_TGT, hidden_size=4, embedding_dim=3)
    b = _batch()
    with pytest.raises(InputError, match="tgt_lengths"):
        m.objective({k: v for k, v in b.items() if k != "tgt_lengths"})
    with pytest.raises(InputError, match="state"):
        m.objective(b, state=np.zeros(3))
    with pytest.raises(InputError, match="src_lengths"):
        m.objective({**b, "src_lengths": np.array([6, 1, 1])})
    with pytest.raises(InputError, match="beam_size"):
        m.beam_search(b["src"], b["src_lengths"], beam_size=0)


# -- decoding ---------------------------------------------------------------------------------------
def _decoder_model(**kw):
    m = EncoderDecoder(V_SRC, V_TGT, hidden_size=8, embedding_dim=4, dtype="float64", seed=5, **kw)
    for _, p, _ in m.named_parameters():                 # peaked outputs that depend on the source
        p *= 3
    m.out.b[m.eos] += 1.0                                  # some outputs end before max_len
    return m.eval()


def _sources(n=12, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V_SRC, (6, n)), rng.integers(1, 7, n)


def _model_log_prob(m, src, src_lengths, ids, lengths):
    """Σ_t log p(ids_t | ids_<t, src) by one teacher-forced forward, the eos included when emitted."""
    tgt_in = np.vstack([np.full((1, ids.shape[1]), m.bos), ids[:-1]])
    logp = log_softmax(m.forward(src, src_lengths, tgt_in, need_cache=False)[0])
    n = np.minimum(lengths + 1, ids.shape[0])            # tokens emitted
    return np.array([sum(logp[t, b, ids[t, b]] for t in range(n[b])) for b in range(ids.shape[1])])


@pytest.mark.parametrize("kw", [dict(), dict(cell="gru", context="last", feed="every_step")])
def test_beam_size_one_is_greedy(kw):
    m = _decoder_model(**kw)
    src, lens = _sources()
    g = m.greedy(src, lens, max_len=7)
    for alpha in (0.0, 1.0):
        bs = m.beam_search(src, lens, beam_size=1, max_len=7, length_penalty=alpha)
        for a, b in zip(g, bs):
            np.testing.assert_array_equal(a, b)
    assert 0 < g[1].min() and g[1].min() < 7 and g[1].max() == 7          # eos and max_len both met


def test_beam_search_scores_are_model_log_probs_and_beat_greedy():
    m = _decoder_model(context="attention", attention="general")
    src, lens = _sources()
    g_ids, g_len, g_score = m.greedy(src, lens, max_len=7)
    ids, lengths, scores = m.beam_search(src, lens, beam_size=4, max_len=7, length_penalty=0.0)
    np.testing.assert_allclose(g_score, _model_log_prob(m, src, lens, g_ids, g_len), rtol=1e-10)
    np.testing.assert_allclose(scores, _model_log_prob(m, src, lens, ids, lengths), rtol=1e-10)
    assert np.all(scores >= g_score - 1e-12) and np.any(scores > g_score + 1e-6)
    ended = lengths < ids.shape[0]
    assert np.all(ids[lengths[ended], np.flatnonzero(ended)] == m.eos)


def test_decoding_takes_one_step_per_token():
    m = _decoder_model()
    src, lens = _sources(4)
    calls = []
    step = m._step
    m._step = lambda memory, y, state, need_cache=True: calls.append(len(y)) or step(memory, y, state, need_cache)
    ids, _, _ = m.greedy(src, lens, max_len=9)
    assert calls == [4] * ids.shape[0]
    calls.clear()
    m.beam_search(src, lens, beam_size=3, max_len=9)
    assert 1 <= len(calls) <= 9 and set(calls) == {12}


def _table_step(table):
    """A toy decoder: log p(next | previous token) from a fixed table; the state is the previous token."""
    logp = np.log(table / table.sum(1, keepdims=True))
    return lambda y, state: (logp[y], y), lambda state, rows: state[rows]


def test_beam_search_finds_what_greedy_misses():
    """0 pad, 1 bos, 2 eos, 3 A, 4 B, 5 C: greedy takes A (.55) then C eos (.187 in all); B eos has .405."""
    eps = 1e-9
    table = np.full((6, 6), eps)
    table[1, [3, 4]] = 0.55, 0.45               # bos -> A | B
    table[3, [5, 4, 2]] = 0.34, 0.33, 0.33      # A -> C | B | eos
    table[4, [2, 5]] = 0.9, 0.1                 # B -> eos | C
    table[5, 2] = 1.0                           # C -> eos
    step, reorder = _table_step(table)
    ids, lengths, scores = beam.greedy_search(step, np.full(1, 1), 1, 1, 2, 0, 10)
    assert ids[:, 0].tolist() == [3, 5, 2] and lengths[0] == 2
    ids, lengths, b_scores = beam.beam_search(step, np.full(2, 1), reorder, 1, 1, 2, 0, 2, 10, 0.0)
    assert ids[:, 0].tolist() == [4, 2] and lengths[0] == 1
    np.testing.assert_allclose(b_scores, np.log(0.45 * 0.9), rtol=1e-6)
    assert b_scores[0] > scores[0]
    ids, _, _ = beam.beam_search(step, np.full(2, 1), reorder, 1, 1, 2, 0, 2, 10, 5.0)
    assert ids[:, 0].tolist() == [3, 5, 2]      # a strong length normalisation prefers the longer one


# -- learning ---------------------------------------------------------------------------------------
def _encode_pairs(pairs):
    """Digit strings -> ids 3..12 (0 pad, 1 bos, 2 eos) as one padded batch."""
    def ids(s):
        return [3 + int(c) for c in s]
    src, src_lengths = pad_sequences([ids(a) for a, _ in pairs])
    tgt_in, tgt_lengths = pad_sequences([[1] + ids(b) for _, b in pairs])
    tgt_out, _ = pad_sequences([ids(b) + [2] for _, b in pairs])
    return dict(src=src, src_lengths=src_lengths, tgt_in=tgt_in, tgt_out=tgt_out, tgt_lengths=tgt_lengths)


def test_attention_seq2seq_learns_to_reverse_digit_strings():
    train = make_reversal_pairs(20000, min_len=3, max_len=6, seed=1)
    seen = {a for a, _ in train}
    test = [p for p in make_reversal_pairs(2000, min_len=3, max_len=6, seed=2) if p[0] not in seen][:1000]
    data, held_out = _encode_pairs(train), _encode_pairs(test)
    m = EncoderDecoder(13, 13, cell="lstm", hidden_size=32, embedding_dim=16, bidirectional_encoder=True,
                       context="attention", attention="additive", seed=0)
    opt = Adam(m, lr=0.01)
    sched = CosineAnnealing(opt, T_max=500)
    rng = np.random.default_rng(0)
    for _ in range(500):
        idx = rng.integers(0, len(train), 32)
        m.zero_grad()
        m.objective({k: v[..., idx] for k, v in data.items()})
        clip_grad_norm(m, 5.0)
        opt.step()
        sched.step()
    m.eval()
    want = held_out["tgt_out"]
    for ids, lengths, _ in (m.greedy(held_out["src"], held_out["src_lengths"], max_len=8),
                            m.beam_search(held_out["src"], held_out["src_lengths"], beam_size=3, max_len=8)):
        exact = [lengths[b] == len(test[b][1]) and np.array_equal(ids[:lengths[b] + 1, b],
                                                                   want[:lengths[b] + 1, b])
                 for b in range(len(test))]
        assert np.mean(exact) >= 0.99
