"""Text from this machine: a built-in corpus (Python's own standard library source) and readers for
users' files. Nothing is ever downloaded.

stdlib_corpus: the .py files under sysconfig.get_paths()["stdlib"], listed in sorted order (test
    and site-packages directories skipped), put in a seeded order default_rng(seed).permutation,
    read as strict UTF-8 (files that fail are skipped), each ending in "\n", concatenated and cut to
    max_chars. Same machine, same arguments -> same text.
read_text: a UTF-8 text file (a leading BOM is dropped) or an InputError that says what is wrong:
    missing, a directory, empty, or not UTF-8 (with the byte offset and line of the first bad byte).
read_labelled: (text, label) examples from
    .tsv / .csv   a header row naming the columns (text: text, sentence, review, content;
                  label: label, sentiment, class, target), or no header: column 0 = text, 1 = label;
    .jsonl        one JSON object per line with the same key names (.json: also a JSON list);
    format="sst"  lines "label text" (a fastText "__label__" prefix is dropped).
    Labels are strings; classes are sorted (numerically when every label is an integer) and
    labels (N,) int64 index into them.
"""
import csv
import io
import json
import os
import re
import sysconfig
from typing import NamedTuple

import numpy as np

from .._checks import check_choice, check_int
from ..errors import InputError
from .synthetic import rng_from_seed

SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
TEXT_NAMES = ("text", "sentence", "review", "content")
LABEL_NAMES = ("label", "sentiment", "class", "target")
FORMATS = ("tsv", "csv", "jsonl", "sst")
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_BOM = b"\xef\xbb\xbf"


def stdlib_files(root=None):
    """Sorted paths of the .py files under root (default: the standard library), tests skipped."""
    root = sysconfig.get_paths()["stdlib"] if root is None else os.fspath(root)
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("."))
        files += [os.path.join(d, f) for f in sorted(names) if f.endswith(".py")]
    return sorted(files)


def stdlib_corpus(max_chars=1_000_000, seed=0, root=None):
    """Up to max_chars characters of Python standard-library source, deterministic per seed."""
    max_chars = check_int("max_chars", max_chars, low=1)
    files = stdlib_files(root)
    order = rng_from_seed(seed).permutation(len(files))              # (F,)
    parts, total = [], 0
    for i in order.tolist():
        try:
            with open(files[i], "rb") as fh:
                text = fh.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not text:
            continue
        parts.append(text if text.endswith("\n") else text + "\n")
        total += len(parts[-1])
        if total >= max_chars:
            break
    if not parts:
        where = sysconfig.get_paths()["stdlib"] if root is None else os.fspath(root)
        raise InputError(f"root: no readable UTF-8 .py files found under {where!r}; "
                         f"pass your own text (rnnkit.data.read_text) instead")
    return "".join(parts)[:max_chars]


def _path(path):
    """path as a str, or an InputError."""
    try:
        return os.fspath(path)
    except TypeError:
        raise InputError(f"path: expected a str or os.PathLike, got {type(path).__name__}") from None


def read_text(path, errors="strict"):
    """The text of a UTF-8 file; errors="replace" substitutes U+FFFD for bad bytes."""
    check_choice("errors", errors, ("strict", "replace"))
    p = _path(path)
    if not os.path.exists(p):
        raise InputError(f"path: no such file: {p!r}")
    if os.path.isdir(p):
        raise InputError(f"path: {p!r} is a directory, expected a text file")
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise InputError(f"path: cannot read {p!r}: {e.strerror}") from None
    start = len(_BOM) if data.startswith(_BOM) else 0
    if len(data) == start:
        raise InputError(f"path: {p!r} is empty (0 bytes of text)")
    try:
        text = data[start:].decode("utf-8", errors)
    except UnicodeDecodeError as e:
        off = start + e.start
        line = data.count(b"\n", 0, off) + 1
        raise InputError(f"path: {p!r} is not valid UTF-8: byte 0x{data[off]:02x} at byte offset "
                         f"{off} (line {line}); convert it to UTF-8 or pass errors='replace'") from None
    if not text.strip():
        raise InputError(f"path: {p!r} contains only whitespace")
    return text


class Labelled(NamedTuple):
    """Labelled examples: texts (N), labels (N,) int64 indexing classes."""
    texts: list
    labels: np.ndarray
    classes: list


def _pick_column(p, header, given, names, what, default):
    """Index of the text or label column: given (int or name), a known name, or the default."""
    if isinstance(given, int) and not isinstance(given, bool):
        return check_int(f"{what}_column", given, low=0)
    if given is not None:
        if header is None or given.strip().lower() not in header:
            have = f"header: {header}" if header is not None else "the file has no header row"
            raise InputError(f"{what}_column: no column {given!r} in {p!r} ({have})")
        return header.index(given.strip().lower())
    if header is None:
        return default
    for name in names:
        if name in header:
            return header.index(name)
    raise InputError(f"{p}: no {what} column in the header {header}; expected one named "
                     f"{' / '.join(names)}, or pass {what}_column=")


def _delimited(p, text, delimiter, text_column, label_column):
    """(line, text, label) rows of a TSV or CSV file."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    try:
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as e:          # e.g. a field over csv.field_size_limit()
        raise InputError(f"{p}: line {reader.line_num}: cannot parse: {e}") from None
    first = [c.strip().lower() for c in rows[0][1]] if rows else []
    named = {n for n in (text_column, label_column) if isinstance(n, str)}
    is_header = any(c in TEXT_NAMES + LABEL_NAMES or c in {n.lower() for n in named} for c in first)
    header = first if is_header else None
    ti = _pick_column(p, header, text_column, TEXT_NAMES, "text", 0)
    li = _pick_column(p, header, label_column, LABEL_NAMES, "label", 1)
    out = []
    for line, row in rows[1:] if is_header else rows:
        if len(row) <= max(ti, li):
            raise InputError(f"{p}: line {line}: expected at least {max(ti, li) + 1} columns "
                             f"(text in {ti}, label in {li}), got {len(row)}: {row!r:.80}")
        out.append((line, row[ti], row[li]))
    return out


def _key(p, obj, given, names, what, where):
    """The key of obj that holds the text or the label."""
    if given is not None:
        if given not in obj:
            raise InputError(f"{p}: {where}: no key {given!r} (keys: {sorted(obj)})")
        return given
    for name in names:
        if name in obj:
            return name
    raise InputError(f"{p}: {where}: no {what} key among {sorted(obj)}; expected one of "
                     f"{' / '.join(names)}, or pass {what}_column=")


def _label_str(v):
    """A JSON label value as a string (1.0 -> "1")."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v if isinstance(v, str) else json.dumps(v)


def _jsonl(p, text, text_column, label_column):
    """(line, text, label) rows of a JSON-lines file (or of a JSON list)."""
    if text.lstrip().startswith("["):
        try:
            objs = [(f"item {i}", o) for i, o in enumerate(json.loads(text))]
        except json.JSONDecodeError as e:
            raise InputError(f"{p}: not valid JSON: {e}") from None
        except RecursionError:
            raise InputError(f"{p}: not usable JSON: nested too deeply") from None
    else:
        objs = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    objs.append((f"line {n}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise InputError(f"{p}: line {n}: not valid JSON: {e}") from None
                except RecursionError:
                    raise InputError(f"{p}: line {n}: not usable JSON: nested too deeply") from None
    out = []
    for where, o in objs:
        if not isinstance(o, dict):
            raise InputError(f"{p}: {where}: expected a JSON object, got {type(o).__name__}")
        tk = _key(p, o, text_column, TEXT_NAMES, "text", where)
        lk = _key(p, o, label_column, LABEL_NAMES, "label", where)
        text, label = o[tk], o[lk]      # null counts as empty (rejected by _finish)
        out.append((where.split()[-1], "" if text is None else str(text),
                    "" if label is None else _label_str(label)))
    return out


def _sst(p, text):
    """(line, text, label) rows of "label text" lines."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                raise InputError(f"{p}: line {n}: expected 'label text', got {line.strip()!r:.80}")
            out.append((n, parts[1], parts[0].removeprefix("__label__")))
    return out


def _finish(p, rows):
    """Labelled examples from (line, text, label) rows, after the emptiness and class checks."""
    if not rows:
        raise InputError(f"path: {p!r} holds no examples")
    for line, text, label in rows:
        if not text.strip() or not label.strip():
            part = "text" if not text.strip() else "label"
            raise InputError(f"{p}: line {line}: empty {part}")
    texts = [t.strip() for _, t, _ in rows]
    names = [lab.strip() for _, _, lab in rows]
    classes = sorted(set(names))
    if all(re.fullmatch(r"-?\d+", c) for c in classes):
        classes.sort(key=int)
    if len(classes) < 2:
        raise InputError(f"path: all {len(rows)} examples in {p!r} have the label {classes[0]!r}; "
                         f"a classifier needs at least two classes")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int64)      # (N,)
    return Labelled(texts, labels, classes)


def read_labelled(path, format=None, text_column=None, label_column=None):
    """Labelled(texts, labels (N,) int64, classes) from a TSV, CSV, JSONL or "label text" file."""
    p = _path(path)
    if format is None:
        ext = os.path.splitext(p)[1].lower()
        if ext not in _EXTENSIONS:
            raise InputError(f"format: cannot tell the format of {p!r} from its extension {ext!r}; "
                             f"pass format= one of {FORMATS}")
        format = _EXTENSIONS[ext]
    check_choice("format", format, FORMATS)
    for name, v in (("text_column", text_column), ("label_column", label_column)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
            raise InputError(f"{name}: expected a column name or index, got {v!r}")
    text = read_text(p)
    if format in ("tsv", "csv"):
        rows = _delimited(p, text, "\t" if format == "tsv" else ",", text_column, label_column)
    elif format == "jsonl":
        rows = _jsonl(p, text, text_column, label_column)
    else:
        rows = _sst(p, text)
    return _finish(p, rows)
