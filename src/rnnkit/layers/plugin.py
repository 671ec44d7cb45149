"""Plug-in cells: a new recurrent cell as two NumPy functions, run by rnnkit's unroll.

A cell with G gate blocks of width H and k extra states (an LSTM would be G = 4, k = 1):

    a_t = x_t W_x + h_{t-1} W_h + b                     (B, G*H): the unroll's matrix products
    h_t, rest_t, cache = gates(a_t, rest_{t-1})          rest: a tuple of k arrays (B, H); h_t (B, H)
    da_t, drest_{t-1} = gates_backward(dh_t, drest_t, cache)
                                                         dh_t: the total gradient on h_t; drest_t on rest_t

The unroll does the rest, as for the built-in cells: one GEMM X W_x for all steps before the loop,
h_{t-1} W_h per step, dW_x, dW_h, dX as GEMMs after it; stacking, bidirectional layers, `lengths`,
initial and final states (truncated BPTT: pass the final state on), batch_first, and the options
of rnnkit.layers.variants (layer_norm: LN of x W_x and h W_h; the regularisers; learn_init).

    cell = rnnkit.Cell("cifg", n_gates=3, n_extra_states=1, gates=f, gates_backward=df)
    cell.gradcheck()                                     # df against f by finite differences
    net = rnnkit.CellRNN(cell, input_size, hidden_size, num_layers=2, bidirectional=True)
    out, (h_n, c_n), cache = net.forward(x, None, lengths)    # state: (h_n, *rest_n) if k > 0

A Cell registers itself under its name, so CellRNN("cifg", ...) and config() / rnnkit.models.build
work once the module defining it is imported. Parameters: as the built-in layers (W_x, W_h, b_x,
b_h per unit, U(±1/sqrt(H))); torch_state_dict() uses PyTorch's names for them, though no PyTorch
layer computes a plug-in cell. Worked example: examples/plugin_cifg.py.
"""
import numpy as np

from .._checks import check_int
from ..errors import InputError, ShapeError
from ..gradcheck import gradcheck as _gradcheck
from .stack import RecurrentNet
from .variant_steps import CoreSteps

_CELLS = {}     # name -> Cell
_BUILT_IN = ("rnn", "lstm", "gru")


class Cell:
    """A plug-in cell: gates(a, rest) -> (h, rest, cache), gates_backward(dh, drest, cache) -> (da, drest)."""

    def __init__(self, name, n_gates, n_extra_states, gates, gates_backward):
        if not isinstance(name, str) or not name or name in _BUILT_IN:
            raise InputError(f"name: expected a new cell name (not {', '.join(_BUILT_IN)}), got {name!r}")
        self.name = name
        self.n_gates = check_int("n_gates", n_gates, 1)
        self.n_extra_states = check_int("n_extra_states", n_extra_states, 0)
        for arg, f in (("gates", gates), ("gates_backward", gates_backward)):
            if not callable(f):
                raise InputError(f"{arg}: expected a function, got {type(f).__name__}")
        self.gates, self.gates_backward = gates, gates_backward
        _CELLS[name] = self          # a later Cell of the same name replaces this one

    @property
    def n_states(self):
        return 1 + self.n_extra_states

    def __repr__(self):
        return f"Cell({self.name!r}, n_gates={self.n_gates}, n_extra_states={self.n_extra_states})"

    def steps(self, fns):
        """The unroll's Steps for this cell (fns unused: the cell is its own math)."""
        return CoreSteps(self)

    # -- the core contract of rnnkit.layers.variant_steps, with the user's outputs checked -------
    def forward(self, P, a, rest):
        """a (B, G*H), rest -> h (B, H), rest, cache."""
        out = self.gates(a, rest)
        if not isinstance(out, tuple) or len(out) != 3:
            raise InputError(f"{self.name}.gates: expected to return (h, rest, cache), "
                             f"got {type(out).__name__}")
        h, new, cache = out
        B, H = a.shape[0], a.shape[1] // self.n_gates
        self._check("gates", "h", h, (B, H), a.dtype)
        new = self._check_tuple("gates", "rest", new, (B, H), a.dtype)
        return h, new, cache

    def backward(self, P, dh, drest, cache):
        """dh (B, H), drest -> da (B, G*H), drest_prev, None."""
        out = self.gates_backward(dh, drest, cache)
        if not isinstance(out, tuple) or len(out) != 2:
            raise InputError(f"{self.name}.gates_backward: expected to return (da, drest), got "
                             f"{type(out).__name__}")
        da, drest_prev = out
        self._check("gates_backward", "da", da, (dh.shape[0], self.n_gates * dh.shape[1]), dh.dtype)
        return da, self._check_tuple("gates_backward", "drest", drest_prev, dh.shape, dh.dtype), None

    def param_grads(self, P, G, caches, extras):
        """A plug-in cell has no parameters of its own."""

    def _check(self, fn, what, v, shape, dtype):
        if not isinstance(v, np.ndarray) or v.shape != tuple(shape) or v.dtype != dtype:
            got = f"{v.shape} {v.dtype}" if isinstance(v, np.ndarray) else type(v).__name__
            raise ShapeError(f"{self.name}.{fn}: expected {what} of shape {tuple(shape)} and dtype "
                             f"{np.dtype(dtype).name}, got {got}")

    def _check_tuple(self, fn, what, vs, shape, dtype):
        if not isinstance(vs, (tuple, list)) or len(vs) != self.n_extra_states:
            raise InputError(f"{self.name}.{fn}: expected {what} as a tuple of {self.n_extra_states} arrays, "
                             f"got {vs!r:.60}")
        for i, v in enumerate(vs):
            self._check(fn, f"{what}[{i}]", v, shape, dtype)
        return tuple(vs)

    def gradcheck(self, hidden_size=3, batch=2, seed=0, **tol):
        """Check gates_backward against central differences of gates (float64) -> name -> max error."""
        rng = np.random.default_rng(seed)
        H, k = check_int("hidden_size", hidden_size, 1), self.n_extra_states
        a = rng.standard_normal((batch, self.n_gates * H))                  # (B, G*H)
        rest = tuple(rng.standard_normal((batch, H)) for _ in range(k))     # k x (B, H)
        h, new, cache = self.forward(None, a, rest)
        dh = rng.standard_normal(h.shape)                                   # (B, H)
        dnew = tuple(rng.standard_normal(r.shape) for r in new)
        da, drest, _ = self.backward(None, dh, dnew, cache)

        def loss():
            h, new, _ = self.gates(a, rest)
            return np.sum(h * dh) + sum(np.sum(r * d) for r, d in zip(new, dnew))

        inputs = {"a": a, **{f"rest[{i}]": r for i, r in enumerate(rest)}}
        analytic = {"a": da, **{f"rest[{i}]": d for i, d in enumerate(drest)}}
        return _gradcheck(loss, inputs, analytic, seed=seed, **{"rtol": 1e-6, **tol})


def get_cell(cell):
    """A Cell, or the registered Cell of that name."""
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str) and cell in _CELLS:
        return _CELLS[cell]
    raise InputError(f"cell: expected an rnnkit.Cell or a registered cell name ({', '.join(sorted(_CELLS))}"
                     f"), got {cell!r}")


class CellRNN(RecurrentNet):
    """Stacked, optionally bidirectional layers of a plug-in Cell; the contract of rnnkit.RNN/LSTM/GRU.

    State: h_n (L*dirs, B, H) alone for a cell without extra states, else the tuple (h_n, *rest_n),
    each (L*dirs, B, H). Keyword options as rnnkit.RNN's (layer_norm, the regularisers, learn_init,
    init="orthogonal").
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 dropout=0.0, dtype=np.float32, seed=0, **options):
        self.cell = self.mode = get_cell(cell)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, batch_first, dropout,
                         dtype=dtype, seed=seed, **options)
        self._config = {"cell": self.cell.name, **self._config}
