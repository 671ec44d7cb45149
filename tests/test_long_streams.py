"""Streams far longer than memory: chunked inference with carried state, TBPTT training with bounded memory."""
import tracemalloc

import numpy as np
import pytest

import rnnkit
from rnnkit import optim
from rnnkit.errors import InputError
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.models.many_to_one import ManyToOne
from rnnkit.streaming import run_stream
from rnnkit.train import StreamWindows, fit


def _states(s):
    """A state as a tuple of arrays."""
    return s if isinstance(s, tuple) else (s,)


def _collect(outs):
    """An on_chunk callback that keeps (t0, out) pairs in `outs`."""
    return lambda t0, out: outs.append((t0, out.copy()))


def _assert_stream_equals_one_shot(module, x, chunk, pieces=None, axis=0):
    """Chunked outputs and final state equal the one-shot forward's (float32 tolerance)."""
    out, state = module.infer(x)
    outs = []
    final = run_stream(module, x if pieces is None else pieces, chunk=chunk, on_chunk=_collect(outs))
    starts = [t0 for t0, _ in outs]
    sizes = [o.shape[axis] for _, o in outs]
    assert starts == list(np.cumsum([0] + sizes[:-1])) and max(sizes) <= chunk
    np.testing.assert_allclose(np.concatenate([o for _, o in outs], axis=axis), out, rtol=1e-5, atol=1e-6)
    for a, b in zip(_states(final), _states(state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: rnnkit.RNN(3, 5, num_layers=2),
    lambda: rnnkit.LSTM(3, 5, proj_size=2),
    lambda: rnnkit.GRU(3, 5),
    lambda: rnnkit.GRU(3, 5, reset_after=False),
    lambda: rnnkit.layers.MinGRU(3, 5),
], ids=["rnn2", "lstm_proj", "gru", "gru_cho", "mingru"])
def test_stream_equals_one_shot(make):
    x = np.random.default_rng(0).standard_normal((1234, 2, 3)).astype(np.float32)   # (T, B, D)
    _assert_stream_equals_one_shot(make(), x, chunk=500)


def test_stream_of_ragged_pieces_and_batch_first():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((700, 3, 4)).astype(np.float32)                           # (T, B, D)
    pieces = (x[a:b] for a, b in [(0, 1), (1, 250), (250, 250), (250, 700)])          # one is empty
    _assert_stream_equals_one_shot(rnnkit.LSTM(4, 6), x, chunk=128, pieces=pieces)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))                                   # (B, T, D)
    _assert_stream_equals_one_shot(rnnkit.GRU(4, 6, batch_first=True), xb, chunk=300, axis=1)


def test_stream_many_to_many_ids_and_initial_state():
    m = ManyToMany(vocab_size=11, embedding_dim=4, hidden_size=8, cell="lstm")
    ids = np.random.default_rng(2).integers(0, 11, size=(900, 2))                    # (T, B)
    s0 = tuple(np.full((1, 2, 8), 0.1, np.float32) for _ in range(2))
    y, state = m.infer(ids, s0)
    outs = []
    final = run_stream(m, ids, chunk=256, state=s0, on_chunk=_collect(outs))
    np.testing.assert_allclose(np.concatenate([o for _, o in outs]), y, rtol=1e-5, atol=1e-6)
    for a, b in zip(final, state):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_stream_runs_in_eval_mode_and_restores_it():
    m = rnnkit.LSTM(3, 6, num_layers=2, dropout=0.5)                                  # training mode
    x = np.random.default_rng(3).standard_normal((300, 2, 3)).astype(np.float32)
    m.eval()
    _, want = m.infer(x)
    m.train()
    got = run_stream(m, x, chunk=100)
    assert m.training and all(c.training for c in m.modules())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_empty_stream_returns_the_given_state():
    m = rnnkit.GRU(3, 4)
    s0 = np.ones((1, 2, 4), np.float32)
    assert run_stream(m, np.zeros((0, 2, 3), np.float32), chunk=10, state=s0) is s0
    assert run_stream(m, [], chunk=10) is None


@pytest.mark.parametrize("module, xs, kwargs, match", [
    (rnnkit.LSTM(3, 4, bidirectional=True), np.zeros((5, 1, 3), np.float32), {}, "module: a bidirectional"),
    (ManyToOne(input_size=3, num_outputs=2, hidden_size=4), np.zeros((5, 1, 3), np.float32), {}, "module:"),
    (rnnkit.Linear(3, 4), np.zeros((5, 1, 3), np.float32), {}, "module:"),
    (rnnkit.LSTM(3, 4), np.zeros((5, 1, 3), np.float32), {"chunk": 0}, "chunk:"),
    (rnnkit.LSTM(3, 4), np.zeros((5, 1, 3), np.float32), {"chunk": 2.5}, "chunk:"),
    (rnnkit.LSTM(3, 4), np.zeros((5, 1, 3), np.float32), {"on_chunk": 3}, "on_chunk:"),
    (rnnkit.LSTM(3, 4), None, {}, "xs:"),
    (rnnkit.LSTM(3, 4), [np.zeros((5, 1, 3), np.float32), "abc"], {}, r"xs\[1\]:"),
    (rnnkit.LSTM(3, 4), np.float32(1.0), {}, "xs:"),
    (rnnkit.LSTM(3, 4), np.zeros((5, 1, 2), np.float32), {}, "x:"),
])
def test_stream_bad_arguments(module, xs, kwargs, match):
    with pytest.raises(InputError, match=match):
        run_stream(module, xs, **kwargs)


# -- a million steps ------------------------------------------------------------------------------
T_LONG, CHUNK, B, D, H = 1_000_000, 10_000, 4, 2, 4


def _chunk(k, n=CHUNK):
    """Chunk k (n, B, D) of a long stream, made on demand: the stream never sits in memory."""
    return np.random.default_rng([7, k]).standard_normal((n, B, D)).astype(np.float32)


def _traced_peak(n_chunks, chunk):
    """Peak traced bytes of run_stream over n_chunks generated chunks of `chunk` steps."""
    m = rnnkit.LSTM(D, H)
    m.infer(_chunk(0, 2))                      # compiled before tracing: JIT memory is not the stream's
    tracemalloc.start()
    try:
        run_stream(m, (_chunk(k, chunk) for k in range(n_chunks)), chunk=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_stream_peak_memory_depends_on_chunk_not_length():
    short, long = _traced_peak(4, 1_000), _traced_peak(40, 1_000)                   # 4,000 vs 40,000 steps
    assert long < 1.2 * short + 32_000, f"peak {long} bytes on the long stream vs {short} on the short"


def test_million_step_stream_carries_state_in_chunks_with_bounded_memory():
    m = rnnkit.LSTM(D, H)
    prefix = np.concatenate([_chunk(0), _chunk(1)])                                  # (2 CHUNK, B, D)
    want_out, _ = m.infer(prefix)
    outs, seen = [], []

    def on_chunk(t0, out):
        seen.append(t0)
        if t0 < len(prefix):
            outs.append(out.copy())

    tracemalloc.start()
    try:
        final = run_stream(m, (_chunk(k) for k in range(T_LONG // CHUNK)), chunk=CHUNK,
                           on_chunk=on_chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == list(range(0, T_LONG, CHUNK))
    full_output = T_LONG * B * H * 4                                                  # (T, B, H) float32: 64 MB
    assert peak < full_output / 8, f"peak {peak} bytes; the full output alone is {full_output}"
    np.testing.assert_allclose(np.concatenate(outs), want_out, rtol=1e-5, atol=1e-6)
    assert all(s.shape == (1, B, H) and np.all(np.isfinite(s)) for s in final)


# -- truncated BPTT on a long text ----------------------------------------------------------------
def _tbptt_peak(n_tokens):
    """Peak traced bytes of one TBPTT epoch over a stream of n_tokens (the stream itself excluded)."""
    ids = np.random.default_rng(4).integers(0, 16, size=n_tokens)                    # (N,)
    data = StreamWindows(ids, batch_size=4, seq_len=25)
    model = ManyToMany(vocab_size=16, embedding_dim=8, hidden_size=16, cell="lstm")
    opt = optim.Adam(model, lr=1e-3)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        res = fit(model, opt, data, epochs=1, tbptt=True, log_every=10**6, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.steps == len(data) and res.skipped == 0
    return peak - base, len(data)


def test_tbptt_training_memory_does_not_grow_with_stream_length():
    _tbptt_peak(500)                           # compiles the kernels before any peak counts
    short, n_short = _tbptt_peak(2_000)
    long, n_long = _tbptt_peak(20_000)
    assert n_long >= 9 * n_short
    assert long < 1.5 * short + 64_000, f"peak {long} bytes on the long stream vs {short} on the short"
