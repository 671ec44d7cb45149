"""Keras weights: layers built by from_keras reproduce Keras 3's outputs and final states (known
outputs in tests/fixtures/keras_fixtures.npz, written by make_keras_fixtures.py; Keras itself is not
needed here), to_keras inverts from_keras exactly, and rnnkit -> Keras -> rnnkit keeps the function."""
import os

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import DTypeError, InputError, ShapeError
from rnnkit.io.keras import from_keras, to_keras

FIXTURES = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "keras_fixtures.npz"),
                   allow_pickle=False)
CASES = {   # fixture name: (kind, from_keras keyword arguments)
    "simple_rnn": ("SimpleRNN", {}),
    "simple_rnn_relu": ("SimpleRNN", dict(activation="relu")),
    "lstm": ("LSTM", {}),
    "gru_reset_after": ("GRU", dict(reset_after=True)),
    "gru_reset_before": ("GRU", dict(reset_after=False)),
    "bidirectional_lstm": ("LSTM", dict(bidirectional=True)),
    "bidirectional_gru": ("GRU", dict(bidirectional=True, reset_after=True)),
}


def fixture(name):
    """(the get_weights() list, {key: array} of the rest) of one case."""
    prefix = name + "/"
    rest = {k[len(prefix):]: FIXTURES[k] for k in FIXTURES.files if k.startswith(prefix)}
    n = sum(k.startswith("w") for k in rest)
    return [rest.pop(f"w{i}") for i in range(n)], rest


def keras_state(kind, f, dtype):
    """The fixture's initial state in rnnkit's layout (1, B, H), or None."""
    if "h0" not in f:
        return None
    h0 = f["h0"][None].astype(dtype)
    return (h0, f["c0"][None].astype(dtype)) if kind == "LSTM" else h0


def test_fixture_file_is_whole():
    assert str(FIXTURES["keras_version"]).startswith("3.")
    for name in CASES:
        weights, f = fixture(name)
        assert len(weights) in (3, 6) and {"x", "out"} <= set(f)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_outputs_match_keras(name, dtype):
    kind, kw = CASES[name]
    weights, f = fixture(name)
    m = from_keras(kind, weights, batch_first=True, dtype=dtype, **kw)
    assert m.params == {} and m.hidden_size == 4 and m.bidirectional == kw.get("bidirectional", False)
    out, state = m(f["x"].astype(dtype), keras_state(kind, f, dtype))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, f["out"], rtol=1e-5, atol=1e-5)
    if kind == "LSTM" and "h" in f:
        np.testing.assert_allclose(state[0][0], f["h"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1][0], f["c"], rtol=1e-5, atol=1e-5)
    elif "h" in f:
        np.testing.assert_allclose(state[0], f["h"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_to_keras_inverts_from_keras(name):
    kind, kw = CASES[name]
    weights, _ = fixture(name)
    back = to_keras(from_keras(kind, weights, **kw))
    assert len(back) == len(weights)
    for got, want in zip(back, weights):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_gate_blocks_and_biases_land_where_the_equations_say():
    rng = np.random.default_rng(0)
    H = 2
    kernel, recurrent, bias = (rng.standard_normal(s).astype(np.float32) for s in ((3, 6), (2, 6), (2, 6)))
    unit = from_keras("GRU", [kernel, recurrent, bias]).children["l0"].params
    np.testing.assert_array_equal(unit["W_x"][:, :H], kernel[:, H:2 * H])        # rnnkit r = Keras r
    np.testing.assert_array_equal(unit["W_h"][:, H:2 * H], recurrent[:, :H])     # rnnkit z = Keras z
    np.testing.assert_array_equal(unit["b_h"][2 * H:], bias[1, 2 * H:])          # candidate: last
    cho = from_keras("GRU", [kernel, recurrent, bias[0]], reset_after=False).children["l0"].params
    np.testing.assert_array_equal(cho["b_h"], 0)
    k, r, b = (rng.standard_normal(s).astype(np.float32) for s in ((3, 8), (2, 8), (8,)))
    p = from_keras("LSTM", [k, r, b]).children["l0"].params
    np.testing.assert_array_equal(p["W_x"], k)                                    # i, f, c, o = i, f, g, o
    np.testing.assert_array_equal(p["b_x"], b)
    np.testing.assert_array_equal(p["b_h"], 0)


@pytest.mark.parametrize("cls,kw", [(rnnkit.RNN, {}), (rnnkit.RNN, dict(nonlinearity="relu")),
                                    (rnnkit.LSTM, {}), (rnnkit.GRU, dict(reset_after=True)),
                                    (rnnkit.GRU, dict(reset_after=False))])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_rnnkit_to_keras_and_back_keeps_the_function(cls, kw, num_layers, bidirectional):
    m = cls(3, 4, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, seed=5, **kw)
    kind = {rnnkit.RNN: "SimpleRNN", rnnkit.LSTM: "LSTM", rnnkit.GRU: "GRU"}[cls]
    extra = dict(activation=kw.get("nonlinearity", "tanh")) if cls is rnnkit.RNN else {}
    w = to_keras(m)                                # b_h is non-zero: folded where Keras has one bias
    assert isinstance(w[0], list) == (num_layers > 1)
    back = from_keras(kind, w, reset_after=kw.get("reset_after", True), bidirectional=bidirectional,
                      dtype=np.float64, **extra)
    x = np.random.default_rng(5).standard_normal((6, 2, 3))
    out, state = m(x)
    out2, state2 = back(x)
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-12)
    for s, s2 in zip(state if cls is rnnkit.LSTM else [state], state2 if cls is rnnkit.LSTM else [state2]):
        np.testing.assert_allclose(s2, s, rtol=1e-12, atol=1e-12)


def test_stacked_layers_equal_single_layers_chained():
    _, f = fixture("lstm")
    rng = np.random.default_rng(1)
    layers = [[rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes]
              for shapes in (((3, 16), (4, 16), (16,)), ((4, 16), (4, 16), (16,)))]
    stacked = from_keras("LSTM", layers, batch_first=True)
    assert stacked.num_layers == 2
    first, second = (from_keras("LSTM", w, batch_first=True) for w in layers)
    want = second(first(f["x"])[0])[0]
    np.testing.assert_allclose(stacked(f["x"])[0], want, rtol=1e-6, atol=1e-7)
    assert all(np.array_equal(a, b) for got, w in zip(to_keras(stacked), layers) for a, b in zip(got, w))


def test_keras_layer_without_bias():
    weights, f = fixture("gru_reset_after")
    m = from_keras("gru", weights[:2], batch_first=True)
    P = m.children["l0"].params
    assert not P["b_x"].any() and not P["b_h"].any()
    zero = from_keras("GRU", weights[:2] + [np.zeros_like(weights[2])], batch_first=True)
    np.testing.assert_array_equal(m(f["x"])[0], zero(f["x"])[0])


def test_errors_name_the_argument():
    weights, _ = fixture("lstm")
    with pytest.raises(InputError, match="kind"):
        from_keras("ConvLSTM", weights)
    with pytest.raises(InputError, match="3 arrays"):
        from_keras("LSTM", weights + [weights[2]])
    with pytest.raises(InputError, match="6 arrays"):
        from_keras("LSTM", weights, bidirectional=True)
    with pytest.raises(ShapeError, match=r"weights\[2\] \(bias\)"):
        from_keras("GRU", fixture("gru_reset_before")[0], reset_after=True)
    with pytest.raises(ShapeError, match=r"weights\[0\] \(kernel\).*\(3, 12\)"):
        from_keras("GRU", weights)
    with pytest.raises(DTypeError, match="float"):
        from_keras("LSTM", [w.astype(np.int64) for w in weights])
    with pytest.raises(InputError, match="activation"):
        from_keras("LSTM", weights, activation="relu")
    with pytest.raises(InputError, match="weights"):
        from_keras("LSTM", [])
    with pytest.raises(InputError, match="peepholes"):
        to_keras(rnnkit.LSTM(3, 4, peepholes=True))
    with pytest.raises(InputError, match="layer"):
        to_keras(rnnkit.Linear(3, 4))
    odd = rnnkit.GRU(3, 4)
    odd.children["l0"].add_param("g_ln", np.ones(12, np.float32))     # a parameter Keras lacks
    with pytest.raises(InputError, match="l0.g_ln"):
        to_keras(odd)
