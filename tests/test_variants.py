"""Layer norm, the regularisers, learnable initial states and the initialisation options of
rnnkit.RNN/LSTM/GRU: finite differences (float64, masks held fixed by reseeding the layer's
generator), the numba path against kernels="numpy", and the equations written out in NumPy."""
import numpy as np
import pytest

import rnnkit
from rnnkit.errors import InputError
from rnnkit.gradcheck import check_module

T, B, D, H = 4, 3, 3, 4
DROP = dict(input_dropout=0.3, recurrent_dropout=0.3, weight_drop=0.3)
VARIANTS = {  # name: (class, options, training mode)
    "ln_lstm": (rnnkit.LSTM, dict(layer_norm=True), True),
    "ln_lstm_proj_peep": (rnnkit.LSTM, dict(layer_norm=True, proj_size=2, peepholes=True), True),
    "ln_gru": (rnnkit.GRU, dict(layer_norm=True), True),
    "ln_rnn": (rnnkit.RNN, dict(layer_norm=True, nonlinearity="relu"), True),
    "drop_lstm_proj": (rnnkit.LSTM, dict(DROP, proj_size=3), True),
    "drop_gru": (rnnkit.GRU, DROP, True),
    "drop_gru_cho": (rnnkit.GRU, dict(DROP, reset_after=False), True),
    "drop_rnn": (rnnkit.RNN, DROP, True),
    "dropconnect_lstm_fused": (rnnkit.LSTM, dict(input_dropout=0.3, weight_drop=0.3), True),
    "zoneout_lstm": (rnnkit.LSTM, dict(zoneout=0.3, zoneout_c=0.5), True),
    "zoneout_gru_eval": (rnnkit.GRU, dict(zoneout=0.3), False),
    "learn_init_lstm": (rnnkit.LSTM, dict(learn_init=True, init="orthogonal"), True),
    "everything_lstm": (rnnkit.LSTM, dict(DROP, layer_norm=True, zoneout=0.2, learn_init=True), True),
    "everything_gru": (rnnkit.GRU, dict(DROP, layer_norm=True, zoneout=0.2, learn_init=True), True),
}


def build(name, kernels="numba", num_layers=2, bidirectional=True, seed=0):
    cls, kw, train = VARIANTS[name]
    m = cls(D, H, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, seed=seed,
            kernels=kernels, **kw)
    m.train(train)
    rng = np.random.default_rng(seed + 7)
    for n in m.init_names:     # away from 0, where LN(h W_h) has its singular point
        m.params[n][...] = rng.standard_normal(m.params[n].shape)
    return m


def inputs_for(m, seed=0):
    rng = np.random.default_rng(seed)
    n, H_out = m.num_layers * m.dirs, m.proj_size or H
    inputs = {"x": rng.standard_normal((T, B, D))}
    if not m.init_names:       # a learnable initial state is a parameter: state=None
        inputs["h0"] = rng.standard_normal((n, B, H_out))
        if m.mode == "lstm":
            inputs["c0"] = rng.standard_normal((n, B, H))
    return inputs


def run(m, lengths, x, h0=None, c0=None):
    m.rng = np.random.default_rng(99)          # the same masks on every call
    state = None if h0 is None else (h0, c0) if m.mode == "lstm" else h0
    return m.forward(x, state, lengths)


def grads_of(m, douts, cache):
    dx, ds = m.backward(douts[0], cache, douts[1])
    if m.init_names:
        return {"x": dx}
    return dict(x=dx, h0=ds[0], c0=ds[1]) if m.mode == "lstm" else dict(x=dx, h0=ds)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_gradients(name, kernels):
    m = build(name, kernels)
    lengths = None if name.endswith("fused") else np.array([3, 4, 1])    # no lengths: the fused kernels
    inputs = inputs_for(m)
    errs = check_module(m, lambda m, **kw: run(m, lengths, **kw), grads_of, inputs, rtol=1e-5, atol=1e-8,
                        max_checks=6)
    assert set(errs) == set(inputs) | {n for n, _, _ in m.named_parameters()}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_numba_path_equals_numpy_path(name):
    results = []
    for kernels in ("numba", "numpy"):
        m = build(name, kernels, seed=3)
        inputs = inputs_for(m, seed=3)
        lengths = None if name.startswith("drop") else np.array([4, 2, 3])
        out, state, cache = run(m, lengths, **inputs)
        rng = np.random.default_rng(5)
        G = rng.standard_normal(out.shape)
        Gs = tuple(rng.standard_normal(s.shape) for s in (state if m.mode == "lstm" else (state,)))
        m.zero_grad()
        dx, ds = m.backward(G, cache, Gs if m.mode == "lstm" else Gs[0])
        ds = ds if isinstance(ds, tuple) else (ds,)
        results.append([out, dx, *ds] + [g.copy() for _, _, g in m.named_parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_dropout_and_weight_drop_keep_the_fused_kernels():
    m = build("dropconnect_lstm_fused")
    _, _, cache = m.forward(np.ones((T, B, D)))
    assert all("fused" in c for c in cache["units"])
    m = rnnkit.LSTM(D, H, dtype=np.float64, recurrent_dropout=0.3)
    _, _, cache = m.forward(np.ones((T, B, D)))
    assert "fused" not in cache["units"][0]


# -- the equations written out -------------------------------------------------------------------
def sig(a):
    return 1 / (1 + np.exp(-a))


def ln(a, g, b=0.0):
    mu, var = a.mean(-1, keepdims=True), a.var(-1, keepdims=True)
    return g * (a - mu) / np.sqrt(var + 1e-5) + b


def randomise(m, seed):
    rng = np.random.default_rng(seed)
    for name, p, _ in m.named_parameters():
        gain = name.split(".")[-1] in ("ln_x_g", "ln_h_g", "ln_c_g")
        p[...] = rng.uniform(0.5, 1.5, p.shape) if gain else 0.5 * rng.standard_normal(p.shape)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_layer_norm_lstm_equations(kernels):
    m = rnnkit.LSTM(D, H, layer_norm=True, dtype=np.float64, kernels=kernels)
    randomise(m, 1)
    P = m.children["l0"].params
    rng = np.random.default_rng(2)
    x, h, c = rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    out, (hn, cn), _ = m.forward(x, (h[None], c[None]))
    for t in range(T):
        a = ln(x[t] @ P["W_x"], P["ln_x_g"]) + P["b_x"] + ln(h @ P["W_h"], P["ln_h_g"]) + P["b_h"]
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(ln(c, P["ln_c_g"], P["ln_c_b"]))
        np.testing.assert_allclose(out[t], h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cn[0], c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_layer_norm_gru_equations(kernels):
    m = rnnkit.GRU(D, H, layer_norm=True, dtype=np.float64, kernels=kernels)
    randomise(m, 3)
    P = m.children["l0"].params
    rng = np.random.default_rng(4)
    x, h = rng.standard_normal((T, B, D)), rng.standard_normal((B, H))
    out, _, _ = m.forward(x, h[None])
    for t in range(T):
        ax = ln(x[t] @ P["W_x"], P["ln_x_g"]) + P["b_x"]
        ah = ln(h @ P["W_h"], P["ln_h_g"]) + P["b_h"]
        r, z = sig(ax[:, :H] + ah[:, :H]), sig(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
        h = (1 - z) * n + z * h
        np.testing.assert_allclose(out[t], h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_regularised_lstm_equations_with_the_drawn_masks(kernels):
    m = rnnkit.LSTM(D, H, dtype=np.float64, kernels=kernels, zoneout=0.4, zoneout_c=0.6, **DROP)
    P = m.children["l0"].params
    rng = np.random.default_rng(5)
    x, h, c = rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    out, _, cache = m.forward(x, (h[None], c[None]))
    noise = cache["units"][0]["noise"]
    mx, mh, MW, (zh, zc) = noise["x"], noise["h"], noise["W"], noise["zone"]
    assert mx.shape == (B, D) and mh.shape == (B, H) and MW.shape == (H, 4 * H) and zh.shape == (T, B, H)
    for mask in (mx, mh, MW):
        np.testing.assert_allclose(np.unique(mask), [0, 1 / 0.7])
    assert set(np.unique(zh)) == {0.0, 1.0} and set(np.unique(zc)) == {0.0, 1.0}
    for t in range(T):
        a = (x[t] * mx) @ P["W_x"] + P["b_x"] + (h * mh) @ (P["W_h"] * MW) + P["b_h"]
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        h, c = zh[t] * h + (1 - zh[t]) * h_new, zc[t] * c + (1 - zc[t]) * c_new
        np.testing.assert_allclose(out[t], h, rtol=1e-10, atol=1e-12)


def test_gru_recurrent_dropout_masks_only_the_matrix_product():
    m = rnnkit.GRU(D, H, dtype=np.float64, recurrent_dropout=0.5)
    P = m.children["l0"].params
    rng = np.random.default_rng(6)
    x, h = rng.standard_normal((T, B, D)), rng.standard_normal((B, H))
    out, _, cache = m.forward(x, h[None])
    mh = cache["units"][0]["noise"]["h"]
    for t in range(T):
        ax, ah = x[t] @ P["W_x"] + P["b_x"], (h * mh) @ P["W_h"] + P["b_h"]
        r, z = sig(ax[:, :H] + ah[:, :H]), sig(ax[:, H:2 * H] + ah[:, H:2 * H])
        h = (1 - z) * np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:]) + z * h
        np.testing.assert_allclose(out[t], h, rtol=1e-10, atol=1e-12)


def test_evaluation_drops_nothing_and_zoneout_takes_the_expectation():
    x = np.random.default_rng(7).standard_normal((T, B, D))
    plain = rnnkit.GRU(D, H, dtype=np.float64, seed=4)
    m = rnnkit.GRU(D, H, dtype=np.float64, seed=4, **DROP).eval()
    before = m.rng.bit_generator.state
    np.testing.assert_allclose(m(x)[0], plain(x)[0], rtol=1e-12, atol=1e-15)
    assert m.rng.bit_generator.state == before                  # no mask drawn
    z = rnnkit.GRU(D, H, dtype=np.float64, seed=4, zoneout=0.25).eval()
    out, _ = z(x)
    h = np.zeros((1, B, H))
    for t in range(T):
        h_new = plain(x[t:t + 1], h)[1]
        h = 0.25 * h + 0.75 * h_new
        np.testing.assert_allclose(out[t], h[0], rtol=1e-12)


def test_masks_are_redrawn_each_call_in_training():
    m = rnnkit.LSTM(D, H, dtype=np.float64, input_dropout=0.5, recurrent_dropout=0.5)
    x = np.ones((T, 8, D))
    n1 = m.forward(x)[2]["units"][0]["noise"]
    n2 = m.forward(x)[2]["units"][0]["noise"]
    assert not np.array_equal(n1["x"], n2["x"]) or not np.array_equal(n1["h"], n2["h"])


# -- learnable initial state, initialisation -------------------------------------------------------
def test_learned_initial_state():
    m = rnnkit.LSTM(D, H, num_layers=2, bidirectional=True, dtype=np.float64, learn_init=True)
    assert m.params["h0"].shape == (4, H) and m.params["c0"].shape == (4, H)
    rng = np.random.default_rng(8)
    m.params["h0"][...], m.params["c0"][...] = rng.standard_normal((2, 4, H))
    x = rng.standard_normal((T, B, D))
    out, _, cache = m.forward(x)
    state = tuple(np.repeat(m.params[n][:, None], B, axis=1) for n in ("h0", "c0"))
    np.testing.assert_array_equal(out, m.forward(x, state)[0])
    m.zero_grad()
    _, (dh, dc) = m.backward(np.ones_like(out), cache)
    np.testing.assert_allclose(m.grads["h0"], dh.sum(1))
    np.testing.assert_allclose(m.grads["c0"], dc.sum(1))
    m.zero_grad()
    m.backward(np.ones_like(out), m.forward(x, state)[2])       # a state passed in: no gradient to h0
    assert not m.grads["h0"].any()
    assert {"h0", "c0", "weight_ih_l1_reverse"} <= set(m.torch_state_dict())


def test_forget_bias_default_one_and_the_pytorch_initialisation():
    a, b = rnnkit.LSTM(D, H, seed=1), rnnkit.LSTM(D, H, seed=1, forget_bias=0.0)
    da = a.children["l0"].params["b_x"] - b.children["l0"].params["b_x"]
    np.testing.assert_allclose(da, np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)], atol=1e-6)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.LSTM(D, H)                                  # forget_bias=0.0: PyTorch's U(±1/sqrt(H))
    for name, p in b.torch_state_dict().items():
        bound = 1 / np.sqrt(H)
        assert p.shape == tuple(getattr(ref, name).shape) and np.abs(p).max() <= bound
    np.testing.assert_array_equal(a.children["l0"].params["W_h"], b.children["l0"].params["W_h"])
    assert "forget_bias" not in a.config() and b.config()["forget_bias"] == 0.0
    f = rnnkit.functional.sigmoid(a.children["l0"].params["b_x"][H:2 * H] + a.children["l0"].params["b_h"][H:2 * H])
    assert f.mean() > 0.65                                     # open forget gates at the start
    with pytest.raises(InputError, match="forget_bias"):
        rnnkit.GRU(D, H, forget_bias=1.0)


def test_orthogonal_and_identity_initialisation():
    m = rnnkit.GRU(D, H, num_layers=2, init="orthogonal", dtype=np.float64)
    for _, _, unit in m.units():
        for g in range(3):
            W = unit.params["W_h"][:, g * H:(g + 1) * H]
            np.testing.assert_allclose(W.T @ W, np.eye(H), atol=1e-12)
    irnn = rnnkit.RNN(D, H, nonlinearity="relu", init="identity", init_gain=0.5)
    P = irnn.children["l0"].params
    np.testing.assert_array_equal(P["W_h"], 0.5 * np.eye(H))
    assert not P["b_x"].any() and not P["b_h"].any()
    with pytest.raises(InputError, match="identity"):
        rnnkit.LSTM(D, H, init="identity")


# -- state dicts, config, bad options ----------------------------------------------------------------
def test_state_dict_names_and_config_round_trip():
    m = rnnkit.LSTM(D, H, bidirectional=True, layer_norm=True, zoneout=0.1, seed=2)
    sd = m.torch_state_dict()
    assert {"ln_x_g_l0", "ln_h_g_l0_reverse", "ln_c_g_l0", "ln_c_b_l0_reverse", "weight_hh_l0"} <= set(sd)
    assert set(rnnkit.LSTM(D, H, bidirectional=True).torch_state_dict()) == {
        f"{w}_l0{s}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for s in ("", "_reverse")}
    cfg = m.config()
    assert cfg["layer_norm"] is True and cfg["zoneout"] == 0.1
    kw = {k: v for k, v in cfg.items() if k != "type"}
    twin = rnnkit.LSTM(**kw)
    twin.load_torch_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(np.float32)
    np.testing.assert_array_equal(twin.eval()(x)[0], m.eval()(x)[0])


@pytest.mark.parametrize("cls,kw,match", [
    (rnnkit.LSTM, dict(layer_nrom=True), "layer_nrom"),
    (rnnkit.LSTM, dict(input_dropout=1.0), "input_dropout"),
    (rnnkit.GRU, dict(recurrent_dropout=-0.1), "recurrent_dropout"),
    (rnnkit.GRU, dict(zoneout_c=0.1), "zoneout_c"),
    (rnnkit.GRU, dict(layer_norm=True, reset_after=False), "layer_norm"),
    (rnnkit.RNN, dict(layer_norm=1), "layer_norm"),
    (rnnkit.RNN, dict(init="xavier"), "init"),
    (rnnkit.RNN, dict(init_gain=0.0), "init_gain"),
])
def test_bad_options(cls, kw, match):
    with pytest.raises(InputError, match=match):
        cls(D, H, **kw)


def test_float32_default_path_matches_float64():
    x = np.random.default_rng(9).standard_normal((T, B, D))
    outs = [rnnkit.LSTM(D, H, layer_norm=True, zoneout=0.2, dtype=dt).eval()(x.astype(dt))[0]
            for dt in (np.float32, np.float64)]
    assert outs[0].dtype == np.float32
    np.testing.assert_allclose(outs[0], outs[1], atol=2e-5)


# -- embedding dropout --------------------------------------------------------------------------------
def test_embedding_dropout_drops_whole_words():
    e = rnnkit.EmbeddingDropout(10, 5, dropout=0.5, dtype=np.float64, seed=1)
    ids = np.array([[1, 2, 1, 3], [2, 2, 4, 1]])
    out, cache = e.forward(ids)
    ids_, scale = cache
    np.testing.assert_allclose(out, e.W[ids] * scale[ids][..., None])
    np.testing.assert_allclose(np.unique(scale), [0.0, 2.0])
    for v in np.unique(ids):                                      # one decision per word type
        assert len({bool(out[p].any()) for p in zip(*np.nonzero(ids == v))}) == 1
    e.eval()
    out, cache = e.forward(ids)
    np.testing.assert_array_equal(out, e.W[ids])
    assert rnnkit.EmbeddingDropout(**{k: v for k, v in e.config().items() if k != "type"}).p == 0.5


def test_embedding_dropout_gradient():
    e = rnnkit.EmbeddingDropout(6, 3, dropout=0.4, dtype=np.float64)
    ids = np.array([[0, 1, 5], [1, 1, 2]])

    def forward(m):
        m.rng = np.random.default_rng(3)
        return m.forward(ids)

    errs = check_module(e, forward, lambda m, d, c: m.backward(d[0], c), {}, rtol=1e-6)
    assert set(errs) == {"W"}


@pytest.mark.parametrize("shape", [(0, 3, D), (4, 0, D)])
@pytest.mark.parametrize("kw", [dict(layer_norm=True), dict(zoneout=0.1, recurrent_dropout=0.2),
                                dict(layer_norm=True, bidirectional=True, num_layers=2, learn_init=True)])
def test_empty_sequences_pass_the_state_through(shape, kw):
    m = rnnkit.LSTM(D, H, dtype=np.float64, **kw)
    T, B, _ = shape
    state = (np.ones((m.num_layers * m.dirs, B, H)), np.full((m.num_layers * m.dirs, B, H), 2.0))
    out, (h, c), cache = m.forward(np.zeros(shape), state)
    assert out.shape == (T, B, m.dirs * H)
    np.testing.assert_array_equal(h, state[0])
    np.testing.assert_array_equal(c, state[1])
    dstate = (np.full_like(h, 3.0), np.full_like(c, 4.0))
    dx, (dh, dc) = m.backward(np.zeros_like(out), cache, dstate)
    assert dx.shape == shape
    np.testing.assert_array_equal(dh, dstate[0])
    np.testing.assert_array_equal(dc, dstate[1])
