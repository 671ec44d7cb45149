"""The command line's --lr-schedule / --warmup / --min-lr and its cell-variant flags."""
import math

import pytest

from rnnkit.checkpoint import read_metrics
from rnnkit.cli.common import load_run

from test_cli import LM, one_line_error, run, sentiment_tsv, text_file  # noqa: F401 (fixtures)


def lrs(rd):
    """[(step, lr)] logged in the run's metrics."""
    return [(r["step"], r["lr"]) for r in read_metrics(rd / "metrics.jsonl") if "lr" in r]


def test_cosine_with_warmup_follows_the_formula(tmp_path, text_file, capsys):
    rd = tmp_path / "cos"
    code, _, _ = run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 40, "--eval-every", 10,
                     "--lr", 0.01, "--lr-schedule", "cosine", "--warmup", 5, "--min-lr", 0.001, "--run", rd)
    assert code == 0
    logged = dict(lrs(rd))
    for step in (10, 20, 30, 40):          # the lr set by the step-th optimizer step, for step + 1
        e = step - 4                       # cosine's own count: warm-up steps 0..4 hand over at 5
        want = 0.001 + (0.01 - 0.001) * (1 + math.cos(math.pi * e / 35)) / 2
        assert logged[step] == pytest.approx(want, rel=1e-9), step
    # the 40th (last) update used the lr set after the 39th step: e = 35 = T_max, the minimum


def test_schedule_resumes_where_it_stopped(tmp_path, text_file, capsys):
    rd = tmp_path / "resume"
    args = ["train", "lm", "--text", text_file, *LM, "--eval-every", 10, "--lr", 0.01,
            "--lr-schedule", "step", "--epochs", 4, "--run", rd]
    straight = tmp_path / "straight"
    assert run(capsys, *args[:-1], straight)[0] == 0
    assert run(capsys, *args, "--steps", 20)[0] == 0
    assert run(capsys, *args, "--resume")[0] == 0
    assert lrs(rd)[-1] == lrs(straight)[-1] and lrs(rd)[-1][1] < 0.01 / 4


def test_plateau_halves_after_evaluations_without_improvement(tmp_path, text_file, capsys):
    rd = tmp_path / "plateau"
    code, _, _ = run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 60, "--eval-every", 5,
                     "--lr", 0.5, "--optimizer", "sgd", "--lr-schedule", "plateau", "--run", rd)
    assert code == 0
    seen = {lr for _, lr in lrs(rd)}
    assert all(any(math.isclose(lr, 0.5 * 0.5 ** k) for k in range(20)) for lr in seen)


@pytest.mark.parametrize("argv,words", [
    (["--lr-schedule", "cosine", "--minutes", 1], ["--lr-schedule cosine", "--steps or --epochs"]),
    (["--lr-schedule", "plateau", "--val-split", 0, "--steps", 3], ["plateau", "validation"]),
    (["--lr-schedule", "plateau", "--warmup", 3, "--steps", 3], ["--warmup", "plateau"]),
    (["--warmup", -1, "--steps", 3], ["--warmup", "-1"]),
    (["--min-lr", 1, "--steps", 3], ["--min-lr", "got 1.0"]),
    (["--zoneout", 1.5, "--steps", 3], ["--zoneout", "[0, 1)", "1.5"]),
    (["--cell", "mingru", "--layer-norm", "--steps", 3], ["--layer-norm", "mingru"]),
])
def test_schedule_and_variant_errors_are_one_line(tmp_path, text_file, capsys, argv, words):
    code, _, err = run(capsys, "train", "lm", "--text", text_file, *LM, *argv, "--run", tmp_path / "r")
    one_line_error(code, err, *words)


@pytest.mark.parametrize("argv,expect", [
    (["--cell", "mingru"], {"cell": "mingru"}),
    (["--cell", "lstm", "--layer-norm", "--recurrent-dropout", 0.2, "--zoneout", 0.1, "--weight-drop", 0.1,
      "--input-dropout", 0.3],
     {"layer_norm": True, "recurrent_dropout": 0.2, "zoneout": 0.1, "weight_drop": 0.1, "input_dropout": 0.3}),
])
def test_variant_flags_reach_the_model(tmp_path, text_file, capsys, argv, expect):
    rd = tmp_path / "v"
    code, out, _ = run(capsys, "train", "lm", "--text", text_file, *LM, "--steps", 4, *argv, "--run", rd)
    assert code == 0
    model, _ = load_run(rd, "lm")
    config = model.config()
    assert {k: config[k] for k in expect} == expect
    assert run(capsys, "sample", rd, "--prompt", "the", "--length", 5)[0] == 0


def test_classify_minimal_cell_needs_one_direction(tmp_path, sentiment_tsv, capsys):
    code, _, err = run(capsys, "train", "classify", "--data", sentiment_tsv, "--cell", "minlstm",
                       "--steps", 2, "--quiet", "--run", tmp_path / "c")
    one_line_error(code, err, "--no-bidirectional")
    code, _, _ = run(capsys, "train", "classify", "--data", sentiment_tsv, "--cell", "minlstm",
                     "--no-bidirectional", "--hidden", 8, "--steps", 2, "--quiet", "--run", tmp_path / "d")
    assert code == 0
