"""vanishing: how far back the gradient of the last step's loss reaches; the adding problem.

(a) Gradient against distance. A one-layer model reads the last state, y = h_{T-1} W_y + b_y, and
each sequence's loss is L = (y - target)^2. Backpropagation through time carries

    dL/dh_{t-1} = dL/dh_t ∂h_t/∂h_{t-1}      (and, for an LSTM, dL/dc_{t-1} beside it)

one step at a time. `Recurrent.backward` returns only the gradient of the initial state, so this
experiment runs the layer one step at a time (T forward calls with T = 1, each keeping its cache)
and then walks back through them: each link is one single-step `Recurrent.backward` with zero
dout and the carried (dh, dc) as dstate, which returns (dh_{t-1}, dc_{t-1}). That is the layer's
exact backward, with nothing added to the library; the whole-sequence backward with dout fed only
at the last step gives the chain's last link (the tests check that they agree).
Reported: g(k) = mean_b ||dL/dh_{T-1-k}|| at distance k = 0..T-1, relative to g(0) so that models
whose losses differ compare, computed in a float64 twin of the model (float32 would underflow to 0
after a few hundred tanh-RNN steps). Theory (Bengio, Simard & Frasconi 1994; Pascanu, Mikolov &
Bengio 2013):
    tanh-RNN   ∂h_t/∂h_{t-1} = diag(1 - h_t^2) W_h^T: g falls geometrically when ||W_h|| < 1
    LSTM       dc_{t-1} = f_t dc_t (+ ...): g stays up while the forget gates f ≈ 1
    GRU        h_t = (1 - z_t) n_t + z_t h_{t-1}: g stays up while the update gates z ≈ 1
The LSTM uses the chrono initialisation (Tallec & Ollivier 2018): b_f = log u, u ~ U[1, T - 1],
b_i = -b_f, so f ≈ 1 at the start, as in the constant error carousel of Hochreiter & Schmidhuber's
LSTM. An extra init-only curve shows an LSTM with PyTorch's default biases (f ≈ 0.5), which forgets
as fast as a tanh-RNN until trained. RNN and GRU keep their default initialisation (so an
untrained GRU, z ≈ 0.5, forgets fast too; training moves its update gates towards 1).

(b) The adding problem (Hochreiter & Schmidhuber 1997; rnnkit.data.make_adding): the sum of the two
marked values of T random numbers. Predicting the mean gives MSE 2/12 ≈ 0.167. Every cell trains
with the same settings (Settings below: Adam, gradient-norm clipping, fixed training set, early stop
once the validation MSE is below `target`); the table gives the best validation MSE.
The gradient curves use the models of the longest T, before and after training.
"""
import dataclasses
import os
import time

import numpy as np

from .. import optim
from ..data import make_adding
from ..losses import mse
from ..models import build
from ..models.many_to_one import ManyToOne
from ..plots import line_plot
from ..train import Batches, fit
from . import prepare, print_table

CELLS = ("rnn", "lstm", "gru")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one run."""
    lengths: tuple = (50, 100, 200)   # adding-problem lengths T
    hidden: int = 32                  # hidden units of every cell
    batch: int = 64                   # sequences per step
    lr: float = 0.01                  # Adam's learning rate
    clip: float = 1.0                 # global gradient-norm clip
    steps: int = 800                  # step budget of each model
    eval_every: int = 50              # steps between validations
    target: float = 0.005             # stop once the validation MSE is below this
    n_train: int = 10_000             # training sequences per T
    n_val: int = 1000                 # validation sequences per T
    n_grad: int = 100                 # sequences the gradient norms are averaged over


FULL = Settings()
QUICK = Settings(lengths=(50,), hidden=16, batch=32, steps=60, eval_every=20, n_train=2000,
                 n_val=200, n_grad=32)


def chrono_init(model, T, seed=0):
    """Set an LSTM model's gate biases to b_f = log U[1, T-1], b_i = -b_f (b_h parts to 0)."""
    for _, _, unit in model.rnn.units():
        H = unit.hidden_size
        b_f = np.log(np.random.default_rng(seed).uniform(1, max(T - 1, 2), H))   # (H,)
        unit.params["b_x"][H:2 * H], unit.params["b_h"][H:2 * H] = b_f, 0     # gate order i, f, g, o
        unit.params["b_x"][:H], unit.params["b_h"][:H] = -b_f, 0


def make_model(cell, hidden, T, seed=0, chrono=True):
    """A ManyToOne regressor of 2-d inputs for the adding problem (chrono-initialised if an LSTM).

    chrono=False for an LSTM gives PyTorch's initialisation (forget_bias=0.0: f ≈ 0.5).
    """
    options = {"forget_bias": 0.0} if cell == "lstm" and not chrono else {}
    model = ManyToOne(input_size=2, num_outputs=1, cell=cell, hidden_size=hidden, task="regress",
                      seed=seed, **options)
    if cell == "lstm" and chrono:
        chrono_init(model, T, seed)
    return model


def hidden_grads(unit, x, dh_last):
    """Forward x (T, B, D) one step at a time; dL/dh_t for t = T-1, ..., 0, -1 (initial state).

    `dh_last(h)` maps the last state h_{T-1} (B, H) to dL/dh_{T-1}. Each link of the chain is one
    single-step Recurrent.backward with zero dout and the carried state gradient as dstate.
    """
    state, caches = None, []
    for t in range(x.shape[0]):
        _, state, cache = unit.forward(x[t:t + 1], state)
        caches.append(cache)
    dstate = (dh_last(state[0]),) + tuple(np.zeros_like(s) for s in state[1:])   # dc_{T-1} = 0
    zero = np.zeros((1,) + state[0].shape, unit.dtype)                            # (1, B, H)
    grads = [dstate[0]]
    for cache in reversed(caches):
        _, dstate = unit.backward(zero, cache, dstate)
        grads.append(dstate[0])
    return grads


def grad_norms(model, x, y):
    """g(k) = mean_b ||dL/dh_{T-1-k}||, k = 0..T-1, of the loss at the last step: (T,) float64."""
    twin = build({**model.config(), "dtype": "float64"})
    twin.load_state_dict(model.state_dict())
    (_, _, unit), = twin.rnn.units()

    def dh_last(h):
        y_hat, c_out = twin.out.forward(h)                            # (B, 1)
        _, dy = mse(y_hat, y.astype(np.float64), reduction="sum")     # each sequence its own loss
        return twin.out.backward(dy, c_out)                           # (B, H)

    grads = hidden_grads(unit, x.astype(np.float64), dh_last)[:-1]
    return np.array([np.linalg.norm(g, axis=1).mean() for g in grads])  # (T,)


def train_adding(model, T, s, seed, progress):
    """Train on the adding problem at length T; return a row dict and the validation curve."""
    x, y = make_adding(s.n_train, T, seed=seed + T)                    # (T, N, 2), (N, 1)
    x_val, y_val = make_adding(s.n_val, T, seed=seed + T + 1)
    data = Batches(lambda idx: {"x": x[:, idx], "y": y[idx]}, s.n_train, s.batch, seed=seed)

    def stop(trainer, info):                     # early stop: the task counts as solved
        return trainer.best_val is not None and trainer.best_val < s.target

    t0 = time.perf_counter()
    res = fit(model, optim.Adam(model, lr=s.lr), data, steps=s.steps, clip_norm=s.clip,
              val_data=[{"x": x_val, "y": y_val}], eval_every=s.eval_every,
              log_every=s.eval_every, seed=seed, progress=progress, on_step=stop)
    curve = [(r["step"], r["val_loss"]) for r in res.history if "val_loss" in r]
    row = {"T": T, "cell": model.rnn.mode, "mse": res.best_val,
           "mean_guess": float(np.mean((y_val - y.mean()) ** 2)), "steps": res.steps,
           "seconds": round(time.perf_counter() - t0, 1), "solved": bool(res.best_val < 0.01)}
    return row, curve


def gradient_row(name, weights, g):
    """A table row: g(0) and g(k)/g(0) at a few distances k."""
    row = {"cell": name, "weights": weights, "g(0)": float(g[0])}
    for k in distances(len(g)):
        row[f"k={k}"] = float(g[k] / g[0])
    return row


def distances(T):
    """The distances the gradient table shows for sequences of length T."""
    return sorted({k for k in (1, 10, 40, 100, T - 1) if k < T})


def _plots(out_dir, curves, adding_curves, T):
    """The gradient-norm PNG (log y) and the adding-problem validation PNG; their paths."""
    k = np.arange(T, dtype=np.float64)                                # (T,)
    series = {label: (k, g / g[0]) for label, g in curves.items()}
    styles = {label: "dotted" if "default" in label else "dashed" if "init" in label else "solid"
              for label in curves}
    png = line_plot(os.path.join(out_dir, "vanishing.png"), series, logy=True, styles=styles,
                    title=f"Gradient of the last step's loss, T = {T}", xlabel="distance T - t",
                    ylabel="||dL/dh_t|| / ||dL/dh_T||")
    lengths = sorted({T for T, _ in adding_curves})
    dashes = ("dotted", "dashed", "solid")                             # one dash per T, the longest solid
    series = {f"{cell} T={T}": tuple(np.array(v, np.float64) for v in zip(*curve))
              for (T, cell), curve in adding_curves.items()}
    dash = {T: dashes[(i + 3 - len(lengths)) % 3] for i, T in enumerate(lengths)}
    styles = {f"{cell} T={T}": dash[T] for T, cell in adding_curves}
    adding_png = line_plot(os.path.join(out_dir, "vanishing_adding.png"), series, logy=True,
                           styles=styles, title="Adding problem: validation MSE (0.167 = mean guess)",
                           xlabel="step", ylabel="MSE")
    return png, adding_png


def adding_runs(s, seed, x_g, y_g, progress):
    """Train every cell at every T; gradient norms of the longest T's models before and after."""
    T_max = max(s.lengths)
    curves, rows, adding_curves = {}, [], {}
    for T in s.lengths:
        for cell in CELLS:
            model = make_model(cell, s.hidden, T, seed)
            if T == T_max:
                curves[f"{cell} init"] = grad_norms(model, x_g, y_g)
            row, adding_curves[T, cell] = train_adding(model, T, s, seed, progress)
            rows.append(row)
            if T == T_max:
                curves[f"{cell} trained"] = grad_norms(model, x_g, y_g)
            if progress:
                print(f"adding T={T} {cell}: MSE {row['mse']:.4f} after {row['steps']} steps"
                      f" ({row['seconds']} s)", flush=True)
    default_lstm = make_model("lstm", s.hidden, T_max, seed, chrono=False)
    curves["lstm default-bias init"] = grad_norms(default_lstm, x_g, y_g)
    return curves, rows, adding_curves


def run(quick=False, out_dir=".", seed=0, progress=True):
    """Gradient norms against distance and the adding problem; prints both tables, writes 2 PNGs."""
    out_dir, seed = prepare(out_dir, seed)
    s = QUICK if quick else FULL
    T_max = max(s.lengths)
    x_g, y_g = make_adding(s.n_grad, T_max, seed=seed + 7)             # (T, n_grad, 2), (n_grad, 1)
    curves, rows, adding_curves = adding_runs(s, seed, x_g, y_g, progress)
    grad_rows = [gradient_row(*label.split(" ", 1), g) for label, g in curves.items()]
    grad_columns = list(grad_rows[0])
    columns = ["T", "cell", "mse", "mean_guess", "steps", "seconds", "solved"]
    print_table(grad_rows, grad_columns, f"Gradient of the last step's loss: g(0) = mean_b"
                f" ||dL/dh_(T-1)||, then g(k) / g(0) at distance k (T = {T_max})")
    print_table(rows, columns, "Adding problem: best validation MSE (mean guess ~0.167)")
    png, adding_png = _plots(out_dir, curves, adding_curves, T_max)
    return {"rows": rows, "columns": columns, "png": png, "gradient_rows": grad_rows,
            "gradient_columns": grad_columns, "gradients": curves, "adding_png": adding_png,
            "settings": dataclasses.asdict(s)}
