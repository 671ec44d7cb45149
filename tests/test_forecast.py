"""rnnkit.forecasting (transforms, windows, baselines, CSV errors) and `rnnkit train forecast` / `rnnkit forecast`."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit import forecasting as fc
from rnnkit.cli import main
from rnnkit.cli.common import load_run
from rnnkit.cli.forecast import evaluate_forecast
from rnnkit.errors import InputError, NonFiniteError
from rnnkit.models.many_to_one import ManyToOne


def seasonal_series(n=96, seed=0):
    """A positive monthly-like series: trend times a 12-step season, plus noise (n,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (100 + 2 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 1, n)


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


# -- transforms -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"log": True}, {"difference": True}, {"seasonal": 12},
                                {"log": True, "seasonal": 12}, {"log": True, "seasonal": 12, "difference": True},
                                {"seasonal": 3, "difference": True}])
def test_transform_round_trip_exact(kw):
    x = seasonal_series()[:, None]                                             # (N, 1)
    n = 80
    tr = fc.SeriesTransform(**kw).fit(x[:n])
    u = tr.apply(x)
    assert u.shape == (len(x) - tr.offset, 1)
    back = tr.invert(u[-(len(x) - n):, 0], x[:n, 0])
    np.testing.assert_allclose(back, x[n:, 0], rtol=1e-12, atol=0)


def test_transform_scaling_is_fit_on_the_training_part_only():
    x = seasonal_series()[:, None]
    a = fc.SeriesTransform(difference=True).fit(x[:60])
    y = x.copy()
    y[60:] *= 100                                                              # the test part changes
    b = fc.SeriesTransform(difference=True).fit(y[:60])
    assert a.mu == pytest.approx(b.mu) and a.sigma == pytest.approx(b.sigma)
    d = np.diff(x[:60, 0])
    assert a.mu[0] == pytest.approx(d.mean()) and a.sigma[0] == pytest.approx(d.std())
    u = a.apply(x[:60])
    assert u.mean() == pytest.approx(0, abs=1e-12) and u.std() == pytest.approx(1)


def test_transform_json_round_trip_and_log_needs_positive_values():
    x = seasonal_series()[:, None]
    tr = fc.SeriesTransform(log=True, seasonal=12).fit(x)
    again = fc.SeriesTransform.from_json(tr.to_json())
    np.testing.assert_array_equal(again.apply(x), tr.apply(x))
    with pytest.raises(InputError, match="positive"):
        fc.SeriesTransform(log=True).fit(np.array([[1.0], [0.0], [2.0]]))


# -- windows --------------------------------------------------------------------------------------
def test_windows_shapes_and_values():
    u = np.arange(40.0).reshape(20, 2)                                         # (N, D)
    X, Y = fc.windows(u, 5, 3)
    M = 20 - 5 - 3 + 1
    assert X.shape == (5, M, 2) and Y.shape == (M, 3)
    np.testing.assert_array_equal(X[:, 4], u[4:9])
    np.testing.assert_array_equal(Y[4], u[9:12, 0])
    Xs, Ys = fc.windows(u, 5, 3, per_step=True)
    assert Ys.shape == (5, M, 3)
    np.testing.assert_array_equal(Ys[-1], Y)                                  # last step = direct target
    np.testing.assert_array_equal(Ys[1, 2], u[2 + 2:2 + 5, 0])
    with pytest.raises(InputError, match="no window"):
        fc.windows(u[:7], 5, 3)


def test_training_windows_split_in_time_and_batches():
    u = np.arange(30.0)[:, None]
    (X, Y), (Xv, Yv) = fc.training_windows(u, 4, 2, val_fraction=0.2)
    assert X.shape[1] + Xv.shape[1] == 30 - 4 - 2 + 1
    assert Xv[0, 0, 0] > X[0, -1, 0]                                           # validation comes later
    batch = fc.batch_maker(X, Y)(np.array([0, 3]))
    assert batch["x"].shape == (4, 2, 1) and batch["x"].dtype == np.float32
    assert batch["y"].shape == (2, 2)


def test_too_few_rows_for_window_and_horizon():
    tr = fc.SeriesTransform(seasonal=12)
    with pytest.raises(InputError, match="too few"):
        fc.split_rows(40, 24, 12, 12, tr)
    assert fc.split_rows(100, 24, 12, 12, tr) == 88


# -- baselines and forecasting --------------------------------------------------------------------
def test_baselines():
    season = np.tile([1.0, 5.0, 3.0], 5)
    np.testing.assert_array_equal(fc.seasonal_naive_forecast(season[:9], 6, 3), season[9:15])
    np.testing.assert_array_equal(fc.naive_forecast(season[:9], 2), [3.0, 3.0])
    e = fc.forecast_errors([1.0, 2.0], [2.0, 0.0])
    assert e["rmse"] == pytest.approx(np.sqrt(2.5)) and e["mae"] == pytest.approx(1.5)


def test_forecast_recursive_univariate_and_direct_only_multivariate():
    x = seasonal_series()[:, None]
    tr = fc.SeriesTransform(difference=True).fit(x)
    model = ManyToOne(input_size=1, num_outputs=4, cell="gru", hidden_size=5, task="regress", seed=1)
    pred = fc.forecast(model, tr, x, 8, 10)                                    # 3 recursive rounds
    assert pred.shape == (10,) and np.all(np.isfinite(pred))
    np.testing.assert_allclose(fc.forecast(model, tr, x, 8, 4), pred[:4], rtol=1e-6)
    x2 = np.concatenate([x, x ** 0.5], axis=1)                                 # (N, 2)
    model2 = ManyToOne(input_size=2, num_outputs=4, cell="gru", hidden_size=5, task="regress")
    tr2 = fc.SeriesTransform().fit(x2)
    assert fc.forecast(model2, tr2, x2, 8, 4).shape == (4,)
    with pytest.raises(InputError, match="at most the horizon"):
        fc.forecast(model2, tr2, x2, 8, 5)


# -- CSV reading ----------------------------------------------------------------------------------
def test_read_series_columns_and_errors(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["date", "a", "b"], [("d1", 1, 2), ("d2", 3, 4.5)])
    np.testing.assert_array_equal(fc.read_series(path, ["b", "a"]), [[2, 1], [4.5, 3]])
    with pytest.raises(InputError, match="no column 'c'; the columns are date, a, b"):
        fc.read_series(path, ["c"])
    with pytest.raises(InputError, match="line 3: column 'a': expected a number, got 'x'"):
        fc.read_series(write_csv(tmp_path / "t.csv", ["a"], [(1,), ("x",)]), "a")
    with pytest.raises(NonFiniteError, match="line 2"):
        fc.read_series(write_csv(tmp_path / "n.csv", ["a"], [("nan",), (1,)]), "a")
    with pytest.raises(InputError, match="line 3.*got ''"):
        fc.read_series(write_csv(tmp_path / "e.csv", ["a", "b"], [(1, 2), ("", 3)]), "a")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty file"):
        fc.read_series(str(tmp_path / "empty.csv"), "a")


# -- command line ---------------------------------------------------------------------------------
@pytest.fixture
def series_csv(tmp_path):
    x = seasonal_series(96)
    rows = [(f"m{i}", round(v, 3), round(v * 0.5 + i, 3)) for i, v in enumerate(x)]
    return write_csv(tmp_path / "series.csv", ["month", "sales", "price"], rows)


def train_args(csv, run, *extra):
    return ["train", "forecast", "--csv", csv, "--column", "sales", "--horizon", "6", "--window", "12",
            "--hidden", "8", "--steps", "5", "--quiet", "--run", str(run), *extra]


def test_cli_train_and_forecast(series_csv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(series_csv, run, "--log", "--seasonal-difference", "12", "--test", "12")) == 0
    out = capsys.readouterr().out
    assert "held-out rows 84..95" in out and "seasonal naive (m=12)" in out and "RMSE" in out
    for name in ("model.rnnkit", "forecast.png", "loss.png", "metrics.jsonl"):
        assert (run / name).exists(), name
    assert main(["forecast", str(run), "--steps", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[0] == "84" and len(out[1].split()) == 3             # row, forecast, truth
    assert any(line.startswith("RMSE") for line in out)
    png = tmp_path / "future.png"
    assert main(["forecast", str(run), "--future", "--csv", series_csv, "--png", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:7]] == [str(r) for r in range(96, 102)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_forecast_scores_a_csv(series_csv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(series_csv, run, "--seasonal-difference", "12")) == 0
    printed = capsys.readouterr().out
    model, meta = load_run(run, "forecast")
    scores = evaluate_forecast(argparse.Namespace(data=series_csv), model, meta)
    assert scores["count"] == 6 and f"RMSE {scores['rmse']:10.4f}" in printed
    assert scores["seasonal_naive_rmse"] > 0 and scores["mae"] <= scores["rmse"]


def test_cli_resume_continues_the_run(series_csv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(series_csv, run, "--difference")) == 0
    args = train_args(series_csv, run, "--resume")
    args[args.index("--steps") + 1] = "9"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained 9 steps" in out and out.count("held-out rows 90..95") == 2


def test_cli_multivariate_many_to_many(series_csv, tmp_path, capsys):
    run = tmp_path / "mv"
    assert main(train_args(series_csv, run, "--columns", "price", "--arch", "many-to-many",
                           "--difference", "--val-split", "0.2", "--eval-every", "2")) == 0
    out = capsys.readouterr().out
    assert "from 2 column(s)" in out and "best validation loss" in out
    assert main(["forecast", str(run), "--steps", "7"]) == 2
    assert "at most the horizon 6" in capsys.readouterr().err


@pytest.mark.parametrize("extra, csv_rows, message", [
    (["--column", "nope"], None, "no column 'nope'; the columns are month, sales, price"),
    ([], [("m1", "12"), ("m2", "oops")], "line 3: column 'sales': expected a number, got 'oops'"),
    ([], [("m1", "12"), ("m2", "NaN")], "line 3: column 'sales': NaN"),
    ([], [(f"m{i}", i + 1) for i in range(20)], "20 rows is too few for --window 12 + --horizon 6"),
])
def test_cli_errors_are_one_line(series_csv, tmp_path, capsys, extra, csv_rows, message):
    csv = series_csv if csv_rows is None else write_csv(tmp_path / "bad.csv", ["month", "sales"], csv_rows)
    assert main(train_args(csv, tmp_path / "r", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_forecast_needs_a_forecast_run(tmp_path, capsys):
    assert main(["forecast", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_python_m_rnnkit_forecast(series_csv, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(series_csv, run)) == 0
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    p = subprocess.run([sys.executable, "-m", "rnnkit", "forecast", str(run), "--steps", "2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "RMSE" in p.stdout and "forecast plot" in p.stdout
