"""ONNX export (checked by onnx.checker, run by onnxruntime) and import back into rnnkit modules."""
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import FileFormatError, InputError, ShapeError
from rnnkit.io.onnx import Softmax, export_onnx, import_onnx, run_pipeline

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
T, B, V, E, H = 5, 3, 11, 4, 6
LENGTHS = np.array([5, 2, 3])

LAYERS = {  # name: (class, kwargs)
    "rnn_tanh": (rnnkit.RNN, dict(nonlinearity="tanh")),
    "rnn_relu": (rnnkit.RNN, dict(nonlinearity="relu")),
    "rnn_sigmoid": (rnnkit.RNN, dict(nonlinearity="sigmoid")),
    "lstm": (rnnkit.LSTM, {}),
    "lstm_peepholes": (rnnkit.LSTM, dict(peepholes=True)),
    "gru": (rnnkit.GRU, {}),
    "gru_cho": (rnnkit.GRU, dict(reset_after=False)),
}


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def pipeline(name, num_layers, bidirectional, ids=True):
    """[Embedding] -> layer -> Linear with fixed random weights."""
    cls, kw = LAYERS[name]
    dirs = 2 if bidirectional else 1
    rec = cls(E, H, num_layers=num_layers, bidirectional=bidirectional, seed=1, **kw)
    return ([rnnkit.Embedding(V, E, seed=2)] if ids else []) + [rec, rnnkit.Linear(dirs * H, V, seed=3)]


def states_of(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_export_runs_in_onnxruntime_like_rnnkit(tmp_path, name, num_layers, bidirectional):
    mods = pipeline(name, num_layers, bidirectional)
    path = tmp_path / "m.onnx"
    export_onnx(mods, path, softmax=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = session(path)
    ids = np.random.default_rng(0).integers(0, V, (T, B))
    for lengths in (np.full(B, T), LENGTHS):
        got = sess.run(None, {"ids": ids, "sequence_lens": lengths.astype(np.int32)})
        ref, states = run_pipeline(mods + [Softmax()], ids, lengths, return_states=True)
        np.testing.assert_allclose(got[0], ref, rtol=1e-5, atol=1e-5)      # padded steps too
        want = states_of(states[0])
        assert len(got) == 1 + len(want)
        for g, w in zip(got[1:], want):                                    # Y_h (and Y_c) per layer
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    back = import_onnx(path)                                               # and back: same weights
    assert [type(m) for m in back] == [type(m) for m in mods] + [Softmax]
    for a, b in zip(mods, back):
        assert a.state_dict().keys() == b.state_dict().keys()
        assert all(np.array_equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    np.testing.assert_array_equal(run_pipeline(back, ids, LENGTHS),
                                  run_pipeline(mods + [Softmax()], ids, LENGTHS))


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "rnn_relu"])
def test_features_input_initial_state_and_fixed_dims(tmp_path, name):
    mods = pipeline(name, 2, True, ids=False)
    path = tmp_path / "m.onnx"
    export_onnx(mods, path, input="features", seq_len=T, batch=B, lengths=False, initial_state=True)
    model = onnx.load(str(path))
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input]
    assert [v.name for v in model.graph.input][0] == "features" and dims[0] == [T, B, E]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, E)).astype(np.float32)
    rec = mods[0]
    h0 = [rng.standard_normal((4, B, H)).astype(np.float32) for _ in states_of(rec.infer(x)[1])]
    feeds = dict(features=x, **{f"m0.{s}_0": a for s, a in zip("hc", h0)})
    got = session(path).run(None, feeds)
    out, state = rec.infer(x, tuple(h0) if len(h0) == 2 else h0[0])
    np.testing.assert_allclose(got[0], mods[1](out), rtol=1e-5, atol=1e-5)
    for g, w in zip(got[1:], states_of(state)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_bad_pipelines_raise(tmp_path):
    path = tmp_path / "m.onnx"
    emb, lin = rnnkit.Embedding(V, E), rnnkit.Linear(H, V)
    cases = [
        ([emb, rnnkit.LSTM(E, H, proj_size=2), rnnkit.Linear(2, V)], {}, InputError, "proj_size"),
        ([emb, rnnkit.GRU(E, H, batch_first=True), lin], {}, InputError, "batch_first"),
        ([emb, rnnkit.GRU(E + 1, H), lin], {}, ShapeError, "input size 4"),
        ([emb, rnnkit.GRU(E, H), lin], dict(input="features"), InputError, "Embedding"),
        ([rnnkit.GRU(E, H), emb], dict(input="features"), InputError, "first"),
        ([emb, Softmax(), lin], {}, InputError, "Softmax"),
        ([emb, Softmax()], dict(softmax=True), InputError, "softmax"),
        ([emb, "relu"], {}, InputError, r"modules\[1\]"),
        ([], {}, InputError, "modules"),
        ([emb, rnnkit.GRU(E, H)], dict(opset=7), InputError, "opset"),
    ]
    for mods, kw, err, match in cases:
        with pytest.raises(err, match=match):
            export_onnx(mods, path, **kw)
    assert not path.exists()


def test_dropout_is_skipped_and_names_follow_positions(tmp_path):
    mods = pipeline("gru", 1, False)
    mods.insert(1, rnnkit.Dropout(0.5))                                # identity at inference
    path = tmp_path / "m.onnx"
    export_onnx(mods, path)
    assert [v.name for v in onnx.load(str(path)).graph.output] == ["output", "m2.h_n"]
    ids = np.random.default_rng(2).integers(0, V, (T, B))
    got = session(path).run(None, {"ids": ids, "sequence_lens": LENGTHS.astype(np.int32)})
    np.testing.assert_allclose(got[0], run_pipeline(mods, ids, LENGTHS), rtol=1e-5, atol=1e-5)
    assert [type(m) for m in import_onnx(path)] == [rnnkit.Embedding, rnnkit.GRU, rnnkit.Linear]


class TorchLM:
    """Builds nn.Embedding -> nn.LSTM (2 layers, bidirectional) -> nn.Linear and exports it."""

    @staticmethod
    def export(torch, path, rnn="LSTM"):
        nn = torch.nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb, self.rnn = nn.Embedding(V, E), getattr(nn, rnn)(E, H, 2, bidirectional=True)
                self.out = nn.Linear(2 * H, V)

            def forward(self, ids):
                return self.out(self.rnn(self.emb(ids))[0])

        torch.manual_seed(0)
        model = Model().eval()
        torch.onnx.export(model, (torch.zeros(T, B, dtype=torch.int64),), str(path), dynamo=False,
                          input_names=["ids"], output_names=["out"],
                          dynamic_axes={"ids": {0: "T", 1: "B"}, "out": {0: "T", 1: "B"}})
        return model


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                            "ignore:Converting a tensor to a Python boolean")
@pytest.mark.parametrize("rnn", ["LSTM", "GRU"])
def test_model_exported_by_torch_runs_with_numpy(tmp_path, rnn):
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.onnx"
    model = TorchLM.export(torch, path, rnn)
    assert rnn in {n.op_type for n in onnx.load(str(path)).graph.node}   # real ONNX recurrent nodes
    mods = import_onnx(path)
    assert [type(m).__name__ for m in mods] == ["Embedding", rnn, "Linear"]
    assert mods[1].num_layers == 2 and mods[1].bidirectional
    for k, v in model.rnn.state_dict().items():                           # gates reordered back
        np.testing.assert_array_equal(mods[1].torch_state_dict()[k], v.numpy())
    ids = np.random.default_rng(3).integers(0, V, (T + 2, B + 1))         # other sizes than exported
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(run_pipeline(mods, ids), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(session(path).run(None, {"ids": ids})[0], ref, rtol=1e-5, atol=1e-5)


def graph_file(tmp_path, nodes, inits, x_shape=("T", "B", E), out_shape=("T", "B", H)):
    """A one-input one-output float graph built with onnx.helper."""
    h, TP = onnx.helper, onnx.TensorProto
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                         [h.make_tensor_value_info("y", TP.FLOAT, list(out_shape))],
                         [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "g.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def test_import_gemm_and_refusals(tmp_path):
    h = onnx.helper
    rng = np.random.default_rng(4)
    W, b = rng.standard_normal((H, E)).astype(np.float32), rng.standard_normal(H).astype(np.float32)
    path = graph_file(tmp_path, [h.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)],
                      dict(W=W, b=b), ("N", E), ("N", H))
    (lin,) = import_onnx(path)
    x = rng.standard_normal((7, E)).astype(np.float32)
    np.testing.assert_allclose(run_pipeline([lin], x), x @ W.T + b, rtol=1e-6)
    refused = [
        ([h.make_node("Relu", ["x"], ["y"])], {}, "Relu"),                        # not a pipeline op
        ([h.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),                 # batch-first
          h.make_node("GRU", ["t", "W", "R"], ["y"], hidden_size=1)],
         dict(W=np.zeros((1, 3, E), np.float32), R=np.zeros((1, 3, 1), np.float32)), "time-major"),
        ([h.make_node("LSTM", ["x", "W", "R", "", "", "h0"], ["y"], hidden_size=1)],
         dict(W=np.zeros((1, 4, E), np.float32), R=np.zeros((1, 4, 1), np.float32),
              h0=np.ones((1, B, 1), np.float32)), "not zero"),
        ([h.make_node("RNN", ["x", "W", "R"], ["y"], hidden_size=1, clip=1.0)],
         dict(W=np.zeros((1, 1, E), np.float32), R=np.zeros((1, 1, 1), np.float32)), "clip"),
    ]
    for nodes, inits, match in refused:
        with pytest.raises(FileFormatError, match=match):
            import_onnx(graph_file(tmp_path, nodes, inits))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00 not a protobuf \xff" * 10)
    with pytest.raises(FileFormatError, match="not a valid ONNX model"):
        import_onnx(junk)
    with pytest.raises(InputError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_softmax_module_backward():
    rng = np.random.default_rng(5)
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    y, cache = Softmax().forward(x)
    eps, dx = 1e-6, Softmax().backward(dy, cache)
    for idx in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num = ((Softmax()(xp) - Softmax()(xm)) * dy).sum() / (2 * eps)
        assert abs(num - dx[idx]) < 1e-7


def test_rnnkit_imports_without_onnx():
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import rnnkit, rnnkit.io.onnx as o\n"
            "try:\n    o.export_onnx([rnnkit.Embedding(3, 2)], 'x.onnx')\n"
            "except ImportError as e:\n    print('ok' if 'pip install onnx' in str(e) else e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
