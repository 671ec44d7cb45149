"""Diagnostics: recorded ||dL/dh_t|| against finite differences, gate saturation against gates
computed here from the equations (every cache layout), traces, the Recorder in fit (file, resume,
training unchanged), and `rnnkit inspect RUN --plots`."""
import numpy as np
import pytest

import rnnkit
from rnnkit import diagnostics as D
from rnnkit import optim
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.layers import Linear
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.train import fit

T, B, DIN, H = 5, 2, 3, 3
CELLS = {"rnn": (rnnkit.RNN, {}), "lstm": (rnnkit.LSTM, {}), "lstm_proj": (rnnkit.LSTM, dict(proj_size=2)),
         "gru": (rnnkit.GRU, {}), "gru_cho": (rnnkit.GRU, dict(reset_after=False))}


def make(cell, kernels, bidirectional=False, seed=0, scale=1.0):
    cls, kw = CELLS[cell]
    net = cls(DIN, H, bidirectional=bidirectional, dtype=np.float64, seed=seed, kernels=kernels, **kw)
    for _, p, _ in net.named_parameters():
        p *= scale
    return net


def probed(net, x, G, lengths=None, units=16, sequence=0):
    """One forward + backward with a probe on every unit -> {unit name: probe stats}, out."""
    probes = {name: D.Probe(units, sequence) for name in net.children}
    for name, unit in net.children.items():
        unit.probe = probes[name]
    out, _, cache = net.forward(x, lengths=lengths)
    net.backward(G, cache)
    for unit in net.children.values():
        unit.probe = None
    return {k: p.stats for k, p in probes.items()}, out


def fd_dh(net, x, G, t, eps=1e-6):
    """dL/dh_t (B, H_out) by central differences, L = sum(G * out), the net restarted from h_t + δ."""
    out, state = net.infer(x[:t + 1])

    def loss(h):
        total = (G[t] * h).sum()
        if t + 1 < len(x):
            s = (h[None], state[1]) if isinstance(state, tuple) else h[None]
            total += (G[t + 1:] * net.infer(x[t + 1:], s)[0]).sum()
        return total

    g = np.zeros_like(out[t])                                          # (B, H_out)
    for i in np.ndindex(g.shape):
        e = np.zeros_like(g)
        e[i] = eps
        g[i] = (loss(out[t] + e) - loss(out[t] - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_grad_norms_equal_finite_differences(cell, kernels):
    rng = np.random.default_rng(1)
    net = make(cell, kernels)
    x = rng.standard_normal((T, B, DIN))
    G = rng.standard_normal((T, B, net.proj_size or H))
    stats, _ = probed(net, x, G)
    want = [np.linalg.norm(fd_dh(net, x, G, t), axis=1).mean() for t in range(T)]
    np.testing.assert_allclose(stats["l0"]["grad_norm"], want, rtol=1e-6)


def test_probe_leaves_outputs_and_gradients_unchanged():
    rng = np.random.default_rng(2)
    x, G = rng.standard_normal((T, B, DIN)), rng.standard_normal((T, B, H))
    results = []
    for probe in (False, True):
        net = make("lstm", "numba")
        if probe:
            net.children["l0"].probe = D.Probe(4, 0)
        out, _, cache = net.forward(x)
        assert ("fused" in cache["units"][0]) == (not probe)      # off: the fused path as always
        dx, _ = net.backward(G, cache)
        results.append((out, dx, net.state_dict(grads=True)))
    (o1, d1, g1), (o2, d2, g2) = results
    np.testing.assert_allclose(o1, o2, rtol=1e-12)
    np.testing.assert_allclose(d1, d2, rtol=1e-10)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reverse_direction_and_lengths_in_input_order(cell):
    """Bidirectional with lengths == one unidirectional net per sequence (reverse one on flipped input)."""
    rng = np.random.default_rng(3)
    lengths = np.array([5, 3, 1])
    x, G = rng.standard_normal((T, 3, DIN)), rng.standard_normal((T, 3, 2 * H))
    bi = make(cell, "numpy", bidirectional=True)
    stats, _ = probed(bi, x, G, lengths)
    uni = make(cell, "numpy")
    per_seq = {"l0": np.full((T, 3), np.nan), "l0_reverse": np.full((T, 3), np.nan)}
    for name, half, flip in (("l0", slice(0, H), False), ("l0_reverse", slice(H, 2 * H), True)):
        uni.children["l0"].load_state_dict(bi.children[name].state_dict())
        for b, L in enumerate(lengths):
            xb, Gb = x[:L, b:b + 1], G[:L, b:b + 1, half]
            if flip:
                xb, Gb = xb[::-1].copy(), Gb[::-1].copy()
            n = np.array(probed(uni, xb, Gb)[0]["l0"]["grad_norm"])   # (L,)
            per_seq[name][:L, b] = n[::-1] if flip else n
        np.testing.assert_allclose(stats[name]["grad_norm"], np.nanmean(per_seq[name], axis=1), rtol=1e-10)


# -- gates -----------------------------------------------------------------------------------------
def sig(a):
    return 1 / (1 + np.exp(-a))


def manual_gates(cell, unit, x, lengths):
    """{gate: (T, B, H)} from the equations, state held on padded steps as the layer does."""
    P = unit.params
    h = np.zeros((x.shape[1], unit.output_size))                     # (B, H_out)
    c = np.zeros((x.shape[1], H))                                     # (B, H)
    out = {g: [] for g in D.BLOCKS[unit.mode]}
    for t in range(len(x)):
        ax, ah = x[t] @ P["W_x"] + P["b_x"], h @ P["W_h"] + P["b_h"]  # (B, G*H)
        a = [ax[:, k * H:(k + 1) * H] for k in range(len(out))]
        r = [ah[:, k * H:(k + 1) * H] for k in range(len(out))]
        if cell == "rnn":
            gates = {"h": np.tanh(a[0] + r[0])}
            h_new = gates["h"]
        elif cell == "lstm":
            i, f, g, o = sig(a[0] + r[0]), sig(a[1] + r[1]), np.tanh(a[2] + r[2]), sig(a[3] + r[3])
            c_new = f * c + i * g
            gates, h_new = dict(i=i, f=f, g=g, o=o), o * np.tanh(c_new)
            c = np.where((t < lengths)[:, None], c_new, c)
        else:
            rr, z = sig(a[0] + r[0]), sig(a[1] + r[1])
            if cell == "gru":
                n = np.tanh(a[2] + rr * r[2])
            else:
                n = np.tanh(a[2] + (rr * h) @ P["W_h"][:, 2 * H:] + P["b_h"][2 * H:])
            gates, h_new = dict(r=rr, z=z, n=n), (1 - z) * n + z * h
        h = np.where((t < lengths)[:, None], h_new, h)
        for k, v in gates.items():
            out[k].append(v)
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("layout", ["numpy", "numba_steps", "numba_fused"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "gru_cho"])
def test_gate_activations_and_saturation_match_the_equations(cell, layout):
    if cell == "gru_cho" and layout == "numba_fused":
        pytest.skip("the Cho-form GRU has no fused path")
    rng = np.random.default_rng(4)
    x = 2 * rng.standard_normal((T, 3, DIN))
    lengths = np.array([T, T, T]) if layout == "numba_fused" else np.array([5, 2, 4])
    net = make(cell, "numpy" if layout == "numpy" else "numba", scale=3.0)   # large weights saturate
    unit = net.children["l0"]
    _, _, cache = net.forward(x, lengths=None if layout == "numba_fused" else lengths)
    ucache = cache["units"][0]
    assert ("fused" in ucache) == (layout == "numba_fused")
    want = manual_gates(cell, unit, x, lengths)
    got = D.gate_activations(unit, ucache)
    for g in D.BLOCKS[unit.mode]:
        np.testing.assert_allclose(got[g], want[g], rtol=1e-10, atol=1e-12, err_msg=g)
    real = np.arange(T)[:, None] < lengths[None, :]                       # (T, B)
    lo, hi = (-0.95, 0.95) if cell == "rnn" else (0.05, 0.95)
    sat = D.saturation(unit, ucache)
    assert list(sat) == list(D.GATES[unit.mode])
    for g, (low, high) in sat.items():
        v = want[g][real]                                                   # (n, H)
        assert low == pytest.approx(np.mean(v <= lo)) and high == pytest.approx(np.mean(v >= hi))
    assert any(low + high > 0 for low, high in sat.values())


def test_trace_is_the_hidden_state_of_one_sequence():
    rng = np.random.default_rng(5)
    x, G, lengths = rng.standard_normal((T, 3, DIN)), rng.standard_normal((T, 3, 2 * H)), np.array([5, 3, 4])
    net = make("gru", "numba", bidirectional=True)
    stats, out = probed(net, x, G, lengths, units=2, sequence=1)
    np.testing.assert_allclose(stats["l0"]["trace"], out[:3, 1, :2], rtol=1e-12)
    np.testing.assert_allclose(stats["l0_reverse"]["trace"], out[:3, 1, H:H + 2], rtol=1e-12)
    assert stats["l0"]["saturation"].keys() == {"r", "z"} and stats["l0"]["T"] == T


# -- the recorder in fit ---------------------------------------------------------------------------
def model(kernels="numba", dtype="float32"):
    return ManyToMany(vocab_size=7, cell="lstm", hidden_size=6, num_layers=2, embedding_dim=4,
                      dtype=dtype, seed=3, kernels=kernels)


def batches(n=3):
    rng = np.random.default_rng(6)
    return [{"x": rng.integers(0, 7, (8, 4)), "y": rng.integers(0, 7, (8, 4)),
             "lengths": np.array([8, 6, 3, 8])} for _ in range(n)]


def train(m, steps, on_step=None, **kw):
    return fit(m, optim.Adam(m, lr=0.01), batches(), steps=steps, progress=False, on_step=on_step, **kw)


def test_recorder_writes_records_and_resumes(tmp_path):
    m = model()
    with D.Recorder(m, every=2) as rec:
        train(m, 6, rec, run_dir=tmp_path)
    assert [r["step"] for r in rec.records] == [1, 2, 4, 6]
    assert list(rec.records[0]["units"]) == ["rnn.l0", "rnn.l1"]
    u = rec.records[-1]["units"]["rnn.l1"]
    assert len(u["grad_norm"]) == 8 and set(u["saturation"]) == {"i", "f", "o"} and len(u["trace"]) == 8
    assert all(v > 0 for v in u["grad_norm"])
    assert D.read_diagnostics(tmp_path) == rec.records
    assert all(unit.probe is None for _, unit in D.recurrent_units(m))
    with open(tmp_path / D.DIAGNOSTICS, "a") as f:          # a record past last.ckpt (a crash)
        f.write('{"step": 7, "units": {}}\n')
    with D.Recorder(m, every=2) as rec2:
        train(m, 9, rec2, run_dir=tmp_path, resume=True)
    assert [r["step"] for r in rec2.records] == [7, 8]
    assert [r["step"] for r in D.read_diagnostics(tmp_path)] == [1, 2, 4, 6, 7, 8]


def test_training_unchanged_when_off_and_exact_with_the_reference_cells():
    plain = model()
    train(plain, 4)
    off = model()
    D.Recorder(off, every=1).close()                        # probes taken off before training
    train(off, 4)
    for k, v in plain.state_dict().items():
        np.testing.assert_array_equal(off.state_dict()[k], v)
    on = model()
    with D.Recorder(on, every=1) as rec:                    # every step probed: the reference loop
        train(on, 4, rec)
    assert len(rec.records) == 4
    for k, v in plain.state_dict().items():
        np.testing.assert_allclose(on.state_dict()[k], v, rtol=1e-4, atol=1e-6)
    ref, ref_on = model("numpy", "float64"), model("numpy", "float64")
    train(ref, 3)
    with D.Recorder(ref_on, every=1) as rec:
        train(ref_on, 3, rec)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ref_on.state_dict()[k], v)


def test_recorder_bad_arguments():
    with pytest.raises(InputError, match="recurrent"):
        D.Recorder(Linear(3, 2), every=1)
    with pytest.raises(InputError, match="every"):
        D.Recorder(model(), every=0)
    with pytest.raises(InputError, match="records"):
        D.plot_diagnostics([], ".")


# -- the command line ------------------------------------------------------------------------------
def test_inspect_plots(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    common = ["train", "lm", "--text", str(text), "--hidden", "8", "--embedding", "4", "--quiet",
              "--batch", "4", "--seq-len", "8", "--steps", "6"]
    assert main(common + ["--run", str(tmp_path / "r"), "--diagnostics", "3"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "r"), "--plots"]) == 0
    out = capsys.readouterr().out
    for name in ("diag_grad_norm.png", "diag_saturation.png", "diag_hidden_rnn_l0.png"):
        p = tmp_path / "r" / name
        assert str(p) in out and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(common + ["--run", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "plain"), "--plots"]) == 0
    assert "--diagnostics" in capsys.readouterr().out
    assert main(common + ["--run", str(tmp_path / "bad"), "--diagnostics", "0"]) == 2
    assert "--diagnostics" in capsys.readouterr().err
