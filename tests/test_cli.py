"""The command line end to end on tiny generated files: train, sample, predict, evaluate, inspect,
resume, Ctrl-C, and every user error as one line with exit status 2."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnkit import tasks
from rnnkit.checkpoint import read_metrics
from rnnkit.cli import main
from rnnkit.cli.common import BudgetBar
from rnnkit.data import TAGS, make_negation_sentiment, make_tagging
from rnnkit.errors import InputError

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
TINY = ["--hidden", "16", "--embedding", "8", "--quiet"]
LM = TINY + ["--batch", "4", "--seq-len", "16"]


def run(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *words):
    """Exit status 2, one line on stderr containing every word, no traceback."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "text.txt"
    p.write_text("the quick brown fox jumps over the lazy dog.\n" * 60, encoding="utf-8")
    return p


@pytest.fixture
def sentiment_tsv(tmp_path):
    s, y, _ = make_negation_sentiment(240, seed=1)
    p = tmp_path / "sent.tsv"
    p.write_text("text\tlabel\n" + "".join(f"{a}\t{'pos' if b else 'neg'}\n" for a, b in zip(s, y)))
    return p


@pytest.fixture
def tag_file(tmp_path):
    toks, tags = make_tagging(120, seed=2)
    p = tmp_path / "tags.txt"
    p.write_text("\n\n".join("\n".join(f"{t}\t{TAGS[g]}" for t, g in zip(ts, gs))
                             for ts, gs in zip(toks, tags)) + "\n")
    return p


@pytest.fixture
def lm_run(tmp_path, text_file, capsys):
    rd = tmp_path / "lm"
    code, out, _ = run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 40, "--eval-every", 20,
                       "--lr", 0.01, "--run", rd)
    assert code == 0
    return rd, out


# -- language model ----------------------------------------------------------------------------
def test_train_lm_writes_run_folder_and_loss_falls(lm_run):
    rd, out = lm_run
    for name in ("model.rnnkit", "last.ckpt", "best.ckpt", "metrics.jsonl", "run.json"):
        assert (rd / name).exists(), name
    recs = read_metrics(rd / "metrics.jsonl")
    losses = [r["loss"] for r in recs if r.get("loss") is not None]
    assert recs[-1]["step"] == 40 and losses[-1] < losses[0] - 0.5
    assert any("val_loss" in r for r in recs)
    assert json.loads((rd / "run.json").read_text())["task"] == "lm"
    assert "trained 40 steps" in out and "sample:" in out


def test_sample_is_seeded_and_continues_the_prompt(lm_run, capsys):
    rd, _ = lm_run
    a = run(capsys, "sample", rd, "--prompt", "the q", "--length", 30, "--seed", 3)
    b = run(capsys, "sample", rd, "--prompt", "the q", "--length", 30, "--seed", 3)
    assert a[0] == 0 and a[1] == b[1]
    assert a[1].startswith("the q") and len(a[1].rstrip("\n")) == 5 + 30
    code, out, _ = run(capsys, "sample", rd, "--prompt", "the quick", "--length", 20, "--temperature", 0,
                       "--top-k", 3, "--top-p", 0.9)
    assert code == 0 and out.startswith("the quick")


def test_sample_unknown_characters_one_line(lm_run, capsys):
    code, _, err = run(capsys, "sample", lm_run[0], "--prompt", "Zé the")
    one_line_error(code, err, "'Z'", "'é'", "never seen")


def test_evaluate_and_inspect_lm(lm_run, text_file, capsys):
    rd, _ = lm_run
    code, out, _ = run(capsys, "evaluate", rd, "--data", text_file, "--json")
    s = json.loads(out)
    assert code == 0 and s["perplexity"] == pytest.approx(math.exp(s["loss"]))
    assert s["bits_per_char"] == pytest.approx(s["loss"] / math.log(2)) and s["loss"] < 2.5
    code, out, _ = run(capsys, "inspect", rd)
    assert code == 0
    for word in ("task lm", "ManyToMany", "parameters:", "rnn.l0", "best validation loss", "model.rnnkit"):
        assert word in out, word


def test_resume_continues_the_step_count(tmp_path, text_file, capsys):
    rd = tmp_path / "r"
    assert run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 10, "--run", rd)[0] == 0
    one_line_error(*run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 10, "--run", rd)[::2],
                   "--resume")
    # a changed size is put back from the run: the model and data must match the checkpoint
    code, out, _ = run(capsys, "train", "lm", "--text", text_file, "--quiet", "--hidden", "32", "--steps", 25,
                       "--run", rd, "--resume")
    assert code == 0 and "--hidden" in out and "trained 25 steps" in out
    assert read_metrics(rd / "metrics.jsonl")[-1]["step"] == 25


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path, text_file, capsys):
    rd = tmp_path / "c"
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "rnnkit", "train", "lm", "--text", str(text_file), *LM, "--steps", "100000",
           "--eval-every", "5", "--run", str(rd)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not read_metrics(rd / "metrics.jsonl") and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted at step" in out and "--resume" in out
    step = read_metrics(rd / "metrics.jsonl")[-1]["step"]
    code, out, _ = run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", step + 5, "--run", rd,
                       "--resume")
    assert code == 0 and f"trained {step + 5} steps" in out


# -- classification ----------------------------------------------------------------------------
def test_classify_train_predict_evaluate(tmp_path, sentiment_tsv, capsys):
    rd = tmp_path / "c"
    code, out, _ = run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 30,
                       "--run", rd)
    assert code == 0 and "validation accuracy" in out and (rd / "model.rnnkit").exists()
    code, out, _ = run(capsys, "predict", rd, "the movie was not good", "i loved it")
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert code == 0 and len(rows) == 2
    assert all(r[0] in ("neg", "pos") and 0.5 <= float(r[1]) <= 1 for r in rows)
    assert rows[0][2] == "the movie was not good"
    code, out, _ = run(capsys, "evaluate", rd, "--data", sentiment_tsv, "--json")
    s = json.loads(out)
    assert code == 0 and s["count"] == 240 and 0 <= s["accuracy"] <= 1
    assert sum(c["count"] for c in s["per_class"].values()) == 240


def test_classify_negation_scope_marks_training_and_prediction(tmp_path, sentiment_tsv, capsys):
    from rnnkit import tasks
    from rnnkit.cli.common import load_run
    from rnnkit.data import Vocab
    rd = tmp_path / "c"
    code, out, _ = run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 20,
                       "--negation-scope", "--run", rd)
    assert code == 0
    model, meta = load_run(rd, "classify")
    vocab = Vocab.from_json(meta["vocab"])
    assert vocab.negation_scope and any(t.startswith("\u00ac") for t in vocab.itos)
    text = "the movie was not good"
    assert vocab.tokenize(text)[-1] == "\u00acgood"
    # predict reads with the run's marking: its probability is the model's on the marked ids
    p = tasks.classify_probs(model.eval(), tasks.encode_texts(vocab, [text]))[0]          # (C,)
    code, out, _ = run(capsys, "predict", rd, text)
    label, prob, shown = out.strip().split("\t")
    assert code == 0 and shown == text and label == meta["classes"][int(np.argmax(p))]
    assert float(prob) == pytest.approx(p.max(), abs=1e-3)
    unmarked = Vocab.from_json({**meta["vocab"], "negation_scope": False})
    assert unmarked.encode(text)[-1] != vocab.encode(text)[-1]
    code, out, _ = run(capsys, "inspect", rd)
    assert code == 0 and "negation scopes marked" in out


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "sst", "dir"])
def test_classify_formats(tmp_path, capsys, fmt):
    s, y, _ = make_negation_sentiment(40, seed=3)
    p = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        p.write_text("review,sentiment\n" + "".join(f'"{a}",{b}\n' for a, b in zip(s, y)))
        flags = ["--data", p, "--text-column", "review", "--label-column", "sentiment"]
    elif fmt == "jsonl":
        p.write_text("".join(json.dumps({"text": a, "label": int(b)}) + "\n" for a, b in zip(s, y)))
        flags = ["--data", p]
    elif fmt == "sst":
        p.write_text("".join(f"{b} {a}\n" for a, b in zip(s, y)))
        flags = ["--data", p, "--format", "sst"]
    else:
        p.mkdir()
        for c in (0, 1):
            (p / f"{'pos' if c else 'neg'}.txt").write_text("".join(a + "\n" for a, b in zip(s, y) if b == c))
        flags = ["--data-dir", p]
    code, out, err = run(capsys, "train", "classify", *flags, *TINY, "--steps", 3, "--run", tmp_path / "r")
    assert code == 0, err
    assert "2 classes" in out


@pytest.mark.parametrize("content, flags, words", [
    (None, [], ["no such file"]),
    ("", [], ["empty"]),
    ("text\tlabel\na good one\t1\n", ["--text-column", "review"], ["review"]),
    ("text\tlabel\na good one\t1\nthe bad one\t1\n", [], ["two classes"]),
    ("1 fine\nlonely\n", ["--format", "sst"], ["line 2"]),
])
def test_classify_data_errors_one_line(tmp_path, capsys, content, flags, words):
    p = tmp_path / "d.tsv"
    if content is not None:
        p.write_text(content)
    code, _, err = run(capsys, "train", "classify", "--data", p, *flags, *TINY, "--steps", 2,
                       "--run", tmp_path / "r")
    one_line_error(code, err, *words)
    assert not (tmp_path / "r").exists()


# -- tagging ---------------------------------------------------------------------------------
def test_tag_train_and_evaluate(tmp_path, tag_file, capsys):
    rd = tmp_path / "t"
    code, out, _ = run(capsys, "train", "tag", "--data", tag_file, *TINY, "--steps", 40, "--lr", 0.02,
                       "--run", rd)
    assert code == 0 and "validation token accuracy" in out
    code, out, _ = run(capsys, "evaluate", rd, "--data", tag_file, "--json")
    s = json.loads(out)
    n_tokens = sum(len(block.split("\n")) for block in tag_file.read_text().strip().split("\n\n"))
    assert code == 0 and s["count"] == n_tokens and s["accuracy"] > 0.7


def test_tag_file_errors(tmp_path, capsys):
    p = tmp_path / "bad.txt"
    p.write_text("alice NAME\nsaw\n")
    one_line_error(*run(capsys, "train", "tag", "--data", p, *TINY, "--steps", 2)[::2], "line 2")


# -- run folders -----------------------------------------------------------------------------
def test_wrong_task_and_missing_run_folders(tmp_path, sentiment_tsv, text_file, capsys):
    rd = tmp_path / "c"
    assert run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 2, "--run", rd)[0] == 0
    one_line_error(*run(capsys, "sample", rd, "--prompt", "a")[::2], "'classify' run", "'lm'")
    one_line_error(*run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 2, "--run", rd,
                        "--resume")[::2], "'classify' run")
    missing = tmp_path / "nowhere"
    for argv in (["sample", missing], ["predict", missing, "good"], ["inspect", missing],
                 ["evaluate", missing, "--data", text_file]):
        one_line_error(*run(capsys, *argv)[::2], "no such run folder")
    (tmp_path / "empty").mkdir()
    one_line_error(*run(capsys, "predict", tmp_path / "empty", "good")[::2], "not an rnnkit run folder")


def test_bad_training_flags_one_line(tmp_path, text_file, capsys):
    for flags, word in ((["--lr", "-1"], "--lr"), (["--dropout", "1.5"], "--dropout"),
                        (["--steps", "0"], "--steps"), (["--bidirectional"], "--bidirectional"),
                        (["--clip", "-1"], "--clip"), (["--hidden", "100000000"], "--hidden")):
        one_line_error(*run(capsys, "train", "lm", "--text", text_file, *LM, *flags,
                            "--run", tmp_path / "r")[::2], word)
    one_line_error(*run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 2, "--resume")[::2],
                   "--run")


def test_demo_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rd = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "rnnkit", "demo", "--steps", "3", "--run", str(rd)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "before training" in p.stdout and "after 3 steps" in p.stdout and "def " in p.stdout
    assert (rd / "model.rnnkit").exists() and (rd / "metrics.jsonl").exists()


def test_bench_is_wired(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0 and "rnnkit bench" in capsys.readouterr().out


# -- library helpers -------------------------------------------------------------------------
def test_budget_bar_fills_by_time_or_steps():
    t = [0.0]
    bar = BudgetBar(steps=100, minutes=1.0)
    bar.clock, bar.t0 = (lambda: t[0]), 0.0
    t[0] = 30.0
    assert "50%" in bar.text(10) and "ETA 0:00:30" in bar.text(10)
    assert "80%" in bar.text(80)


def test_tasks_helpers(tmp_path):
    tr, va = tasks.split_text("aaa bbb ccc ddd", 0.3, "word")
    assert tr + va == "aaa bbb ccc ddd" and va == "ccc ddd"
    a, b = tasks.split_indices(10, 0.3, seed=1)
    assert len(b) == 3 and sorted(np.concatenate([a, b]).tolist()) == list(range(10))
    p = tmp_path / "t.txt"
    p.write_text("-DOCSTART- O\n\nAlice B-PER\nsaw O\n\n\nBob\tB-PER\n")
    assert tasks.read_tagged(p) == ([["Alice", "saw"], ["Bob"]], [["B-PER", "O"], ["B-PER"]])
    vocab = tasks.word_vocab(["good movie", "bad movie"])
    batches = tasks.sequence_batches(tasks.encode_texts(vocab, ["good movie", "", "bad"]), [1, 0, 0], 3,
                                     shuffle=False)
    b = next(iter(batches.eval_batches()))
    assert b["x"].shape == (2, 3) and b["lengths"].tolist() == [2, 1, 1] and b["y"].tolist() == [1, 0, 0]
    with pytest.raises(InputError, match="one class"):
        d = tmp_path / "one"
        d.mkdir()
        (d / "pos.txt").write_text("fine\n")
        tasks.read_class_files(d)


def test_blas_threads_respects_the_environment(monkeypatch):
    from rnnkit.cli.common import BLAS_VARS, blas_threads
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert blas_threads(1) is False
    for v in BLAS_VARS:
        monkeypatch.delenv(v, raising=False)
    maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
    if "openblas" not in maps.lower():
        pytest.skip("numpy is not linked to OpenBLAS here")
    assert blas_threads(1) is True
