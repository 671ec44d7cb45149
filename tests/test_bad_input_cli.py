"""Bad input at the command line: every argument or file error exits 2 with one line on stderr.

The sweep calls rnnkit.cli.main in this process (fast); a few cases also run `python -m rnnkit` in a
child process to check the real exit status. Each case carries at least one bad flag or file, plus
a tiny budget (--steps 2, --hidden 4) so that a bad value the command line fails to catch ends in
a quick, visible exit 0 rather than a long training run.
"""
import contextlib
import io
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.cli import main


def run_cli(argv):
    """(exit status, stderr) of `rnnkit *argv`, run in this process."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:            # argparse's usage errors
            rc = e.code
    return rc, err.getvalue()


def assert_one_line_error(rc, stderr, argv):
    """Exit status 2, no traceback, and one line `rnnkit ...: error: ...` (argparse's usage block aside)."""
    assert rc == 2, f"rnnkit {' '.join(map(str, argv))}: exit {rc}, stderr {stderr!r}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    if lines and lines[0].startswith("usage:"):   # argparse: see test_usage_errors_are_one_line
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("rnnkit") and ": error: " in lines[0], stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and bad input files, and two tiny trained runs (lm, classify), in one folder."""
    d = tmp_path_factory.mktemp("cli")
    words = "the cat sat on a mat and the dog ran far away from the cat ".split()
    f = {"text": d / "text.txt", "empty": d / "empty.txt", "latin1": d / "latin1.txt",
         "blank": d / "blank.txt", "cls": d / "cls.tsv", "one_class": d / "one.tsv",
         "no_label": d / "nolabel.tsv", "dir": d / "adir", "lm": d / "lm_run", "classify": d / "cls_run",
         "broken": d / "broken_run", "empty_run": d / "empty_run"}
    f["text"].write_text(" ".join(words * 40), encoding="utf-8")
    f["empty"].write_bytes(b"")
    f["latin1"].write_bytes("caf\u00e9 cr\u00e8me ".encode("latin-1") * 20)
    f["blank"].write_text(" \n\t\n", encoding="utf-8")
    f["cls"].write_text("text\tlabel\ngood film\tpos\nbad film\tneg\nfine movie\tpos\nawful one\tneg\n",
                        encoding="utf-8")
    f["one_class"].write_text("text\tlabel\ngood film\tpos\nfine movie\tpos\n", encoding="utf-8")
    f["no_label"].write_text("text\tlabel\ngood film\n", encoding="utf-8")
    f["dir"].mkdir()
    f["empty_run"].mkdir()
    tiny = ["--steps", "2", "--hidden", "4", "--batch", "2", "--quiet"]
    assert run_cli(["train", "lm", "--text", f["text"], "--run", f["lm"], "--seq-len", "4", *tiny])[0] == 0
    assert run_cli(["train", "classify", "--data", f["cls"], "--run", f["classify"], *tiny])[0] == 0
    shutil.copytree(f["lm"], f["broken"])
    for name in ("model.rnnkit", "last.ckpt"):
        data = (f["broken"] / name).read_bytes()
        (f["broken"] / name).write_bytes(data[: len(data) // 2])
    return {k: str(v) for k, v in f.items()}


# -- train lm: a hypothesis sweep over bad flags and files --------------------------------------------
BAD_VALUES = {
    "--hidden": ["0", "-1", "abc", "1.5", "", "100000000"], "--layers": ["0", "-2"], "--batch": ["0", "-1"],
    "--seq-len": ["0", "-4"], "--lr": ["-1", "nan", "inf", "0", "x"], "--dropout": ["1", "-0.1", "nan", "2"],
    "--val-split": ["1", "-0.5", "nan"], "--steps": ["0", "-5", "nan"], "--minutes": ["0", "-1", "nan"],
    "--epochs": ["0", "-1"], "--seed": ["-1", "x"], "--early-stopping": ["0", "-1"],
    "--eval-every": ["0", "-3"], "--embedding": ["0", "-4"], "--cell": ["lstmx"], "--optimizer": ["adamx"],
    "--dtype": ["float16"], "--level": ["byte"], "--vocab-size": ["0", "-1"], "--clip": ["-1", "nan"],
}
BAD_FILES = ["missing", "dir", "empty", "latin1", "blank"]


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_train_lm_flag_and_file_sweep(files, tmp_path, data):
    flags = {"--steps": "2", "--hidden": "4", "--batch": "2", "--seq-len": "4", "--eval-every": "1",
             "--level": "word"}
    for flag in data.draw(st.lists(st.sampled_from(sorted(BAD_VALUES)), min_size=0, max_size=2, unique=True)):
        flags[flag] = data.draw(st.sampled_from(BAD_VALUES[flag]))
    text = files["text"]
    extra = data.draw(st.sampled_from(["none", "file", "run_is_file", "resume_fresh", "unknown_flag",
                                       "run_exists"]))
    if extra == "file" or len(flags) == 6:     # no bad flag drawn: make a file bad
        name = data.draw(st.sampled_from(BAD_FILES))
        text = files[name] if name in files else files["text"] + ".missing"
    run = str(tmp_path / f"run{data.draw(st.integers(0, 10**6))}")
    argv = ["train", "lm", "--text", text, "--run", run, "--quiet"]
    argv += {"run_is_file": ["--run", files["text"]], "resume_fresh": ["--resume"],
             "unknown_flag": ["--hiden", "4"], "run_exists": ["--run", files["lm"]]}.get(extra, [])
    argv += [x for kv in flags.items() for x in kv]
    rc, err = run_cli(argv)
    assert_one_line_error(rc, err, argv)


# -- the other commands: bad flags, files and run folders ----------------------------------------------
TINY = ["--steps", "2", "--hidden", "4", "--batch", "2", "--quiet", "--run", "{tmp}/run"]
CASES = [   # (argv with {file} placeholders, what is wrong)
    (["bogus"], "unknown command"), ([], "no command"), (["train"], "no task"),
    (["train", "classify", "--data", "{one_class}", *TINY], "one class"),
    (["train", "classify", "--data", "{no_label}", *TINY], "a row without a label"),
    (["train", "classify", "--data", "{latin1}", "--format", "sst", *TINY], "not UTF-8"),
    (["train", "classify", "--data", "{empty}", "--format", "tsv", *TINY], "empty file"),
    (["train", "classify", "--data", "{text}.missing", *TINY], "missing file"),
    (["train", "classify", "--data", "{cls}", "--readout", "median", *TINY], "bad choice"),
    (["train", "classify", "--data", "{cls}", "--text-column", "body", *TINY], "no such column"),
    (["train", "tag", "--data", "{empty}", *TINY], "empty file"),
    (["train", "tag", "--data", "{dir}", *TINY], "a folder"),
    (["train", "forecast", "--csv", "{text}", "--column", "y", *TINY], "no column y"),
    (["train", "forecast", "--csv", "{empty}", "--column", "y", *TINY], "empty CSV"),
    (["train", "seq2seq", "--pairs", "{latin1}", *TINY], "not UTF-8"),
    (["train", "seq2seq", "--builtin", "addition", "--size", "0", *TINY], "size 0"),
    (["train", "seq2seq", "--builtin", "nope", *TINY], "bad choice"),
    (["sample", "{classify}"], "wrong kind of run"), (["sample", "{empty_run}"], "empty run folder"),
    (["sample", "{broken}"], "truncated model file"), (["sample", "{text}"], "a file, not a run"),
    (["sample", "{lm}.missing"], "missing run"), (["sample", "{lm}", "--temperature", "-1"], "temperature < 0"),
    (["sample", "{lm}", "--temperature", "nan"], "NaN temperature"), (["sample", "{lm}", "--top-k", "0"], "top-k 0"),
    (["sample", "{lm}", "--top-p", "1.5"], "top-p > 1"), (["sample", "{lm}", "--length", "0"], "length 0"),
    (["sample", "{lm}", "--length", "x"], "not an int"), (["sample", "{lm}", "--prompt", "zzz#"], "unknown symbols"),
    (["sample", "{lm}", "--seed", "-1"], "negative seed"),
    (["predict", "{lm}", "good"], "wrong kind of run"), (["predict", "{classify}"], "no text"),
    (["predict", "{classify}", "--file", "{latin1}"], "not UTF-8"),
    (["predict", "{classify}", "--file", "{dir}"], "a folder"), (["predict", "{broken}", "x"], "broken run"),
    (["forecast", "{lm}"], "wrong kind of run"), (["forecast", "{empty_run}"], "empty run folder"),
    (["translate", "{classify}", "abc"], "wrong kind of run"), (["translate", "{lm}"], "no text"),
    (["evaluate", "{lm}"], "no data"), (["evaluate", "{lm}", "--data", "{latin1}"], "not UTF-8"),
    (["evaluate", "{empty_run}", "--data", "{text}"], "empty run folder"),
    (["inspect", "{text}.missing"], "missing run"), (["inspect", "{text}"], "a file"),
]


def _case_id(case):
    argv, why = case.values if hasattr(case, "values") else case
    command = argv[:2] if argv[:1] == ["train"] else argv[:1]
    return "-".join(command + [why]) if argv else why


@pytest.mark.parametrize("argv, why", CASES, ids=[_case_id(c) for c in CASES])
def test_command_errors_exit_2_with_one_line(files, tmp_path, argv, why):
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    rc, err = run_cli(argv)
    assert_one_line_error(rc, err, argv + [f"({why})"])


@pytest.mark.parametrize("argv", [["bogus"], ["train", "lm", "--text", "{text}", "--hidden", "abc"],
                                  ["sample", "{lm}", "--temperature", "-1"], ["inspect", "{text}.missing"]])
def test_real_process_exits_2_with_one_line(files, argv):
    argv = [a.format(**files) for a in argv]
    src = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True, text=True, env=env,
                       timeout=120)
    assert_one_line_error(p.returncode, p.stderr, argv)


# -- known gaps (temporarily expected to fail; see the reasons) -----------------------------------------
@pytest.mark.parametrize("argv", [["bogus"], ["train", "lm", "--hidden", "abc"], ["sample"]])
def test_usage_errors_are_one_line(argv):
    rc, err = run_cli(argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
