"""fit(monitor=...): the best weights and early stopping follow the validation loss or accuracy."""
import json

import numpy as np
import pytest

import rnnkit
from rnnkit import optim
from rnnkit.checkpoint import BEST, load_weights
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.train import fit

BATCHES = [{"x": np.zeros(1)}] * 4


class Scripted(rnnkit.Module):
    """One weight; each evaluation returns the next (mean loss, correct of 10) of a script."""

    def __init__(self, script=(), correct=True):
        super().__init__()
        self.w = self.add_param("w", np.ones(3))
        self.script, self.correct = list(script), correct

    def objective(self, batch, state=None, train=True):
        if not train:
            loss, right = self.script.pop(0)
            return 10 * loss, 10, ({"correct": right} if self.correct else {}), None
        self.grads["w"] += 2 * self.w
        return float(np.sum(self.w ** 2)), 1, {}, None


# (loss, correct): the loss is lowest at the 2nd evaluation, the accuracy highest at the 3rd
SCRIPT = [(3.0, 5), (1.0, 6), (2.0, 9), (2.5, 9), (2.6, 8), (2.7, 7), (2.8, 6), (2.9, 5)]


def run(tmp_path, monitor, **kw):
    model = Scripted(SCRIPT)
    res = fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=100, val_data=[{}], eval_every=2,
              early_stopping=3, run_dir=tmp_path, progress=False, monitor=monitor, **kw)
    return model, res


@pytest.mark.parametrize("monitor, best_step, best_val, steps", [("loss", 4, 1.0, 10), ("accuracy", 6, 0.9, 12)])
def test_the_best_weights_and_early_stopping_follow_the_monitor(tmp_path, monitor, best_step, best_val, steps):
    model, res = run(tmp_path, monitor)
    assert res.best_step == best_step and res.best_val == pytest.approx(best_val)
    assert res.stop_reason == "early_stopping" and res.steps == steps      # 3 evaluations without a new best
    assert np.allclose(model.w, 0.8 ** best_step)                           # the best weights are back
    np.testing.assert_array_equal(load_weights(tmp_path / BEST)["w"], model.w)
    accuracies = [r["val_accuracy"] for r in res.history if "val_accuracy" in r]
    assert accuracies == pytest.approx([c / 10 for _, c in SCRIPT[:steps // 2]])


def test_a_tie_keeps_the_first_best(tmp_path):
    _, res = run(tmp_path, "accuracy")
    assert res.best_step == 6                   # the 4th evaluation's 0.9 does not replace the 3rd's


def test_accuracy_needs_an_objective_that_counts_correct_predictions(tmp_path):
    model = Scripted(SCRIPT, correct=False)
    with pytest.raises(InputError, match="monitor: expected a value the evaluation reports \\(loss\\), "
                                         "got 'accuracy'"):
        fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=4, val_data=[{}], eval_every=2,
            progress=False, monitor="accuracy")


def test_the_command_line_offers_the_monitors_fit_knows():
    from rnnkit.cli import flags
    from rnnkit.train import MONITORS
    assert flags.MONITORS == MONITORS


def test_bad_monitor_and_resuming_with_another_one(tmp_path):
    model = Scripted(SCRIPT)
    with pytest.raises(InputError, match="monitor"):
        fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=1, monitor="val_loss")
    fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=4, val_data=[{}], eval_every=2, run_dir=tmp_path,
        progress=False, monitor="accuracy")
    model = Scripted(SCRIPT[2:])                # the evaluations go on where the first run stopped
    with pytest.raises(InputError, match="monitor: the run being resumed kept its best by accuracy"):
        fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=8, val_data=[{}], eval_every=2,
            run_dir=tmp_path, progress=False, resume=True)
    res = fit(model, optim.SGD(model, lr=0.1), BATCHES, steps=8, val_data=[{}], eval_every=2,
              run_dir=tmp_path, progress=False, resume=True, monitor="accuracy")
    assert res.steps == 8 and res.best_step == 6 and res.best_val == pytest.approx(0.9)


def test_cli_classify_keeps_the_most_accurate_weights(tmp_path, capsys):
    data = tmp_path / "data.tsv"
    rows = [("good film", "pos"), ("bad film", "neg"), ("not bad at all", "pos"), ("not good", "neg")] * 8
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    run_dir = tmp_path / "run"
    assert main(["train", "classify", "--data", str(data), "--steps", "6", "--eval-every", "2", "--hidden", "8",
                 "--embedding", "8", "--monitor", "accuracy", "--run", str(run_dir), "--quiet"]) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    assert json.loads((run_dir / "run.json").read_text())["args"]["monitor"] == "accuracy"


def test_cli_forecast_has_no_accuracy(tmp_path, capsys):
    csv = tmp_path / "series.csv"
    csv.write_text("y\n" + "".join(f"{np.sin(i / 3):.4f}\n" for i in range(80)))
    assert main(["train", "forecast", "--csv", str(csv), "--column", "y", "--horizon", "2", "--steps", "2",
                 "--monitor", "accuracy", "--run", str(tmp_path / "run"), "--quiet"]) != 0
    assert "--monitor accuracy: a forecast has no accuracy" in capsys.readouterr().err
