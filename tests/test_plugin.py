"""Plug-in cells: the CIFG example (examples/plugin_cifg.py) by finite differences and against its
equations, an LSTM written as a plug-in against rnnkit.LSTM, truncated BPTT, and bad cells."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit import cells
from rnnkit.errors import InputError, ShapeError
from rnnkit.gradcheck import check_module

T, B, D, H = 4, 3, 3, 4
_spec = importlib.util.spec_from_file_location(
    "plugin_cifg", Path(__file__).resolve().parents[1] / "examples" / "plugin_cifg.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
CIFG = example.CIFG


def lstm_gates(a, rest):
    m, c, cache = cells.lstm_cell(a, rest[0])
    return m, (c,), cache


def lstm_gates_backward(dh, drest, cache):
    da, dc_prev, _ = cells.lstm_cell_backward(dh, drest[0], cache)
    return da, (dc_prev,)


PLUGIN_LSTM = rnnkit.Cell("plugin_lstm", 4, 1, lstm_gates, lstm_gates_backward)


def two_state_gates(a, rest):
    """u = σ(a_1) u_prev + tanh(a_2), v = v_prev / 2 + u, h = tanh(v): a cell with two extra states."""
    u_prev, v_prev = rest
    H = u_prev.shape[1]
    s, g = 1 / (1 + np.exp(-a[:, :H])), np.tanh(a[:, H:])
    u = s * u_prev + g
    v = v_prev / 2 + u
    h = np.tanh(v)
    return h, (u, v), (s, g, u_prev, h)


def two_state_backward(dh, drest, cache):
    s, g, u_prev, h = cache
    dv = drest[1] + dh * (1 - h * h)
    du = drest[0] + dv
    return np.concatenate([du * u_prev * s * (1 - s), du * (1 - g * g)], 1), (du * s, dv / 2)


TWO_STATE = rnnkit.Cell("two_state", 2, 2, two_state_gates, two_state_backward)


def gradcheck_net(m, lengths, learned=False):
    rng = np.random.default_rng(0)
    n, k = m.num_layers * m.dirs, m.cell.n_states
    inputs = {"x": rng.standard_normal((T, B, D))}
    if not learned:
        inputs.update({f"s{i}": rng.standard_normal((n, B, H)) for i in range(k)})
    for name in m.init_names:
        m.params[name][...] = rng.standard_normal(m.params[name].shape)

    def forward(m, x, **s):
        m.rng = np.random.default_rng(99)
        state = None if learned else s["s0"] if k == 1 else tuple(s[f"s{i}"] for i in range(k))
        return m.forward(x, state, lengths)

    def backward(m, d, cache):
        dx, ds = m.backward(d[0], cache, d[1])
        return {"x": dx} if learned else {"x": dx, **{f"s{i}": g for i, g in enumerate(ds)}}

    errs = check_module(m, forward, backward, inputs, rtol=1e-5, atol=1e-8, max_checks=8)
    assert set(errs) == set(inputs) | {name for name, _, _ in m.named_parameters()}


def test_cell_gradcheck():
    assert max(CIFG.gradcheck().values()) < 1e-6
    assert max(TWO_STATE.gradcheck(hidden_size=4).values()) < 1e-6


@pytest.mark.parametrize("options", [{}, dict(layer_norm=True, recurrent_dropout=0.3, zoneout=0.2,
                                                input_dropout=0.2, weight_drop=0.2, init="orthogonal")])
def test_cifg_stacked_bidirectional_gradients(options):
    m = rnnkit.CellRNN("cifg", D, H, num_layers=2, bidirectional=True, dropout=0.3, dtype=np.float64,
                       **options)
    gradcheck_net(m, np.array([3, 4, 1]))


def test_learned_initial_state_of_a_cell_with_two_extra_states():
    m = rnnkit.CellRNN(TWO_STATE, D, H, bidirectional=True, dtype=np.float64, learn_init=True)
    assert m.init_names == ("h0", "c0", "s2_0")
    gradcheck_net(m, np.array([2, 4, 3]), learned=True)
    out, state, _ = m.forward(np.zeros((T, B, D)))
    assert isinstance(state, tuple) and [s.shape for s in state] == [(2, B, H)] * 3


def test_cifg_equations():
    m = rnnkit.CellRNN(CIFG, D, H, dtype=np.float64, seed=1)
    P = m.children["l0"].params
    rng = np.random.default_rng(2)
    x, h, c = rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    out, (hn, cn), _ = m.forward(x, (h[None], c[None]))
    for t in range(T):
        a = x[t] @ P["W_x"] + P["b_x"] + h @ P["W_h"] + P["b_h"]
        i, g, o = 1 / (1 + np.exp(-a[:, :H])), np.tanh(a[:, H:2 * H]), 1 / (1 + np.exp(-a[:, 2 * H:]))
        c = (1 - i) * c + i * g
        h = o * np.tanh(c)
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cn[0], c, rtol=1e-12)


def test_lstm_as_a_plugin_equals_rnnkit_lstm():
    ours = rnnkit.CellRNN("plugin_lstm", D, H, num_layers=2, bidirectional=True, dtype=np.float64)
    ref = rnnkit.LSTM(D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=5)
    ours.load_torch_state_dict(ref.torch_state_dict())
    rng = np.random.default_rng(3)
    x, lengths = rng.standard_normal((T, B, D)), np.array([4, 1, 3])
    state = tuple(rng.standard_normal((4, B, H)) for _ in range(2))
    results = []
    for m in (ours, ref):
        out, st, cache = m.forward(x, state, lengths)
        dx, ds = m.backward(np.sin(out), cache, (np.cos(st[0]), st[1]))
        results.append([out, *st, dx, *ds, *m.torch_state_dict(grads=True).values()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_truncated_bptt_with_carried_state():
    m = rnnkit.CellRNN("cifg", D, H, num_layers=2, dtype=np.float64)
    rng = np.random.default_rng(4)
    x, G = rng.standard_normal((2 * T, B, D)), rng.standard_normal((2 * T, B, H))
    out, state, cache = m.forward(x)
    m.zero_grad()
    m.backward(G, cache)
    whole = [g.copy() for _, _, g in m.named_parameters()]
    out1, s1, c1 = m.forward(x[:T])
    out2, s2, c2 = m.forward(x[T:], s1)
    np.testing.assert_allclose(np.concatenate([out1, out2]), out, rtol=1e-12)
    np.testing.assert_allclose(s2[1], state[1], rtol=1e-12)
    m.zero_grad()
    _, ds = m.backward(G[T:], c2)
    m.backward(G[:T], c1, ds)                                  # the carried gradient: full BPTT
    for g, w in zip([g for _, _, g in m.named_parameters()], whole):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_single_unit_and_config_round_trip():
    unit = rnnkit.Recurrent(CIFG, D, H, reverse=True, dtype=np.float64)
    out, (h, c), cache = unit.forward(np.ones((T, B, D)))
    dx, (dh, dc) = unit.backward(np.ones_like(out), cache)
    assert out.shape == (T, B, H) and dx.shape == (T, B, D) and dc.shape == (B, H)
    m = rnnkit.CellRNN("cifg", D, H, bidirectional=True, zoneout=0.1, seed=3)
    cfg = m.config()
    assert cfg["type"] == "CellRNN" and cfg["cell"] == "cifg" and cfg["zoneout"] == 0.1
    twin = rnnkit.CellRNN(**{k: v for k, v in cfg.items() if k != "type"})
    for (n1, p1, _), (n2, p2, _) in zip(m.named_parameters(), twin.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1, p2)


def test_bad_cells_are_caught():
    wrong = rnnkit.Cell("wrong_backward", 3, 1, example.cifg_gates,
                        lambda dh, dr, c: (lambda da, dc: (-da, dc))(*example.cifg_gates_backward(dh, dr, c)))
    with pytest.raises(AssertionError, match="gradient check failed"):
        wrong.gradcheck()
    bad_shape = rnnkit.Cell("bad_shape", 3, 1, lambda a, r: (a, r, None), example.cifg_gates_backward)
    with pytest.raises(ShapeError, match="bad_shape.gates: expected h of shape"):
        rnnkit.CellRNN(bad_shape, D, H).forward(np.ones((T, B, D), np.float32))
    with pytest.raises(InputError, match="cell"):
        rnnkit.CellRNN("no_such_cell", D, H)
    with pytest.raises(InputError, match="name"):
        rnnkit.Cell("lstm", 4, 1, lstm_gates, lstm_gates_backward)
    with pytest.raises(InputError, match="gates_backward"):
        rnnkit.Cell("x", 4, 1, lstm_gates, None)
    with pytest.raises(InputError, match="forget_bias"):
        rnnkit.CellRNN(CIFG, D, H, forget_bias=1.0)


def test_example_trains():
    losses = example.main(T=10, B=8, H=8, steps=30)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
