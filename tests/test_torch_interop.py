"""PyTorch files and whole-pipeline state dicts: a model trained in PyTorch runs in rnnkit, and back."""
import os
import pickle

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import FileFormatError, InputError, StateDictError
from rnnkit.io.onnx import run_pipeline
from rnnkit.io.torch_files import (from_torch_state_dict, load_torch_file, save_torch_file,
                                   to_torch_state_dict)

torch = pytest.importorskip("torch")
nn = torch.nn
V, E, H, T, B = 13, 5, 6, 7, 4
NAMES = ["emb", "lstm", "out"]


class TorchLM(nn.Module):
    """Embedding -> LSTM -> Linear, time-major."""

    def __init__(self, rnn=nn.LSTM, **kw):
        super().__init__()
        self.emb, self.lstm, self.out = nn.Embedding(V, E), rnn(E, H, **kw), nn.Linear(H * (1 + kw.get(
            "bidirectional", False)), V)

    def forward(self, ids, lengths=None):
        x = self.emb(ids)
        if lengths is not None:
            x = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            y, _ = self.lstm(x)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, total_length=ids.shape[0])
        else:
            y, _ = self.lstm(x)
        return self.out(y)


def ours(cls=rnnkit.LSTM, **kw):
    """The rnnkit pipeline of TorchLM, with its own (different) random weights."""
    return [rnnkit.Embedding(V, E, seed=3), cls(E, H, seed=4, **kw),
            rnnkit.Linear(H * (1 + kw.get("bidirectional", False)), V, seed=5)]


def trained_torch_model():
    """A TorchLM trained a few SGD steps on random next-token data."""
    torch.manual_seed(0)
    model = TorchLM()
    ids = torch.randint(0, V, (T + 1, B))
    losses = []
    for _ in range(5):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(ids[:-1]).reshape(-1, V), ids[1:].reshape(-1))
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    return model.eval()


def test_trained_in_torch_runs_in_rnnkit(tmp_path):
    model = trained_torch_model()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    mods = ours()
    from_torch_state_dict(mods, load_torch_file(path), NAMES)
    ids = np.random.default_rng(1).integers(0, V, (T, B))
    lengths = np.array([T, 3, 5, 1])
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).numpy()
        ref_len = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    np.testing.assert_allclose(run_pipeline(mods, ids), ref, rtol=1e-5, atol=1e-5)
    real = (np.arange(T)[:, None] < lengths)[:, :, None]            # torch pads with zeros -> bias
    np.testing.assert_allclose(run_pipeline(mods, ids, lengths) * real, ref_len * real, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,torch_cls,kw", [
    (rnnkit.LSTM, nn.LSTM, dict(num_layers=2, bidirectional=True)),
    (rnnkit.GRU, nn.GRU, dict(num_layers=2)),
    (rnnkit.RNN, nn.RNN, dict(bidirectional=True, nonlinearity="relu")),
])
def test_rnnkit_weights_to_torch_file_and_back(tmp_path, cls, torch_cls, kw):
    mods = ours(cls, **kw)
    path = tmp_path / "ours.pth"
    save_torch_file(to_torch_state_dict(mods, NAMES), path)
    model = TorchLM(torch_cls, **kw).eval()
    model.load_state_dict(torch.load(path, weights_only=True))      # strict: every key, every shape
    ids = np.random.default_rng(2).integers(0, V, (T, B))
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(run_pipeline(mods, ids), ref, rtol=1e-5, atol=1e-5)
    back = ours(cls, **kw)
    for m in back:                                                   # make sure loading overwrites
        for _, p, _ in m.named_parameters():
            p[...] = 0
    from_torch_state_dict(back, load_torch_file(path), NAMES)
    for a, b in zip(mods, back):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and np.array_equal(va, vb)


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict"])
def test_checkpoint_dicts_are_unwrapped(tmp_path, wrapper):
    model = TorchLM()
    path = tmp_path / "ckpt.pt"
    torch.save({wrapper: model.state_dict(), "epoch": 3, "note": "x"}, path)
    sd = load_torch_file(path)
    assert set(sd) == set(model.state_dict())
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    np.testing.assert_array_equal(sd["lstm.weight_hh_l0"], model.lstm.weight_hh_l0.detach().numpy())


class Payload:
    """Unpickling this object would create the directory `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_payload_pickles_are_refused_and_never_run(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(str(proof))))                  # the payload does run when unpickled
    assert proof.is_dir()
    marker = str(tmp_path / "pwned")
    zipped, raw = tmp_path / "evil.pt", tmp_path / "evil_raw.pth"
    torch.save({"weight": torch.zeros(2), "evil": Payload(marker)}, zipped)
    raw.write_bytes(pickle.dumps({"weight": Payload(marker)}, protocol=2))
    for path in (zipped, raw):
        with pytest.raises(FileFormatError, match="mkdir"):
            load_torch_file(path)
    assert not os.path.exists(marker)


def test_bad_files_and_arguments(tmp_path, monkeypatch):
    good = tmp_path / "good.pt"
    torch.save(TorchLM().state_dict(), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:200])
    for bad in (cut, tmp_path / "empty.pt"):
        bad.touch()
        with pytest.raises(FileFormatError):
            load_torch_file(bad)
    lists = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], lists)
    with pytest.raises(FileFormatError, match="state_dict"):
        load_torch_file(lists)
    with pytest.raises(InputError, match="no such file"):
        load_torch_file(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="names"):
        to_torch_state_dict(ours(), ["emb", "lstm"])
    with pytest.raises(InputError, match="names"):
        to_torch_state_dict(ours(), ["a", "a.b", "c"])
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match="needs torch"):
        load_torch_file(good)


def test_loading_is_all_or_nothing():
    mods = ours()
    sd = to_torch_state_dict(ours(rnnkit.LSTM), NAMES)
    before = [m.state_dict() for m in mods]
    sd_missing = {k: v + 1 for k, v in sd.items() if k != "out.bias"}
    with pytest.raises(StateDictError, match="out.*bias"):
        from_torch_state_dict(mods, sd_missing, NAMES)
    sd_extra = dict(sd, **{"head.weight": np.zeros(3)})
    with pytest.raises(StateDictError, match="head.weight"):
        from_torch_state_dict(mods, sd_extra, NAMES)
    for m, saved in zip(mods, before):
        for k, v in m.state_dict().items():
            assert np.array_equal(v, saved[k])


def test_dropout_is_skipped_and_bare_layer_has_no_prefix():
    lstm = rnnkit.LSTM(E, H, num_layers=2, seed=7)
    theirs = nn.LSTM(E, H, num_layers=2)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict([lstm], [""]).items()})
    mods = [rnnkit.Embedding(V, E), rnnkit.Dropout(0.5), rnnkit.Linear(E, 3)]
    assert set(to_torch_state_dict(mods, ["emb", None, "out"])) == {"emb.weight", "out.weight", "out.bias"}
    with pytest.raises(InputError, match="None"):
        to_torch_state_dict(mods, ["emb", "drop", "out"])
