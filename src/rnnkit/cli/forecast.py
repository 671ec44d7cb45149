"""`rnnkit train forecast` and `rnnkit forecast RUN`: forecast a CSV column with a recurrent model.

    rnnkit train forecast --csv airline.csv --column Passengers --horizon 24 --window 24 \\
        --log --seasonal-difference 12 --test 24
    rnnkit forecast runs/forecast-... [--csv FILE] [--steps K] [--future] [--png out.png]

Training holds out the last --test rows (default: the horizon), fits the scaling on the rows
before them, trains on sliding windows (rnnkit.forecasting) and reports RMSE / MAE of the forecast
of the held-out rows beside the naive and seasonal-naive baselines, with forecast.png in the run.
"""
import os

import numpy as np

from .. import forecasting as fc
from ..models.many_to_many import ManyToMany
from ..models.many_to_one import ManyToOne
from ..train import Batches
from .common import check_file, load_run, resume_state, train_model, train_subparsers
from .flags import add_training_args, cell_options, fail

TASK = "forecast"
ARCHS = ("many-to-one", "many-to-many")
STORED_ROWS = 20_000      # rows of the series kept in the model file (for `rnnkit forecast RUN`)


def _columns(args):
    """[target, *other input columns] from --column and --columns."""
    extra = [c.strip() for c in (args.columns or "").split(",") if c.strip()]
    return [args.column] + [c for c in extra if c != args.column]


def _check_args(args):
    """One clear line for sizes out of range."""
    for name in ("horizon", "window"):
        if getattr(args, name) < 1:
            fail(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
    if args.test is not None and args.test < 1:
        fail(f"--test: expected an integer >= 1, got {args.test}")
    if args.season is not None and args.season < 1:
        fail(f"--season: expected an integer >= 1, got {args.season}")
    if args.seasonal_difference < 0:
        fail(f"--seasonal-difference: expected a lag >= 1 (0: off), got {args.seasonal_difference}")
    if args.arch == "many-to-many" and args.bidirectional:
        fail("--bidirectional: a many-to-many forecaster would read the future it predicts; "
             "use --arch many-to-one")


def _model(args, D, config):
    """A ManyToOne (K outputs from the last state) or ManyToMany (K outputs per step) regressor."""
    if config is not None:
        from ..models import build
        return build(config)
    common = dict(input_size=D, cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                  bidirectional=args.bidirectional, dropout=args.dropout, task="regress",
                  dtype=args.dtype, seed=args.seed, **cell_options(args))
    if args.arch == "many-to-one":
        return ManyToOne(num_outputs=args.horizon, **common)
    return ManyToMany(output_size=args.horizon, **common)


def train(args):
    """Train a forecaster, then score it on the held-out rows."""
    resumed = resume_state(args, TASK)
    _check_args(args)
    meta = resumed[1] if resumed else None
    columns = meta["columns"] if meta else _columns(args)
    x = fc.read_series(check_file("--csv", args.csv), columns)                # (N, D)
    if meta is None:
        transform = fc.SeriesTransform(args.log, args.difference, args.seasonal_difference)
        meta = dict(columns=columns, window=args.window, horizon=args.horizon,
                    test=args.test or args.horizon, arch=args.arch,
                    season=args.season if args.season is not None else args.seasonal_difference)
    else:
        transform = fc.SeriesTransform.from_json(meta["transform"])
    W, K, test = meta["window"], meta["horizon"], meta["test"]
    n, (X, Y), val = fc.prepare(x, W, K, test, transform, meta["arch"] == "many-to-many", args.val_split)
    meta.update(transform=transform.to_json(), csv=os.path.abspath(args.csv),
                series=x[-STORED_ROWS:].tolist(), series_start=max(0, len(x) - STORED_ROWS))
    model = _model(args, len(columns), resumed[0] if resumed else None)
    train_data = Batches(fc.batch_maker(X, Y, model.dtype), X.shape[1], args.batch, seed=args.seed)
    val_data = None if val is None else Batches(fc.batch_maker(*val, model.dtype), val[0].shape[1],
                                                args.batch, shuffle=False)
    print(f"rnnkit train forecast: {columns[0]!r} from {len(columns)} column(s), {len(x)} rows: "
          f"{X.shape[1]} training windows of {W} -> {K}, last {test} rows held out")
    result = train_model(args, model, train_data, val_data, TASK, meta)
    if not result.interrupted:
        _score(model, transform, x, n, meta, os.path.join(args.run, "forecast.png"))
    return 0


def _score(model, transform, x, n, meta, png):
    """Print RMSE / MAE of the model and the baselines on rows n.., write the forecast PNG."""
    pred, table = fc.score(model, transform, x, n, meta["window"], meta["season"] or None)
    print(f"held-out rows {n}..{len(x) - 1} ({len(x) - n} values of {meta['columns'][0]!r}):")
    names = {"model": "model", "naive": "naive (last value)",
             "seasonal_naive": f"seasonal naive (m={meta['season']})"}
    for key, e in table.items():
        print(f"  {names[key]:<24} RMSE {e['rmse']:10.4f}   MAE {e['mae']:10.4f}")
    _plot(png, x[:, 0], n, pred, meta)
    return pred


def _plot(png, x, n, pred, meta):
    """Write the forecast PNG (a missing plots module or a bad value never fails the command)."""
    try:
        fc.plot_forecast(png, x, n, pred, start=max(10 * len(pred), 5 * meta["window"], 200),
                         title=f"forecast of {meta['columns'][0]}")
    except (ImportError, ValueError) as e:
        print(f"(no forecast plot: {e})")
        return
    print(f"forecast plot: {png}")


def forecast(args):
    """Print the forecast of a trained run (of the held-out rows, or --future) and write its PNG."""
    model, meta = load_run(args.run_dir, TASK, command="forecast")
    transform = fc.SeriesTransform.from_json(meta["transform"])
    if args.csv is not None:
        x, start = fc.read_series(check_file("--csv", args.csv), meta["columns"]), 0
    else:
        x, start = np.asarray(meta["series"], np.float64), meta["series_start"]
    if args.steps is not None and args.steps < 1:
        fail(f"--steps: expected an integer >= 1, got {args.steps}")
    n = len(x) if args.future else len(x) - meta["test"]
    steps = args.steps or (meta["horizon"] if args.future else meta["test"])
    if n < transform.offset + meta["window"]:
        fail(f"{args.csv or 'the stored series'}: {n} rows before the forecast, need at least "
             f"{transform.offset + meta['window']} (window + differencing)")
    pred = fc.forecast(model, transform, x[:n], meta["window"], steps)
    truth = x[n:n + steps, 0]
    print(f"{'row':>7}  {'forecast':>12}  {'truth':>12}")
    for h, p in enumerate(pred):
        t = f"{truth[h]:12.4f}" if h < len(truth) else f"{'':12}"
        print(f"{start + n + h:7d}  {p:12.4f}  {t}")
    if len(truth):
        e = fc.forecast_errors(truth, pred[:len(truth)])
        print(f"RMSE {e['rmse']:.4f}  MAE {e['mae']:.4f} over {len(truth)} held-out values")
    _plot(args.png or os.path.join(args.run_dir, "forecast.png"), x[:, 0], n, pred, meta)
    return 0


def evaluate_forecast(args, model, meta):
    """RMSE / MAE of a forecast run on the last held-out rows of --data (a CSV), beside the baselines."""
    x = fc.read_series(check_file("--data", args.data), meta["columns"])
    transform = fc.SeriesTransform.from_json(meta["transform"])
    n = fc.split_rows(len(x), meta["window"], meta["horizon"], meta["test"], transform)
    _, table = fc.score(model, transform, x, n, meta["window"], meta["season"] or None)
    scores = {"rmse": table["model"]["rmse"], "mae": table["model"]["mae"],
              "naive_rmse": table["naive"]["rmse"]}
    if "seasonal_naive" in table:
        scores["seasonal_naive_rmse"] = table["seasonal_naive"]["rmse"]
    return {**scores, "count": len(x) - n}


def register(sub):
    """Add `rnnkit train forecast` and `rnnkit forecast`."""
    p = train_subparsers(sub).add_parser(
        "forecast", help="forecast a CSV column (univariate or multivariate inputs)",
        description="Train a recurrent forecaster on sliding windows of a CSV series; the last --test "
                    "rows are held out and scored against naive baselines.")
    g = p.add_argument_group("data")
    g.add_argument("--csv", required=True, metavar="FILE", help="CSV file with a header row")
    g.add_argument("--column", required=True, metavar="NAME", help="the column to forecast")
    g.add_argument("--columns", metavar="A,B", help="more input columns, comma-separated (multivariate)")
    g.add_argument("--horizon", type=int, default=1, metavar="K", help="steps predicted at once")
    g.add_argument("--window", type=int, default=24, metavar="W", help="past steps the model reads")
    g.add_argument("--test", type=int, default=None, metavar="N", help="held-out last rows (default: horizon)")
    g.add_argument("--log", action="store_true", help="model the log of the series (positive values)")
    g.add_argument("--difference", action="store_true", help="model the change from step to step")
    g.add_argument("--seasonal-difference", type=int, default=0, metavar="M",
                   help="model the change from M steps before (e.g. 12 for monthly data; 0: off)")
    g.add_argument("--season", type=int, default=None, metavar="M",
                   help="season length of the seasonal-naive baseline (default: --seasonal-difference)")
    g.add_argument("--arch", choices=ARCHS, default="many-to-one",
                   help="K outputs from the last state, or K outputs at every step")
    add_training_args(p, cell="gru", hidden=32, batch=16, lr=3e-3, val_split=0.0, eval_every=50, epochs=200)
    p.set_defaults(func=train)

    q = sub.add_parser("forecast", help="forecast with a trained run (prints values, writes a PNG)",
                       description="Forecast the held-out rows of a run's series (or of --csv), or "
                                   "--future steps past its end; writes a PNG with history and truth.")
    q.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnkit train forecast`")
    q.add_argument("--csv", metavar="FILE", help="the series to forecast (default: the one trained on)")
    q.add_argument("--steps", type=int, default=None, metavar="K",
                   help="steps to forecast (default: the held-out rows, or the horizon with --future)")
    q.add_argument("--future", action="store_true", help="forecast past the last row (no truth)")
    q.add_argument("--png", metavar="FILE", help="where to write the plot (default: RUN/forecast.png)")
    q.set_defaults(func=forecast)
