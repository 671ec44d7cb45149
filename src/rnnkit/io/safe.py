"""Safe weight and checkpoint files: the safetensors layout, written atomically, never pickled.

File layout (the `safetensors` package reads it as it is)::

    bytes [0, 8)         N, the header length: unsigned 64-bit little-endian
    bytes [8, 8+N)       header: UTF-8 JSON object, padded with spaces so that 8+N is a multiple of 8
    bytes [8+N, end)     data: each array's raw little-endian C-order bytes, back to back

The header maps each array name to ``{"dtype": D, "shape": [d0, d1, ...], "data_offsets": [begin,
end]}``, offsets counted from the start of the data, D one of F32 F64 I64 I32 U8 BOOL (BOOL is one
byte, 0 or 1), and ``"__metadata__"`` to a string -> string object::

    "format": "rnnkit"                 "format_version": "1"
    "meta": json.dumps(meta)           "sha256": 64 lowercase hex digits

Checksum: ``sha256 = SHA-256(H0 + data)``, where H0 is the N header bytes exactly as stored, except
that the 64 hex digits of the one occurrence of ``"sha256":"<digits>"`` are replaced by 64 ASCII
"0". A third party verifies a file with::

    n = int.from_bytes(f[0:8], "little"); H = f[8:8 + n]; data = f[8 + n:]
    d = json.loads(H)["__metadata__"]["sha256"].encode()
    H0 = H.replace(b'"sha256":"' + d + b'"', b'"sha256":"' + b"0" * 64 + b'"')  # exactly one match
    assert hashlib.sha256(H0 + data).hexdigest().encode() == d

`meta` travels as strict JSON: tuples come back as lists, non-str keys as str, and NaN/Inf are
refused when saving. Loaded arrays are writable copies in native byte order. N is at most
MAX_HEADER_BYTES (100 MB), the safetensors package's own limit.

The 8 length bytes are not hashed: a wrong N makes the header fail to parse or the file size differ
from 8 + N + the end of the last array, and both are errors.

Writing is atomic: the bytes go to a temporary file ".<name>.<random>.tmp" in the target's
directory, which is flushed, fsynced and moved over the target with os.replace, then the directory
is fsynced. After a crash the path holds the old file or the new one, never part of one; on an
error the temporary file is removed. `atomic_write_bytes` / `atomic_write_text` give the same
guarantee to any other writer.

Reading executes nothing from the file: plain reads, `json.loads` and `np.frombuffer`. Every flaw
in a file (truncated, trailing bytes, corrupted, checksum mismatch, a pickle / zip / npz / npy
file, a safetensors file without rnnkit metadata, a newer format version) raises FileFormatError
"<path>: <what is wrong>". A path that does not exist or is a directory raises InputError naming
it (not FileNotFoundError), so every error a user can cause is an rnnkit error.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

from .._checks import check_array
from ..errors import DTypeError, FileFormatError, InputError

FORMAT = "rnnkit"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 100_000_000     # the safetensors package's own limit
_DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
_ZERO_DIGEST = "0" * 64
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


# -- atomic writes -------------------------------------------------------------------------------
def _new_file_mode():
    """0o666 less the process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(directory):
    """fsync a directory so a rename in it survives a crash (a no-op where unsupported)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass    # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def _check_path(name, path):
    """Return path as a str, or raise InputError naming the argument."""
    try:
        return os.fspath(path)
    except TypeError:
        raise InputError(f"{name}: expected a str or os.PathLike, got {type(path).__name__}") from None


def _atomic_write(path, write):
    """Call write(f) on a temp file next to path, fsync it, os.replace it onto path, fsync the dir."""
    path = _check_path("path", path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"path: directory {directory!r} does not exist (for {path!r})")
    if os.path.isdir(path):
        raise InputError(f"path: {path!r} is a directory, expected a file path")
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else _new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path)[:100] + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write_bytes(path, data):
    """Write bytes to path atomically: the path ends up with the old content or all of `data`."""
    try:
        data = memoryview(data)
    except TypeError:
        raise InputError(f"data: expected bytes or a buffer, got {type(data).__name__}") from None
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text, encoding="utf-8"):
    """Write a str to path atomically, encoded as `encoding` (no newline translation)."""
    if not isinstance(text, str):
        raise InputError(f"text: expected a str, got {type(text).__name__}")
    atomic_write_bytes(path, text.encode(encoding))


# -- saving --------------------------------------------------------------------------------------
def _prepare(arrays):
    """Check arrays and return [(name, code, little-endian contiguous array)] in dict order."""
    if not isinstance(arrays, dict):
        raise InputError(f"arrays: expected a dict of name -> numpy array, got {type(arrays).__name__}")
    out = []
    for name, x in arrays.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise InputError(f"arrays: expected str names other than '__metadata__', got {name!r}")
        x = check_array(f"arrays[{name!r}]", x)
        code = _CODES.get(x.dtype.newbyteorder("="))
        if code is None:
            raise DTypeError(f"arrays[{name!r}]: expected dtype float32, float64, int64, int32, uint8 "
                             f"or bool, got {x.dtype}")
        out.append((name, code, np.asarray(x, dtype=_DTYPES[code], order="C")))   # keeps 0-d arrays
    return out


def _header_bytes(entries, meta_text, digest):
    """The header JSON for entries and metadata, space-padded so 8 + len is a multiple of 8."""
    header = {"__metadata__": {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                               "meta": meta_text, "sha256": digest}}
    begin = 0
    for name, code, x in entries:
        header[name] = {"dtype": code, "shape": list(x.shape), "data_offsets": [begin, begin + x.nbytes]}
        begin += x.nbytes
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return raw + b" " * (-len(raw) % 8)


def save_arrays(path, arrays, meta):
    """Write named arrays and a JSON-able meta dict to path atomically (layout in the module doc)."""
    entries = _prepare(arrays)
    if not isinstance(meta, dict):
        raise InputError(f"meta: expected a JSON-serialisable dict, got {type(meta).__name__}")
    try:
        meta_text = json.dumps(meta, ensure_ascii=False, allow_nan=False)
        h0 = _header_bytes(entries, meta_text, _ZERO_DIGEST)
    except UnicodeEncodeError as e:   # before ValueError, its base class
        raise InputError(f"arrays/meta: names and strings must be encodable as UTF-8: {e}") from None
    except (TypeError, ValueError, RecursionError) as e:
        raise InputError(f"meta: expected a JSON-serialisable dict (no NaN/Inf), got an error: {e}") from None
    if len(h0) > MAX_HEADER_BYTES:
        raise InputError(f"meta: header of {len(h0)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    sha = hashlib.sha256(h0)
    for _, _, x in entries:
        sha.update(x.reshape(-1).view(np.uint8))
    old, new = b'"sha256":"' + _ZERO_DIGEST.encode(), b'"sha256":"' + sha.hexdigest().encode()
    assert h0.count(old) == 1
    header = h0.replace(old, new)

    def write(f):
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for _, _, x in entries:
            f.write(x.reshape(-1).view(np.uint8))
    _atomic_write(path, write)


# -- loading -------------------------------------------------------------------------------------
def _sniff(head):
    """Name the kind of a non-rnnkit file from its first bytes, or return None."""
    if len(head) >= 3 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[2] != 0:   # 0 is no opcode
        return (f"a Python pickle file (protocol {head[1]}); rnnkit never unpickles files, "
                f"re-save the weights with rnnkit.io.save_arrays")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return ("a zip archive (NumPy .npz or PyTorch .pt/.pth, which can hold pickles); "
                "rnnkit reads only its own safetensors-layout files")
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy file, not an rnnkit file"
    if head[:4] == b"\x89HDF":
        return "an HDF5 file, not an rnnkit file"
    return None


def _read_header(f, path, size):
    """Read and bound-check the length prefix and return the raw header bytes."""
    head = f.read(8)
    kind = _sniff(head)
    if len(head) < 8:
        raise FileFormatError(f"{path}: {kind or f'truncated: only {len(head)} bytes, not an rnnkit file'}")
    n = int.from_bytes(head, "little")
    if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
        if f.read(1) in (b"{", b"") and 2 <= n <= MAX_HEADER_BYTES:   # an rnnkit header, cut short
            raise FileFormatError(f"{path}: truncated: header needs {n} bytes, only {size - 8} follow")
        what = kind or f"not an rnnkit file, or corrupted (implausible header length {n})"
        raise FileFormatError(f"{path}: {what}")
    raw = f.read(n)
    if len(raw) < n:
        raise FileFormatError(f"{path}: truncated: header needs {n} bytes, only {len(raw)} read")
    if raw[:1] != b"{":
        raise FileFormatError(f"{path}: {kind or 'not an rnnkit file (header is not a JSON object)'}")
    return raw


def _no_duplicates(pairs):
    """json object hook that rejects repeated keys."""
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("repeated key in a JSON object")
    return d


def _bad_constant(name):
    """json hook that rejects NaN / Infinity."""
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_json(path, text, what):
    """json.loads that turns every failure into FileFormatError."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)
    except (ValueError, RecursionError) as e:   # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise FileFormatError(f"{path}: corrupted: {what} is not valid UTF-8 JSON ({e})") from None


def _check_metadata(path, header):
    """Check format, version and checksum fields of __metadata__; return (meta text, digest)."""
    md = header.get("__metadata__")
    if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
        raise FileFormatError(f"{path}: not an rnnkit file (no string -> string __metadata__)")
    if md.get("format") != FORMAT:
        raise FileFormatError(f"{path}: not an rnnkit file (__metadata__ format is {md.get('format')!r}, "
                              f"expected {FORMAT!r})")
    version = md.get("format_version", "")
    if not (version.isascii() and version.isdigit()):
        raise FileFormatError(f"{path}: corrupted or unknown format_version {version!r}")
    if int(version) > FORMAT_VERSION:
        raise FileFormatError(f"{path}: made by a newer rnnkit (format version {int(version)}; this rnnkit "
                              f"reads up to version {FORMAT_VERSION}); upgrade rnnkit")
    if int(version) < 1:
        raise FileFormatError(f"{path}: corrupted or unknown format_version {version!r}")
    digest = md.get("sha256", "")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise FileFormatError(f"{path}: corrupted: sha256 is not 64 lowercase hex digits")
    if "meta" not in md:
        raise FileFormatError(f"{path}: corrupted: __metadata__ has no 'meta'")
    return md["meta"], digest


def _is_int(v):
    """True for a JSON integer (not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _check_entries(path, header):
    """Check every array entry; return [(name, dtype, shape, begin)] and the data length."""
    entries = []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
            raise FileFormatError(f"{path}: corrupted: entry {name!r} needs exactly the keys "
                                  f"{sorted(_ENTRY_KEYS)}")
        code, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if code not in _DTYPES:
            raise FileFormatError(f"{path}: entry {name!r} has unsupported dtype {code!r} "
                                  f"(allowed: {', '.join(_DTYPES)})")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise FileFormatError(f"{path}: corrupted: entry {name!r} has bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs)):
            raise FileFormatError(f"{path}: corrupted: entry {name!r} has bad data_offsets {offs!r}")
        dtype = np.dtype(_DTYPES[code])
        if offs[1] - offs[0] != int(np.prod(shape, dtype=object)) * dtype.itemsize:
            raise FileFormatError(f"{path}: corrupted: entry {name!r} data_offsets {offs} do not match "
                                  f"shape {shape} of {code}")
        entries.append((name, dtype, tuple(shape), offs[0], offs[1]))
    end = 0
    for name, _, _, begin, stop in sorted(entries, key=lambda t: (t[3], t[4])):
        if begin != end:
            raise FileFormatError(f"{path}: corrupted: entry {name!r} starts at {begin}, expected {end} "
                                  f"(data must be contiguous)")
        end = stop
    return entries, end


def _verify(path, raw, data, digest):
    """Check the sha256 of (header with zeroed digest) + data against digest."""
    field = b'"sha256":"' + digest.encode() + b'"'
    if raw.count(field) != 1:
        raise FileFormatError(f"{path}: corrupted: sha256 field not found exactly once in the header")
    sha = hashlib.sha256(raw.replace(field, b'"sha256":"' + _ZERO_DIGEST.encode() + b'"'))
    sha.update(data)
    if sha.hexdigest() != digest:
        raise FileFormatError(f"{path}: corrupted: checksum mismatch (sha256 of the content differs "
                              f"from the one stored)")


def _open(path):
    """Open path for reading, raising InputError for a missing path or a directory."""
    path = _check_path("path", path)
    if os.path.isdir(path):
        raise InputError(f"path: {path!r} is a directory, expected an rnnkit file")
    try:
        return path, open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"path: no such file {path!r}") from None


def load_arrays(path):
    """Read a file written by save_arrays and return (arrays: dict name -> ndarray, meta: dict)."""
    path, f = _open(path)
    with f:
        size = os.fstat(f.fileno()).st_size
        raw = _read_header(f, path, size)
        header = _parse_json(path, raw, "header")
        if not isinstance(header, dict):
            raise FileFormatError(f"{path}: not an rnnkit file (header is not a JSON object)")
        meta_text, digest = _check_metadata(path, header)
        entries, total = _check_entries(path, header)
        have = size - 8 - len(raw)
        if have != total:
            what = "truncated" if have < total else f"{have - total} unexpected trailing bytes"
            raise FileFormatError(f"{path}: {what}: data should be {total} bytes, found {have}")
        data = f.read(total)
    if len(data) != total:
        raise FileFormatError(f"{path}: truncated: data should be {total} bytes, read {len(data)}")
    _verify(path, raw, data, digest)
    arrays = {}
    for name, dtype, shape, begin, stop in entries:
        if dtype.kind == "b" and bytes(data[begin:stop]).translate(None, b"\x00\x01"):
            raise FileFormatError(f"{path}: corrupted: bool array {name!r} holds bytes other than 0 and 1")
        x = np.frombuffer(data, dtype=dtype, count=(stop - begin) // dtype.itemsize, offset=begin)
        arrays[name] = x.astype(dtype.newbyteorder("=")).reshape(shape)   # copy: writable, native order
    meta = _parse_json(path, meta_text, "meta")
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path}: corrupted: meta is a {type(meta).__name__}, expected a JSON object")
    return arrays, meta
