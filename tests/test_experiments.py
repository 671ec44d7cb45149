"""rnnkit.experiments and `rnnkit experiment`: quick runs give the documented structure and direction."""
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit import GRU, LSTM, RNN, experiments
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.experiments import cells, negation, vanishing

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def assert_table(result, n_rows):
    assert len(result["rows"]) == n_rows
    for row in result["rows"]:
        assert list(row) == result["columns"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Each experiment's quick run, once: name -> (result, out_dir)."""
    out = {}
    for name in experiments.names():
        d = str(tmp_path_factory.mktemp(name))
        out[name] = (experiments.run(name, quick=True, out_dir=d, seed=0, progress=False), d)
    return out


# -- the registry and the table ------------------------------------------------------------------
def test_registry_names_and_lookup():
    assert experiments.names() == ["cells", "negation", "vanishing"]
    assert experiments.get("cells") is cells.run
    with pytest.raises(InputError, match="name: expected one of"):
        experiments.get("exploding")


def test_format_table_aligns_columns():
    text = experiments.format_table([{"a": 1, "b": 0.123456}, {"a": 22, "b": "x"}], ["a", "b"], "T")
    assert text.splitlines() == ["T", "a   b", "--  ------", "1   0.1235", "22  x"]


def test_bad_arguments_raise_rnnkit_errors(tmp_path):
    with pytest.raises(InputError, match="seed"):
        negation.run(quick=True, out_dir=str(tmp_path), seed=-1)
    with pytest.raises(InputError, match="out_dir"):
        negation.run(quick=True, out_dir=3)


# -- vanishing: the gradient chain is the layer's exact backward ---------------------------------
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_hidden_grads_chain_matches_whole_sequence_backward(cls):
    rng = np.random.default_rng(0)
    T, B, D, H = 7, 3, 2, 5
    (_, _, unit), = cls(D, H, dtype=np.float64, seed=1).units()
    x = rng.standard_normal((T, B, D))                                      # (T, B, D)
    dh = rng.standard_normal((B, H))                                        # (B, H)
    grads = vanishing.hidden_grads(unit, x, lambda h: dh)
    assert len(grads) == T + 1 and grads[0] is dh
    dout = np.zeros((T, B, H))                                              # (T, B, H)
    dout[-1] = dh
    _, cache = unit.forward(x)[1:]
    _, dstate = unit.backward(dout, cache)
    np.testing.assert_allclose(grads[-1], dstate[0], rtol=1e-10, atol=1e-12)
    # a middle link: dL/dh_t is the initial-state gradient of the suffix x[t+1:] started from h_t
    t = 3
    state = unit.forward(x[:t + 1])[1]
    _, _, cache = unit.forward(x[t + 1:], state)
    _, dstate = unit.backward(dout[t + 1:], cache)
    np.testing.assert_allclose(grads[T - 1 - t], dstate[0], rtol=1e-10, atol=1e-12)


def test_chrono_init_sets_forget_and_input_biases():
    model = vanishing.make_model("lstm", 8, 50, seed=0)
    (_, _, unit), = model.rnn.units()
    b = unit.params["b_x"] + unit.params["b_h"]
    b_i, b_f = b[:8], b[8:16]
    assert np.all((b_f >= 0) & (b_f <= np.log(49) + 1e-6))
    np.testing.assert_allclose(b_i, -b_f)


def test_vanishing_quick(quick):
    result, out = quick["vanishing"]
    assert_table(result, 3)
    assert [r["cell"] for r in result["rows"]] == ["rnn", "lstm", "gru"]
    for row in result["rows"]:
        assert row["T"] == 50 and np.isfinite(row["mse"]) and abs(row["mean_guess"] - 1 / 6) < 0.03
    assert_png(result["png"])
    assert_png(result["adding_png"])
    assert os.path.dirname(result["png"]) == out
    g = result["gradients"]
    assert set(g) == {"rnn init", "rnn trained", "lstm init", "lstm trained", "gru init",
                      "gru trained", "lstm default-bias init"}
    assert all(v.shape == (50,) and np.all(v > 0) for v in g.values())
    rel = {k: v[40] / v[0] for k, v in g.items()}
    assert rel["rnn init"] < 1e-6 < rel["lstm init"]           # tanh-RNN: gone; chrono LSTM: kept
    assert rel["rnn init"] < 1e-4 * rel["lstm init"]
    assert rel["lstm default-bias init"] < 1e-4 * rel["lstm init"]
    rows = {(r["cell"], r["weights"]): r for r in result["gradient_rows"]}
    assert rows["rnn", "init"]["k=40"] == pytest.approx(rel["rnn init"])


# -- negation and cells ----------------------------------------------------------------------------
def test_negation_quick_rnn_wins_on_negated(quick):
    result, _ = quick["negation"]
    assert_table(result, 2)
    assert result["columns"] == ["model", "all", "negated", "not negated", "with but", "without but"]
    bow, rnn = result["rows"]
    assert bow["model"] == "bag of words"
    assert rnn["negated"] >= 0.95 and rnn["all"] >= 0.95
    assert rnn["negated"] >= bow["negated"] + 0.15
    assert bow["all"] <= 0.8                                   # a linear model of counts cannot fit the rule
    assert_png(result["png"])


def test_cells_quick_parameters_and_losses(quick):
    result, _ = quick["cells"]
    assert_table(result, 7)
    rows = {r["cell"]: r for r in result["rows"]}
    assert list(rows) == ["rnn", "lstm", "gru", "lnlstm", "lngru", "mingru", "minlstm"]
    assert result["gru_lstm_ratio"] == 0.75
    D, H = cells.QUICK.embedding_dim, cells.QUICK.hidden
    for cell, n in (("rnn", H * (D + H + 2)), ("gru", 3 * H * (D + H + 2)), ("lstm", 4 * H * (D + H + 2)),
                    ("lngru", 3 * H * (D + H + 4)), ("lnlstm", 4 * H * (D + H + 4) + 2 * H),
                    ("mingru", 2 * H * (D + 1)), ("minlstm", 3 * H * (D + 1))):
        assert rows[cell]["recurrent_params"] == n
        assert rows[cell]["params"] > rows[cell]["recurrent_params"]
        assert rows[cell]["s_per_100_steps"] > 0
        steps, losses = zip(*result["curves"][cell])
        assert steps[-1] == cells.QUICK.steps
        assert losses[-1] < losses[0] and np.isfinite(rows[cell]["val_loss"])
        assert 0 <= rows[cell]["adding_mse"] < 10
    assert abs(result["adding_mean_guess"] - 1 / 6) < 0.05
    assert_png(result["png"])


def test_cells_reads_a_text_file(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("to be, or not to be: that is the question.\n" * 300, encoding="utf-8")
    vocab, train_ids, val_ids = cells.corpus_ids(cells.QUICK, 0, str(text))
    assert len(vocab) == len(set(text.read_text(encoding="utf-8")))
    assert len(train_ids) + len(val_ids) == cells.QUICK.text_chars
    assert len(val_ids) == cells.QUICK.text_chars - int(0.9 * cells.QUICK.text_chars)
    with pytest.raises(InputError, match="no such file"):
        cells.corpus_ids(cells.QUICK, 0, str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="text: not an option of experiment 'negation'"):
        experiments.run("negation", quick=True, out_dir=str(tmp_path), text=str(text))


# -- the command line ------------------------------------------------------------------------------
def test_cli_runs_quick_experiment(tmp_path, capsys):
    assert main(["experiment", "negation", "--quick", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bag of words" in out and "negated" in out
    assert f"wrote {tmp_path / 'negation.png'}" in out
    assert_png(str(tmp_path / "negation.png"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["experiment", "cells", "--quick", "--seed", "-1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "rnnkit experiment: error: seed: expected an integer in [0, inf], got -1"
    assert main(["experiment", "negation", "--quick", "--text", "x.txt", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("rnnkit experiment: error: text: not an option of experiment")
    with pytest.raises(SystemExit) as e:
        main(["experiment", "exploding"])
    assert e.value.code == 2


def test_entry_point_lists_experiments():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        os.path.join(os.path.dirname(__file__), "..", "src"), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run([sys.executable, "-m", "rnnkit", "experiment", "--help"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0
    for name in ("vanishing", "negation", "cells", "--quick", "--out", "--seed", "--text"):
        assert name in p.stdout
