"""ManyToMany, ManyToOne, OneToMany: end-to-end finite differences, step(), config round trips and
small learning tasks."""
import json

import numpy as np
import pytest

from rnnkit import check_module, gradcheck
from rnnkit.data import (Vocab, make_negation_sentiment, make_tagging, pad_sequences,
                         sentiment_words, word_tokenize)
from rnnkit.errors import InputError
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.models.many_to_one import ManyToOne
from rnnkit.models.one_to_many import OneToMany
from rnnkit.optim import Adam

T, B, V, D = 5, 3, 7, 4
LENGTHS = np.array([5, 2, 3])


def rng():
    return np.random.default_rng(1)


def ids(shape=(T, B), high=V):
    return rng().integers(0, high, size=shape)


def check_objective(model, batch, state=None, max_checks=5):
    """Finite differences of loss_sum / count against objective()'s gradient, every parameter."""
    model.zero_grad()
    model.objective(batch, state, train=True)
    params = {n: p for n, p, _ in model.named_parameters()}
    grads = {n: g.copy() for n, _, g in model.named_parameters()}

    def mean_loss():
        loss_sum, count, _, _ = model.objective(batch, state, train=False)
        return loss_sum / count

    errors = gradcheck(mean_loss, params, grads, eps=1e-5, rtol=1e-5, max_checks=max_checks)
    assert set(errors) == set(params)
    assert all(np.any(g != 0) for g in grads.values())      # every parameter is reached
    return errors


# -- ManyToMany -------------------------------------------------------------------------------------
M2M_CASES = {
    "embed-lstm-lengths": (dict(vocab_size=V, embedding_dim=D), "ids", True),
    "one_hot-gru-2layers": (dict(vocab_size=V, one_hot=True, cell="gru", num_layers=2), "ids", True),
    "real-rnn-regress": (dict(input_size=D, output_size=2, cell="rnn", task="regress"), "real", True),
    "tied-proj": (dict(vocab_size=V, embedding_dim=3, proj_size=3, tie_weights=True), "ids", True),
    "bidirectional-2layers": (dict(vocab_size=V, embedding_dim=D, bidirectional=True, num_layers=2),
                              "ids", True),
    "tied-bidirectional": (dict(vocab_size=V, embedding_dim=10, bidirectional=True,
                                tie_weights=True), "ids", False),
    "peepholes": (dict(vocab_size=V, embedding_dim=D, peepholes=True), "ids", False),
    "cho-gru": (dict(input_size=D, output_size=V, cell="gru", reset_after=False), "real", True),
}


def m2m_batch(model, kind, lengths):
    x = ids() if kind == "ids" else rng().standard_normal((T, B, D))          # (T, B[, D])
    if model.task == "classify":
        y = ids(high=model.out.V)                                             # (T, B)
    else:
        y = rng().standard_normal((T, B, model.out.V))                        # (T, B, K)
    batch = {"x": x, "y": y}
    if lengths:
        batch["lengths"] = LENGTHS
    return batch


@pytest.mark.parametrize("case", sorted(M2M_CASES))
def test_many_to_many_gradcheck(case):
    kwargs, kind, lengths = M2M_CASES[case]
    model = ManyToMany(hidden_size=5, dtype="float64", **kwargs)
    check_objective(model, m2m_batch(model, kind, lengths))


def test_dropout_gradcheck_with_fixed_masks():
    model = ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=5, num_layers=2, dropout=0.4,
                       dtype="float64")
    objective = model.objective

    def same_masks(*args, **kwargs):
        model.rnn.rng, model.out.drop.rng = np.random.default_rng(5), np.random.default_rng(6)
        return objective(*args, **kwargs)

    model.objective = same_masks
    check_objective(model, m2m_batch(model, "ids", True))
    x = ids()
    assert not np.allclose(model.infer(x)[0], model.infer(x)[0])      # fresh masks in training
    model.eval()
    np.testing.assert_array_equal(model.infer(x)[0], model.infer(x)[0])


def test_tied_weights_are_one_parameter_with_summed_gradient():
    model = ManyToMany(vocab_size=V, embedding_dim=5, hidden_size=5, tie_weights=True,
                       dtype="float64")
    names = [n for n, _, _ in model.named_parameters()]
    assert "input.embed.W" in names and not any(n.startswith("out.W") or n == "out.E" for n in names)
    assert model.out.params["E"] is model.input.embed.W
    batch = m2m_batch(model, "ids", True)
    model.zero_grad()
    model.objective(batch)
    total = model.input.embed.grads["W"].copy()
    untied = ManyToMany(vocab_size=V, embedding_dim=5, hidden_size=5, dtype="float64")
    untied.load_state_dict({**model.state_dict(), "out.W_y": model.input.embed.W.T.copy()})
    untied.zero_grad()
    untied.objective(batch)
    both_uses = untied.input.embed.grads["W"] + untied.out.grads["W_y"].T   # (V, E)
    np.testing.assert_allclose(total, both_uses, atol=1e-12)


def test_many_to_many_carried_state_and_inputs_gradcheck():
    model = ManyToMany(input_size=D, output_size=3, hidden_size=4, num_layers=2, dtype="float64")
    g = rng()
    inputs = {"x": g.standard_normal((T, B, D)), "h0": g.standard_normal((2, B, 4)),
              "c0": g.standard_normal((2, B, 4)), "lengths": LENGTHS}
    check_module(model, lambda m, x, h0, c0, lengths: m.forward(x, (h0, c0), lengths),
                 lambda m, d, cache: dict(zip(("x", "h0", "c0"), _flat(m.backward(d[0], cache, d[1])))),
                 inputs, max_checks=6)


def _flat(dx_dstate):
    dx, (dh, dc) = dx_dstate
    return dx, dh, dc


@pytest.mark.parametrize("cell,kind", [("lstm", "ids"), ("gru", "real"), ("rnn", "ids")])
def test_step_equals_full_forward(cell, kind):
    kw = dict(vocab_size=V, embedding_dim=D) if kind == "ids" else dict(input_size=D, output_size=V)
    model = ManyToMany(cell=cell, hidden_size=6, num_layers=2, dtype="float64", **kw).eval()
    x = ids() if kind == "ids" else rng().standard_normal((T, B, D))
    y_full, state_full = model.infer(x)
    state = None
    for t in range(T):
        y_t, state = model.step(x[t], state)
        np.testing.assert_allclose(y_t, y_full[t], rtol=1e-12, atol=1e-12)
    pairs = zip(state, state_full) if cell == "lstm" else [(state, state_full)]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_step_refuses_bidirectional():
    model = ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=4, bidirectional=True)
    with pytest.raises(InputError, match="bidirectional"):
        model.step(np.zeros(B, np.int64), None)


# -- ManyToOne --------------------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["last", "mean", "max", "final_states"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_one_gradcheck(readout, bidirectional):
    model = ManyToOne(vocab_size=V, embedding_dim=D, hidden_size=4, num_outputs=3, readout=readout,
                      bidirectional=bidirectional, num_layers=2, dtype="float64")
    check_objective(model, {"x": ids(), "y": np.array([0, 2, 1]), "lengths": LENGTHS})


@pytest.mark.parametrize("cell,readout", [("gru", "mean"), ("rnn", "last")])
def test_many_to_one_regress_real_and_one_hot_gradcheck(cell, readout):
    model = ManyToOne(input_size=D, num_outputs=2, hidden_size=4, cell=cell, readout=readout,
                      task="regress", dtype="float64")
    check_objective(model, {"x": rng().standard_normal((T, B, D)),
                            "y": rng().standard_normal((B, 2)), "lengths": LENGTHS})
    model = ManyToOne(vocab_size=V, one_hot=True, num_outputs=2, hidden_size=4, cell=cell,
                      readout=readout, dtype="float64")
    check_objective(model, {"x": ids(), "y": np.array([0, 1, 1])})


def test_many_to_one_final_states_with_carried_state_gradcheck():
    model = ManyToOne(input_size=D, num_outputs=2, hidden_size=3, cell="gru", bidirectional=True,
                      readout="final_states", dtype="float64")
    g = rng()
    inputs = {"x": g.standard_normal((T, B, D)), "h0": g.standard_normal((2, B, 3)),
              "lengths": LENGTHS}
    check_module(model, lambda m, x, h0, lengths: m.forward(x, h0, lengths),
                 lambda m, d, cache: dict(zip(("x", "h0"), m.backward(d[0], cache, d[1]))),
                 inputs, max_checks=6)


def test_last_readout_equals_final_states_and_ignores_padding():
    x, x2 = ids(), ids()
    pad = np.arange(T)[:, None] >= LENGTHS[None, :]
    x2[~pad] = x[~pad]                                   # same real steps, other padding
    outs = {}
    for readout in ("last", "final_states", "mean", "max"):
        model = ManyToOne(vocab_size=V, embedding_dim=D, hidden_size=4, num_outputs=3,
                          bidirectional=True, readout=readout, dtype="float64")
        outs[readout] = model.infer(x, None, LENGTHS)[0]
        np.testing.assert_allclose(model.infer(x2, None, LENGTHS)[0], outs[readout], atol=1e-12)
    np.testing.assert_allclose(outs["last"], outs["final_states"], atol=1e-12)
    assert not np.allclose(outs["last"], outs["mean"])


# -- OneToMany --------------------------------------------------------------------------------------
@pytest.mark.parametrize("feed", ["init", "every_step"])
@pytest.mark.parametrize("case", ["lstm-embed-2layers", "gru-one_hot", "rnn-real", "lstm-tied-proj"])
def test_one_to_many_gradcheck(feed, case):
    kw = {"lstm-embed-2layers": dict(vocab_size=V, embedding_dim=D, num_layers=2),
          "gru-one_hot": dict(vocab_size=V, one_hot=True, cell="gru"),
          "rnn-real": dict(output_size=3, cell="rnn"),
          "lstm-tied-proj": dict(vocab_size=V, embedding_dim=3, proj_size=3, tie_weights=True)}[case]
    model = OneToMany(input_size=D, hidden_size=5, feed=feed, dtype="float64", **kw)
    y = ids() if model.task == "classify" else rng().standard_normal((T, B, 3))
    check_objective(model, {"v": rng().standard_normal((B, D)), "y": y, "lengths": LENGTHS})


@pytest.mark.parametrize("feed", ["init", "every_step"])
def test_one_to_many_dv_gradcheck(feed):
    model = OneToMany(input_size=D, output_size=2, hidden_size=4, num_layers=2, feed=feed,
                      dtype="float64")
    g = rng()
    inputs = {"v": g.standard_normal((B, D)), "x": g.standard_normal((T, B, 2)), "lengths": LENGTHS}
    check_module(model, lambda m, v, x, lengths: m.forward(v, x, lengths),
                 lambda m, d, cache: dict(zip(("v", "x"), m.backward(d[0], cache, d[1]))),
                 inputs, max_checks=6)


def test_one_to_many_teacher_forcing_inputs_and_generate_steps():
    model = OneToMany(input_size=D, vocab_size=V, embedding_dim=D, hidden_size=5, start_id=6,
                      dtype="float64").eval()
    y = ids()
    x = model.shift_right(y)
    assert (x[0] == 6).all() and (x[1:] == y[:-1]).all()
    v = rng().standard_normal((B, D))
    out, lengths = model.generate(v, max_len=T)
    logits = model.infer(v, model.shift_right(out))[0]     # the greedy path, teacher-forced
    np.testing.assert_array_equal(logits.argmax(-1), out)
    assert (lengths == T).all()
    stop = int(out[1, 0])
    out2, lengths2 = model.generate(v, max_len=T, stop_id=stop)
    before_stop = [int(np.argmax(out[:, b] == stop)) if (out[:, b] == stop).any() else T
                   for b in range(B)]
    np.testing.assert_array_equal(lengths2, before_stop)
    for b in range(B):
        np.testing.assert_array_equal(out2[:before_stop[b] + 1, b], out[:before_stop[b] + 1, b])
    sampled, _ = model.generate(v, max_len=T, temperature=1.0, seed=4)
    np.testing.assert_array_equal(sampled, model.generate(v, max_len=T, temperature=1.0, seed=4)[0])


def test_one_to_many_generates_real_vectors_step_by_step():
    model = OneToMany(input_size=D, output_size=2, hidden_size=5, feed="every_step",
                      dtype="float64").eval()
    v = rng().standard_normal((B, D))
    out, lengths = model.generate(v, max_len=T)
    assert out.shape == (T, B, 2) and (lengths == T).all()
    np.testing.assert_allclose(model.infer(v, model.shift_right(out))[0], out, atol=1e-12)


# -- config and errors ------------------------------------------------------------------------------
def _build(config):
    try:
        from rnnkit.models import build
    except ImportError:
        build = None
    if build is None:
        classes = {"ManyToMany": ManyToMany, "ManyToOne": ManyToOne, "OneToMany": OneToMany}
        return classes[config["type"]](**{k: v for k, v in config.items() if k != "type"})
    return build(config)


@pytest.mark.parametrize("make,args", [
    (lambda: ManyToMany(vocab_size=V, embedding_dim=4, hidden_size=4, tie_weights=True, seed=3,
                        cell="gru", reset_after=False), lambda: (ids(),)),
    (lambda: ManyToOne(vocab_size=V, one_hot=True, hidden_size=4, num_outputs=2, readout="max",
                       bidirectional=True, proj_size=2), lambda: (ids(),)),
    (lambda: OneToMany(input_size=D, output_size=2, hidden_size=4, feed="every_step", cell="rnn",
                       nonlinearity="relu", dtype="float64"),
     lambda: (rng().standard_normal((B, D)), rng().standard_normal((T, B, 2)))),
])
def test_config_build_round_trip(make, args):
    model = make()
    config = json.loads(json.dumps(model.config()))
    assert config["type"] == type(model).__name__
    twin = _build(config)
    assert twin.config() == model.config()
    a, b = model.infer(*args()), twin.infer(*args())
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("make,match", [
    (lambda: ManyToMany(vocab_size=V, input_size=D, hidden_size=4), "vocab_size"),
    (lambda: ManyToMany(vocab_size=V, hidden_size=4), "embedding_dim"),
    (lambda: ManyToMany(vocab_size=V, one_hot=True, hidden_size=4, tie_weights=True), "tie_weights"),
    (lambda: ManyToMany(vocab_size=V, embedding_dim=3, hidden_size=4, tie_weights=True), "tie_weights"),
    (lambda: ManyToMany(input_size=D, hidden_size=4, task="regress"), "output_size"),
    (lambda: ManyToMany(vocab_size=V, embedding_dim=3, hidden_size=4, cell="gru", proj_size=2),
     "proj_size"),
    (lambda: ManyToOne(input_size=D, hidden_size=4, num_outputs=2, readout="first"), "readout"),
    (lambda: OneToMany(input_size=D, vocab_size=V, output_size=2, hidden_size=4), "output_size"),
    (lambda: OneToMany(input_size=D, vocab_size=V, one_hot=True, hidden_size=4, feed="x"), "feed"),
])
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_bad_batches_raise():
    model = ManyToOne(vocab_size=V, embedding_dim=D, hidden_size=4, num_outputs=2)
    with pytest.raises(InputError, match="lengths"):
        model.objective({"x": ids(), "y": np.array([0, 1, 1]), "lengths": np.array([0, 2, 3])})
    with pytest.raises(InputError, match="x"):
        model.objective({"x": ids(high=V + 1) + 1, "y": np.array([0, 1, 1])})


# -- learning ---------------------------------------------------------------------------------------
def fit(model, batches, epochs, lr):
    """Adam over the batches for some epochs."""
    opt = Adam(model, lr=lr)
    for _ in range(epochs):
        for batch in batches:
            model.zero_grad()
            model.objective(batch)
            opt.step()


def accuracy(model, batch):
    loss_sum, count, metrics, _ = model.objective(batch, train=False)
    return metrics["correct"] / count


def test_tagger_learns_the_tagging_rule():
    sentences, tags = make_tagging(400, seed=0)
    vocab = Vocab(sentences, level="word", unk=None, bos=None, eos=None)

    def batch(lo, hi):
        x, lengths = pad_sequences([vocab.encode(s) for s in sentences[lo:hi]])   # (T, B)
        y, _ = pad_sequences(tags[lo:hi])                                          # (T, B)
        return {"x": x, "y": y, "lengths": lengths}

    model = ManyToMany(vocab_size=len(vocab), embedding_dim=16, hidden_size=16, output_size=3,
                       cell="gru")
    fit(model, [batch(i, i + 50) for i in range(0, 300, 50)], epochs=5, lr=0.03)
    assert accuracy(model, batch(300, 400)) >= 0.99


def test_classifier_separates_negated_sentiment():
    vocab = Vocab([sentiment_words()], level="word", unk=None, bos=None, eos=None)

    def batch(sentences, labels):
        x, lengths = pad_sequences([vocab.encode(word_tokenize(s)) for s in sentences])
        return {"x": x, "y": labels, "lengths": lengths}

    s, y, _ = make_negation_sentiment(1000, seed=0)
    model = ManyToOne(vocab_size=len(vocab), embedding_dim=16, hidden_size=24, num_outputs=2)
    fit(model, [batch(s[i:i + 50], y[i:i + 50]) for i in range(0, 1000, 50)], epochs=4, lr=0.02)
    s, y, negated = make_negation_sentiment(400, seed=1)           # held out
    assert accuracy(model, batch(s, y)) >= 0.95
    neg = np.flatnonzero(negated)
    assert accuracy(model, batch([s[i] for i in neg], y[neg])) >= 0.95


@pytest.mark.parametrize("feed", ["init", "every_step"])
def test_one_to_many_reproduces_the_sequence_of_its_class(feed):
    seqs = np.array([[1, 2, 3, 4, 5, 0], [5, 4, 3, 2, 1, 0], [2, 2, 6, 6, 3, 0],
                     [6, 1, 6, 1, 6, 0]]).T                                  # (T, C), 0 = stop
    C = seqs.shape[1]
    v = np.eye(C, dtype=np.float32)                                          # (C, C) one-hot class
    model = OneToMany(input_size=C, vocab_size=8, embedding_dim=8, hidden_size=24, feed=feed,
                      start_id=7)
    fit(model, [{"v": v, "y": seqs}], epochs=150, lr=0.03)
    out, lengths = model.eval().generate(v, max_len=10, stop_id=0)
    np.testing.assert_array_equal(lengths, 5)                               # tokens before the stop
    np.testing.assert_array_equal(out[:6], seqs)


def test_char_language_model_overfits_a_tiny_text():
    text = "the quick brown fox jumps over the lazy dog. "
    vocab = Vocab.from_texts([text], pad=None, unk=None, bos=None, eos=None)
    w = vocab.encode(text + text[0])                                         # (N + 1,)
    batch = {"x": w[:-1, None], "y": w[1:, None]}                            # (T, 1) each
    model = ManyToMany(vocab_size=len(vocab), embedding_dim=24, hidden_size=24, tie_weights=True)
    fit(model, [batch], epochs=200, lr=0.02)
    assert accuracy(model, batch) == 1.0
    x_t, state, chars = w[:1], None, [text[0]]                               # prime with "t"
    for _ in range(len(text) - 1):
        y_t, state = model.step(x_t, state)
        x_t = y_t.argmax(-1)
        chars.append(vocab.itos[int(x_t[0])])
    assert "".join(chars) == text
