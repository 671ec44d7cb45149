"""rnnkit.io.safe: round trips, safetensors compatibility, corruption detection, atomic writes."""
import hashlib
import json
import os
import pickle

import numpy as np
import pytest

from rnnkit.errors import DTypeError, FileFormatError, InputError
from rnnkit.io import safe
from rnnkit.io.safe import atomic_write_bytes, atomic_write_text, load_arrays, save_arrays


def _arrays():
    """Every supported dtype, a 0-d and an empty array, big-endian and non-contiguous inputs."""
    rng = np.random.default_rng(0)
    return {
        "W_x": rng.standard_normal((3, 4)).astype(np.float32),            # (D, H)
        "b": rng.standard_normal(4),                                       # (H,) float64
        "step": np.array(17, dtype=np.int64),                              # 0-d
        "ids": np.arange(6, dtype=np.int32).reshape(2, 3),                 # (B, T)
        "bytes": np.arange(250, 256, dtype=np.uint8),                      # (6,)
        "mask": np.array([[True, False, True]]),                           # (1, 3)
        "empty": np.zeros((0, 5), dtype=np.float32),                       # (0, 5)
        "big_endian": np.arange(4, dtype=">f8"),                           # (4,)
        "strided": rng.standard_normal((4, 6))[::2, ::3],                  # (2, 2), not contiguous
        "fortran": np.asfortranarray(rng.standard_normal((2, 3))),         # (2, 3)
    }


META = {"config": {"cell": "lstm", "H": 4, "dropout": 0.25}, "vocab": ["a", "é", "\n", "😀"],
        "optimizer": {"t": 3, "lr": 1e-3}}


@pytest.fixture
def saved(tmp_path):
    """A small saved file and its arrays."""
    path = tmp_path / "model.rnnkit"
    arrays = _arrays()
    save_arrays(path, arrays, META)
    return path, arrays


def _assert_same(got, want):
    assert list(got) == list(want)
    for k, x in want.items():
        assert got[k].shape == x.shape, k
        assert got[k].dtype == x.dtype.newbyteorder("="), k
        assert got[k].flags.writeable and got[k].dtype.isnative, k
        np.testing.assert_array_equal(got[k], x, err_msg=k)


def _craft(path, header, data=b""):
    """Write a file by hand with a valid checksum, following the recipe in the module docstring."""
    md = {"format": "rnnkit", "format_version": "1", "meta": "{}"}
    md.update(header.pop("__metadata__", {}))
    md["sha256"] = "0" * 64
    raw = json.dumps({"__metadata__": md, **header}, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    digest = hashlib.sha256(raw + data).hexdigest()
    raw = raw.replace(b'"sha256":"' + b"0" * 64, b'"sha256":"' + digest.encode())
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def _error(path):
    """The FileFormatError message load_arrays raises for path."""
    with pytest.raises(FileFormatError) as e:
        load_arrays(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    return msg


# -- round trips -----------------------------------------------------------------------------------
def test_round_trip_dtypes_shapes_and_meta(saved):
    path, arrays = saved
    got, meta = load_arrays(path)
    _assert_same(got, arrays)
    assert meta == META
    got["W_x"][0, 0] = 1.0          # writable copy, not a view of the file buffer


def test_round_trip_empty_dict_and_only_empty_arrays(tmp_path):
    save_arrays(tmp_path / "a", {}, {})
    assert load_arrays(tmp_path / "a") == ({}, {})
    save_arrays(tmp_path / "b", {"z": np.zeros(0), "s": np.zeros((2, 0, 3), np.int32)}, {"k": None})
    got, meta = load_arrays(tmp_path / "b")
    assert got["z"].shape == (0,) and got["s"].shape == (2, 0, 3) and got["s"].dtype == np.int32
    assert meta == {"k": None}


def test_layout_header_is_aligned_and_metadata_is_strings(saved):
    path, _ = saved
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    assert (8 + n) % 8 == 0 and blob[8:9] == b"{"
    md = json.loads(blob[8:8 + n])["__metadata__"]
    assert md["format"] == "rnnkit" and md["format_version"] == "1"
    assert json.loads(md["meta"]) == META and all(isinstance(v, str) for v in md.values())


def test_safetensors_package_reads_the_file(saved):
    st_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open
    path, arrays = saved
    got = st_numpy.load_file(str(path))
    assert set(got) == set(arrays)
    for k, x in arrays.items():
        assert got[k].shape == x.shape and got[k].dtype == x.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got[k], x)
    with safe_open(str(path), framework="np") as f:
        md = f.metadata()
    assert md["format"] == "rnnkit" and json.loads(md["meta"]) == META


def test_checksum_verifies_with_the_documented_recipe(saved):
    f = saved[0].read_bytes()
    n = int.from_bytes(f[0:8], "little")
    H, data = f[8:8 + n], f[8 + n:]
    d = json.loads(H)["__metadata__"]["sha256"].encode()
    assert H.count(b'"sha256":"' + d + b'"') == 1
    H0 = H.replace(b'"sha256":"' + d + b'"', b'"sha256":"' + b"0" * 64 + b'"')
    assert hashlib.sha256(H0 + data).hexdigest().encode() == d


def test_crafted_file_loads(tmp_path):
    data = np.array([1.5, -2.0], "<f4").tobytes() + bytes([1, 0])
    path = _craft(tmp_path / "c", {"__metadata__": {"meta": '{"x": 1}'},
                                   "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "m": {"dtype": "BOOL", "shape": [2], "data_offsets": [8, 10]}}, data)
    got, meta = load_arrays(path)
    np.testing.assert_array_equal(got["w"], [1.5, -2.0])
    np.testing.assert_array_equal(got["m"], [True, False])
    assert meta == {"x": 1}


# -- damaged and foreign files ---------------------------------------------------------------------
def test_every_truncation_is_detected(saved):
    path, _ = saved
    blob = path.read_bytes()
    cut = path.with_name("cut")
    for k in range(len(blob)):
        cut.write_bytes(blob[:k])
        assert "truncated" in _error(cut), k


def test_trailing_bytes_are_detected(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes() + b"\x00")
    assert "trailing" in _error(path)


def test_random_bit_flips_are_detected(saved):
    path, _ = saved
    blob = path.read_bytes()
    rng = np.random.default_rng(1234)
    bad = path.with_name("flipped")
    positions = rng.choice(len(blob) * 8, size=300, replace=False)
    positions[:8] = np.arange(8) * 9                # also bit k of length byte k
    for bit in positions:
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad.write_bytes(bytes(flipped))
        _error(bad)


def test_flip_in_data_reports_checksum_mismatch(saved):
    path, _ = saved
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x10
    path.write_bytes(bytes(blob))
    msg = _error(path)
    assert "checksum mismatch" in msg and "corrupted" in msg


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_file_is_recognised(tmp_path, protocol):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"W_x": [[1.0, 2.0]], "step": 3}, protocol=protocol))
    assert "pickle" in _error(path)


def test_npz_and_npy_files_are_recognised(tmp_path):
    np.savez(tmp_path / "w.npz", W=np.ones(3))
    assert "npz" in _error(tmp_path / "w.npz")
    np.save(tmp_path / "w.npy", np.ones(3))
    assert ".npy" in _error(tmp_path / "w.npy")


def test_other_files_are_not_rnnkit(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    st_numpy.save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "plain.safetensors"))
    assert "not an rnnkit file" in _error(tmp_path / "plain.safetensors")
    st_numpy.save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "other"), metadata={"format": "pt"})
    assert "not an rnnkit file" in _error(tmp_path / "other")
    (tmp_path / "text").write_text("hello, this is a text file\n" * 3)
    assert "not an rnnkit file" in _error(tmp_path / "text")


def test_newer_format_version_is_reported(tmp_path):
    path = _craft(tmp_path / "new", {"__metadata__": {"format_version": "2"}})
    msg = _error(path)
    assert "newer rnnkit" in msg and "version 2" in msg


W = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, data, words", [
    ({"w": {**W, "dtype": "F16"}}, bytes(8), "unsupported dtype"),
    ({"w": {**W, "dtype": "O"}}, bytes(8), "unsupported dtype"),
    ({"w": {**W, "shape": [3]}}, bytes(8), "do not match"),
    ({"w": {**W, "shape": [-2]}}, bytes(8), "bad shape"),
    ({"w": {**W, "shape": [2.0]}}, bytes(8), "bad shape"),
    ({"w": {**W, "data_offsets": [8, 16]}}, bytes(16), "contiguous"),
    ({"w": W, "v": {**W, "data_offsets": [4, 12]}}, bytes(12), "contiguous"),
    ({"w": {**W, "data_offsets": [0]}}, bytes(8), "data_offsets"),
    ({"w": {**W, "extra": 1}}, bytes(8), "keys"),
    ({"w": W}, bytes(4), "truncated"),
    ({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, bytes([1, 7]), "bool"),
    ({"__metadata__": {"format_version": "0"}}, b"", "format_version"),
    ({"__metadata__": {"format_version": "x1"}}, b"", "format_version"),
    ({"__metadata__": {"format": "numpy"}}, b"", "not an rnnkit file"),
    ({"__metadata__": {"meta": "[1, 2]"}}, b"", "meta"),
    ({"__metadata__": {"meta": "{bad json"}}, b"", "meta"),
    ({"__metadata__": {"meta": '{"x": NaN}'}}, b"", "meta"),
])
def test_malformed_but_checksummed_files_are_rejected(tmp_path, header, data, words):
    assert words in _error(_craft(tmp_path / "bad", header, data))


def test_duplicate_keys_are_rejected(tmp_path):
    path = _craft(tmp_path / "dup", {"w": W}, bytes(8))
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    raw = blob[8:8 + n].rstrip(b" ")[:-1] + b',"w":' + json.dumps(W, separators=(",", ":")).encode() + b"}"
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(8))
    assert "repeated key" in _error(path)


def test_loading_never_unpickles(saved, monkeypatch, tmp_path):
    def boom(*args, **kwargs):
        raise AssertionError("unpickling attempted")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, boom)
    monkeypatch.setattr(np, "load", boom)
    load_arrays(saved[0])
    (tmp_path / "p").write_bytes(pickle.dumps({"a": 1}))
    _error(tmp_path / "p")


def test_missing_path_and_directory_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file.*nope"):
        load_arrays(tmp_path / "nope")
    with pytest.raises(InputError, match="is a directory"):
        load_arrays(tmp_path)


# -- bad arguments to save_arrays ------------------------------------------------------------------
@pytest.mark.parametrize("arrays, meta, error, words", [
    ({"w": np.ones(2, np.float16)}, {}, DTypeError, "arrays['w']: expected dtype"),
    ({"w": np.ones(2, np.complex64)}, {}, DTypeError, "complex64"),
    ({"w": np.array([object()])}, {}, DTypeError, "object"),
    ({"w": "text"}, {}, DTypeError, "arrays['w']"),
    ({"__metadata__": np.ones(2)}, {}, InputError, "__metadata__"),
    ({3: np.ones(2)}, {}, InputError, "names"),
    ([np.ones(2)], {}, InputError, "arrays: expected a dict"),
    ({"w": np.ones(2)}, [1], InputError, "meta: expected a JSON-serialisable dict"),
    ({"w": np.ones(2)}, {"f": object()}, InputError, "meta"),
    ({"w": np.ones(2)}, {"loss": float("nan")}, InputError, "NaN"),
])
def test_save_rejects_bad_arguments_and_leaves_no_file(tmp_path, arrays, meta, error, words):
    with pytest.raises(error) as e:
        save_arrays(tmp_path / "out", arrays, meta)
    assert words in str(e.value)
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        save_arrays(tmp_path / "no" / "out", {}, {})


# -- atomic writes ---------------------------------------------------------------------------------
def test_failed_replace_keeps_the_old_file_and_no_temp(saved, monkeypatch):
    path, arrays = saved
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash during rename")
    monkeypatch.setattr(safe.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_arrays(path, {"other": np.zeros(3)}, {"new": True})
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    _assert_same(load_arrays(path)[0], arrays)


def test_failed_fsync_mid_write_keeps_the_old_file_and_no_temp(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()

    def crash(fd):
        raise OSError("simulated disk error")
    monkeypatch.setattr(safe.os, "fsync", crash)
    with pytest.raises(OSError, match="simulated disk error"):
        save_arrays(path, {"w": np.ones(1000)}, {})
    with pytest.raises(OSError, match="simulated disk error"):
        atomic_write_text(path, "{}")
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_write_syncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(safe.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    atomic_write_bytes(tmp_path / "x.bin", b"abc")
    assert (tmp_path / "x.bin").read_bytes() == b"abc"
    assert len(synced) == (2 if os.name == "posix" else 1)


def test_atomic_text_and_bytes_overwrite_and_keep_mode(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_text(path, '{"H": 4, "name": "é"}\n')
    assert json.loads(path.read_text(encoding="utf-8")) == {"H": 4, "name": "é"}
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and os.listdir(tmp_path) == ["config.json"]
    if os.name == "posix":
        assert os.stat(path).st_mode & 0o777 == 0o640
    with pytest.raises(InputError, match="text: expected a str"):
        atomic_write_text(path, b"bytes")
    with pytest.raises(InputError, match="data: expected bytes"):
        atomic_write_bytes(path, "text")


def test_new_file_mode_follows_umask(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions only")
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "f").st_mode & 0o777 == 0o640
