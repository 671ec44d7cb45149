"""rnnkit.save / rnnkit.load: round trips, and every kind of bad file fails with one clear error."""
import json
import pickle

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import FileFormatError, NonFiniteError
from rnnkit.io import load_arrays, save_arrays


@pytest.mark.parametrize("make", [
    lambda: rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, seed=4),
    lambda: rnnkit.GRU(3, 5, reset_after=False, dtype=np.float64, seed=1),
    lambda: rnnkit.RNN(3, 5, nonlinearity="relu", seed=2),
    lambda: rnnkit.LSTM(3, 5, peepholes=True),
])
def test_round_trip_gives_identical_outputs(tmp_path, make):
    m = make()
    path = tmp_path / "model.rnnkit"
    rnnkit.save(m, path, vocab=["a", "b"], task="demo")
    m2, meta = rnnkit.load(path, with_metadata=True)
    assert meta == {"vocab": ["a", "b"], "task": "demo"}
    assert type(m2) is type(m) and m2.config() == m.config()
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(m.dtype)
    (out, state), (out2, state2) = m(x, lengths=[4, 2]), m2(x, lengths=[4, 2])
    np.testing.assert_array_equal(out, out2)
    for a, b in zip(state if isinstance(state, tuple) else (state,), state2 if isinstance(state2, tuple) else (state2,)):
        np.testing.assert_array_equal(a, b)


def test_wrong_expected_architecture(tmp_path):
    rnnkit.save(rnnkit.LSTM(3, 4), tmp_path / "m")
    with pytest.raises(FileFormatError, match="holds a LSTM model, expected GRU"):
        rnnkit.load(tmp_path / "m", expect="GRU")


def test_weights_that_do_not_fit_the_config(tmp_path):
    m = rnnkit.LSTM(3, 4)
    arrays = {n: p for n, p, _ in m.named_parameters()}
    cfg = rnnkit.GRU(3, 4).config()
    save_arrays(tmp_path / "m", arrays, {"kind": "rnnkit-model", "model_format": 1, "config": cfg, "metadata": {}})
    with pytest.raises(FileFormatError, match="do not fit the GRU model"):
        rnnkit.load(tmp_path / "m")


def test_unknown_type_and_newer_model_format(tmp_path):
    m = rnnkit.RNN(2, 3)
    arrays = {n: p for n, p, _ in m.named_parameters()}
    save_arrays(tmp_path / "a", arrays, {"kind": "rnnkit-model", "model_format": 1,
                                         "config": {"type": "os.system"}, "metadata": {}})
    with pytest.raises(FileFormatError, match="expected one of"):
        rnnkit.load(tmp_path / "a")
    save_arrays(tmp_path / "b", arrays, {"kind": "rnnkit-model", "model_format": 2,
                                         "config": m.config(), "metadata": {}})
    with pytest.raises(FileFormatError, match="newer"):
        rnnkit.load(tmp_path / "b")


def test_a_checkpoint_or_other_rnnkit_file_is_not_a_model(tmp_path):
    save_arrays(tmp_path / "c", {"w": np.zeros(2)}, {"kind": "checkpoint"})
    with pytest.raises(FileFormatError, match="not a model file"):
        rnnkit.load(tmp_path / "c")


class Boom:
    def __reduce__(self):
        return (open, ("/tmp/rnnkit_pwned", "w"))


def test_pickle_in_disguise_is_refused_and_never_run(tmp_path):
    path = tmp_path / "model.rnnkit"
    path.write_bytes(pickle.dumps({"weights": Boom()}))
    with pytest.raises(FileFormatError, match="pickle"):
        rnnkit.load(path)
    import os
    assert not os.path.exists("/tmp/rnnkit_pwned")


def test_truncated_and_bit_flipped_files(tmp_path):
    path = tmp_path / "m"
    rnnkit.save(rnnkit.GRU(3, 4), path)
    data = path.read_bytes()
    for cut in (0, 7, 50, len(data) // 2, len(data) - 1):
        (tmp_path / "t").write_bytes(data[:cut])
        with pytest.raises(FileFormatError):
            rnnkit.load(tmp_path / "t")
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, len(data), 20):
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(8))
        (tmp_path / "f").write_bytes(bytes(b))
        with pytest.raises(FileFormatError):
            rnnkit.load(tmp_path / "f")


def test_non_finite_weights_are_never_saved(tmp_path):
    m = rnnkit.LSTM(2, 3)
    m.children["l0"].params["W_h"][0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="l0.W_h"):
        rnnkit.save(m, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_the_file_records_config_and_format(tmp_path):
    rnnkit.save(rnnkit.RNN(2, 3), tmp_path / "m")
    arrays, meta = load_arrays(tmp_path / "m")
    assert meta["kind"] == "rnnkit-model" and meta["config"]["type"] == "RNN"
    assert set(arrays) == {"l0.W_x", "l0.W_h", "l0.b_x", "l0.b_h"}
    json.dumps(meta)
