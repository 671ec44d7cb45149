"""Forecasting a series: read CSV columns, transform, cut windows, forecast, undo the transforms.

Transforms of each column x_t (t = 0..N-1), in this order, undone in reverse for the forecast:
    log                   z_t = log x_t                      (needs every x_t > 0)
    seasonal difference   s_t = z_t - z_{t-m}                (lag m, e.g. 12 for monthly data)
    difference            d_t = s_t - s_{t-1}
    scaling               u_t = (d_t - mu) / sigma           mu, sigma per column, fit on the
                                                             training part only
A series of N values gives N - m - 1 transformed values (N - offset; each switched-off lag
counts 0); u keeps the time index of the value it ends at.

Windows (direct multi-step): input u[t-W : t] (W, D) of the D input columns (the target first),
target the next K values of the target column u[t : t+K] (K,). ManyToOne regresses the K values
from the last state; ManyToMany regresses, at every step i of the window, the K values after it.
Inverse: d = u sigma + mu; s_t = s_{t-1} + d_t; z_t = s_t + z_{t-m}; x_t = exp z_t, where the lags
that reach before the forecast read the known history.

Forecast: from the last W transformed values predict K; for more steps (univariate only) the
predictions are fed back as inputs (recursive). Scored on the held-out last `test` points by
RMSE and MAE, beside two baselines:
    naive            x_hat_{n+h} = x_{n-1}                         (n = values before the split)
    seasonal naive   x_hat_{n+h} = x_{n+h-m ceil((h+1)/m)}          (h = 0, 1, ...: last season's)

CSV: a header row naming the columns, one row per time step, in time order; a column is read as
floats; an empty cell, "nan", text or an Inf is an error naming its line.
"""
import csv
import math
import os

import numpy as np

from ._checks import check_array, check_int
from .errors import InputError, NonFiniteError


# -- reading --------------------------------------------------------------------------------------
def read_series(path, columns):
    """The named columns of a CSV file -> values (N, D) float64, in the order given."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    with open(os.fspath(path), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or not any(c.strip() for c in rows[0]):
        raise InputError(f"{path}: empty file (expected a header row naming the columns)")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r}; the columns are {', '.join(header)}")
    idx = [header.index(c) for c in columns]
    data = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    if not data:
        raise InputError(f"{path}: no data rows after the header")
    x = np.empty((len(data), len(idx)))                                      # (N, D)
    for n, (line, r) in enumerate(data):
        for d, j in enumerate(idx):
            x[n, d] = _number(path, line, columns[d], r[j] if j < len(r) else "")
    return x


def _number(path, line, column, cell):
    """One CSV cell as a finite float, or an error naming its line."""
    try:
        v = float(cell)
    except ValueError:
        raise InputError(f"{path}: line {line}: column {column!r}: expected a number, "
                         f"got {cell.strip()!r}") from None
    if not math.isfinite(v):
        raise NonFiniteError(f"{path}: line {line}: column {column!r}: {cell.strip()} (missing values "
                             f"are not supported; fill or drop that row)")
    return v


# -- transforms -----------------------------------------------------------------------------------
class SeriesTransform:
    """log, seasonal difference (lag m), difference and per-column scaling, with their inverse."""

    def __init__(self, log=False, difference=False, seasonal=0, mu=None, sigma=None):
        self.log, self.difference = bool(log), bool(difference)
        self.seasonal = check_int("seasonal", seasonal, low=0)
        self.mu = None if mu is None else np.asarray(mu, np.float64)
        self.sigma = None if sigma is None else np.asarray(sigma, np.float64)

    @property
    def offset(self):
        """How many leading values the differences use up."""
        return self.seasonal + int(self.difference)

    def unscaled(self, x):
        """x (N, D) -> d (N - offset, D): log and differences, before scaling."""
        x = check_array("x", x, ndim=2).astype(np.float64)
        if self.log:
            if np.any(x <= 0):
                col = int(np.argwhere(x <= 0)[0, 1])
                raise InputError(f"log: expected positive values, got {x[:, col].min()} in column {col}"
                                 f" (drop --log, or shift the series)")
            x = np.log(x)
        if self.seasonal:
            x = x[self.seasonal:] - x[:-self.seasonal]                       # (N - m, D)
        if self.difference:
            x = np.diff(x, axis=0)                                           # (N - m - 1, D)
        return x

    def fit(self, x):
        """Set mu and sigma from the transformed training part x (N, D); return self."""
        d = self.unscaled(x)
        if len(d) < 2:
            raise InputError(f"x: expected at least {self.offset + 2} values to fit the scaling, "
                             f"got {len(x)}")
        self.mu, self.sigma = d.mean(axis=0), d.std(axis=0)                  # (D,)
        self.sigma = np.where(self.sigma > 0, self.sigma, 1.0)
        return self

    def apply(self, x):
        """x (N, D) -> u (N - offset, D), scaled by the fitted mu and sigma."""
        if self.mu is None:
            raise InputError("transform: not fitted (call fit on the training part first)")
        return (self.unscaled(x) - self.mu) / self.sigma

    def invert(self, u, history, column=0):
        """Scaled future values u (k,) of one column -> x (k,), given that column's history (n,)."""
        u = np.asarray(u, np.float64)
        z = np.log(history) if self.log else np.asarray(history, np.float64)  # (n,)
        if len(z) < self.offset + 1:
            raise InputError(f"history: expected at least {self.offset + 1} values, got {len(z)}")
        d = u * self.sigma[column] + self.mu[column]                        # (k,)
        if self.difference:
            m = self.seasonal
            s_prev = z[-1] - z[-1 - m] if m else z[-1]
            d = s_prev + np.cumsum(d)                                       # s_t = s_{t-1} + d_t
        if self.seasonal:
            z = np.concatenate([z, np.empty(len(d))])
            n, m = len(z) - len(d), self.seasonal
            for i in range(len(d)):
                z[n + i] = d[i] + z[n + i - m]                              # z_t = s_t + z_{t-m}
            d = z[n:]
        return np.exp(d) if self.log else d

    def to_json(self):
        """A JSON-able dict that from_json turns back into this transform."""
        return {"log": self.log, "difference": self.difference, "seasonal": self.seasonal,
                "mu": None if self.mu is None else self.mu.tolist(),
                "sigma": None if self.sigma is None else self.sigma.tolist()}

    @classmethod
    def from_json(cls, d):
        """The transform of a to_json() dict."""
        return cls(d["log"], d["difference"], d["seasonal"], d["mu"], d["sigma"])


# -- windows --------------------------------------------------------------------------------------
def windows(u, window, horizon, per_step=False):
    """u (N, D) -> inputs X (W, M, D) and targets Y (M, K) of column 0, or (W, M, K) per step."""
    u = check_array("u", u, ndim=2)
    W, K = check_int("window", window, low=1), check_int("horizon", horizon, low=1)
    M = len(u) - W - K + 1
    if M < 1:
        raise InputError(f"window, horizon: {len(u)} transformed values hold no window of "
                         f"{W} inputs + {K} targets")
    idx = np.arange(M)[None, :] + np.arange(W)[:, None]                       # (W, M)
    X = u[idx]                                                               # (W, M, D)
    if per_step:
        Y = u[idx[:, :, None] + 1 + np.arange(K), 0]                          # (W, M, K)
    else:
        Y = u[W + np.arange(M)[:, None] + np.arange(K), 0]                    # (M, K)
    return X, Y


def min_rows(window, horizon, test, transform):
    """The fewest rows a series needs: the differences' offset, a window, a target, the test part."""
    return transform.offset + window + horizon + test


def split_rows(n_rows, window, horizon, test, transform):
    """Check the series is long enough; return n, the number of training rows (before the split)."""
    need = min_rows(window, horizon, test, transform)
    if n_rows < need:
        raise InputError(f"csv: {n_rows} rows is too few for --window {window} + --horizon {horizon}"
                         f" + --test {test} (+ {transform.offset} for differencing): need {need}")
    return n_rows - test


def training_windows(u, window, horizon, per_step=False, val_fraction=0.0):
    """Windows of the training part u, split in time: (X, Y) train and (X, Y) validation (or None)."""
    X, Y = windows(u, window, horizon, per_step)
    M = X.shape[1]
    n_val = int(round(val_fraction * M))
    if n_val == 0:
        return (X, Y), None
    if M - n_val < 1:
        raise InputError(f"val_split: {M} windows leave none to train on after a validation part of"
                         f" {n_val}; use a smaller --val-split or --window")
    return ((X[:, :-n_val], Y[..., :-n_val, :]), (X[:, -n_val:], Y[..., -n_val:, :]))


def prepare(x, window, horizon, test, transform, per_step=False, val_fraction=0.0):
    """Split x (N, D) before its last `test` rows, fit the transform there, cut the windows.

    Returns n (training rows), (X, Y) training windows and (X, Y) validation windows or None.
    """
    n = split_rows(len(x), window, horizon, test, transform)
    u = transform.fit(x[:n]).apply(x[:n])                                    # (n - offset, D)
    train, val = training_windows(u, window, horizon, per_step, val_fraction)
    return n, train, val


def batch_maker(X, Y, dtype=np.float32):
    """make_batch(indices (B,)) -> {"x": (W, B, D), "y": (B, K) or (W, B, K)} for rnnkit.train.Batches."""
    X, Y = X.astype(dtype), Y.astype(dtype)

    def make_batch(idx):
        return {"x": X[:, idx], "y": Y[..., idx, :]}
    return make_batch


# -- forecasting ----------------------------------------------------------------------------------
def predict_next(model, u_window):
    """u_window (W, D) -> the model's K scaled next values of column 0 (K,)."""
    x = np.asarray(u_window, model.dtype)[:, None, :]                        # (W, 1, D)
    y = model.infer(x)[0]                                                    # (1, K) or (W, 1, K)
    return np.asarray(y[-1] if y.ndim == 3 else y, np.float64).reshape(-1)   # (K,)


def forecast(model, transform, history, window, steps):
    """history (n, D) of the input columns -> the next `steps` values of column 0 (steps,)."""
    history = check_array("history", history, ndim=2)
    steps = check_int("steps", steps, low=1)
    u = transform.apply(history)                                             # (n - offset, D)
    if len(u) < window:
        raise InputError(f"history: {len(history)} rows give {len(u)} transformed values, fewer than"
                         f" the window of {window}")
    preds = []
    while sum(map(len, preds)) < steps:
        p = predict_next(model, u[-window:])                                 # (K,)
        preds.append(p)
        if sum(map(len, preds)) < steps:
            if u.shape[1] != 1:
                raise InputError(f"steps: with {u.shape[1]} input columns a forecast reaches at most "
                                 f"the horizon {len(p)} steps (the other columns' future is unknown), "
                                 f"got {steps}")
            u = np.concatenate([u, p[:, None]])                              # feed back
    u_future = np.concatenate(preds)[:steps]                                 # (steps,)
    return transform.invert(u_future, history[:, 0])


def naive_forecast(history, steps):
    """The last value, repeated: (steps,)."""
    return np.full(steps, float(history[-1]))


def seasonal_naive_forecast(history, steps, m):
    """Last season's values, repeated: x_hat_{n+h} = x_{n+h-m ceil((h+1)/m)} (steps,)."""
    history = np.asarray(history, np.float64)
    if len(history) < m:
        raise InputError(f"season: expected at least one season of {m} values, got {len(history)}")
    h = np.arange(steps)
    return history[len(history) + h - m * ((h // m) + 1)]


def forecast_errors(truth, pred):
    """{"rmse", "mae"} of pred against truth."""
    e = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return {"rmse": float(np.sqrt(np.mean(e * e))), "mae": float(np.mean(np.abs(e)))}


def score(model, transform, x, n, window, season=None):
    """Forecast rows x[n:] from x[:n] -> forecast (k,), {"model" | "naive" | "seasonal_naive": errors}."""
    truth, hist, k = x[n:, 0], x[:n], len(x) - n
    pred = forecast(model, transform, hist, window, k)
    table = {"model": forecast_errors(truth, pred),
             "naive": forecast_errors(truth, naive_forecast(hist[:, 0], k))}
    if season:
        table["seasonal_naive"] = forecast_errors(truth, seasonal_naive_forecast(hist[:, 0], k, season))
    return pred, table


def plot_forecast(path, x, n, pred, start=None, title=""):
    """PNG of the history, the held-out truth (rows n..) and the forecast from row n, split marked."""
    from .plots import line_plot
    t = np.arange(len(x), dtype=np.float64)                                   # (N,)
    tf = n + np.arange(len(pred), dtype=np.float64)                           # (k,)
    lo = 0 if start is None else max(0, n - start)
    series = {"history": (t[lo:n], x[lo:n])}
    if len(x) > n:
        series["held-out truth"] = (t[n - 1:], x[n - 1:])
    series["forecast"] = (np.concatenate([[n - 1], tf]), np.concatenate([[x[n - 1]], pred]))
    return line_plot(path, series, title=title, xlabel="row", ylabel="value", vlines=[n - 0.5],
                     styles={"forecast": "dashed"})
