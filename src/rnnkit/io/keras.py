"""Keras 3 SimpleRNN / LSTM / GRU weights <-> rnnkit RNN / LSTM / GRU (no Keras needed).

    from_keras(kind, weights, reset_after=True, ...) -> an rnnkit layer holding those weights
    to_keras(layer)                                  -> the list Keras's layer.set_weights() takes

`weights` is what Keras's layer.get_weights() returns for one layer of H units on D inputs:
    kernel (D, G*H), recurrent_kernel (H, G*H), bias (G*H,)    (no bias with use_bias=False)
    GRU(reset_after=True): bias (2, G*H), rows: input bias, recurrent bias
    Bidirectional(layer): the forward layer's arrays, then the backward layer's
    a stack of Keras layers: a list of such lists, one per layer (layer k > 0 reads H * dirs inputs)
Keras multiplies x @ kernel as rnnkit does: W_x = kernel, W_h = recurrent_kernel, no transpose.

Equations (Keras's defaults: activation tanh, recurrent_activation sigmoid) and the rnnkit layer:
    SimpleRNN  h = act(x W + h U + b)                          RNN(nonlinearity=activation)
    LSTM       blocks i, f, c, o = rnnkit's i, f, g, o         LSTM
               c = f c + i tanh(a_c),  h = o tanh(c)
    GRU        blocks z, r, h -> rnnkit's r, z, n (the first two swap)
               h_t = z h_{t-1} + (1 - z) hh                    (as rnnkit and PyTorch)
      reset_after=True   hh = tanh(x W_h + b_ih + r ⊙ (h U_h + b_hh))       GRU(reset_after=True)
                         b_x = bias[0], b_h = bias[1]
      reset_after=False  hh = tanh(x W_h + b_h + (r ⊙ h) U_h)  (Cho et al.)  GRU(reset_after=False)
One Keras bias (SimpleRNN, LSTM, GRU with reset_after=False) goes into b_x, and b_h = 0; to_keras
returns b_x + b_h, which these rnnkit cells add before any gate, so nothing is lost.
Keras's Bidirectional runs its backward layer over the reversed sequence and reverses its outputs
back, then concatenates [forward, backward]: rnnkit's bidirectional=True (no lengths/masks).
"""
import numpy as np

from .._checks import check_array, check_choice, check_dtype
from ..errors import DTypeError, InputError
from ..layers.stack import GRU, LSTM, RNN
from ..layers.variants import nonstandard

_MODES = {"simplernn": "rnn", "lstm": "lstm", "gru": "gru"}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_ORDER = {"rnn": (0,), "lstm": (0, 1, 2, 3), "gru": (1, 0, 2)}   # its own inverse
_NAMES = ("kernel", "recurrent_kernel", "bias")
_PARAMS = ("W_x", "W_h", "b_x", "b_h")


def _reorder(a, mode, H):
    """Keras's gate blocks <-> rnnkit's along the last axis (the same swap both ways)."""
    return np.concatenate([a[..., j * H:(j + 1) * H] for j in _ORDER[mode]], axis=-1)


def _mode(kind):
    """'SimpleRNN', 'LSTM' or 'GRU' (any case) -> 'rnn', 'lstm' or 'gru'."""
    key = kind.lower().replace("_", "") if isinstance(kind, str) else None
    if key not in _MODES:
        raise InputError(f"kind: expected 'SimpleRNN', 'LSTM' or 'GRU', got {kind!r}")
    return _MODES[key]


def _split(weights, dirs):
    """weights -> per layer, per direction, the list [kernel, recurrent_kernel(, bias)]."""
    if not isinstance(weights, (list, tuple)) or not weights:
        raise InputError("weights: expected layer.get_weights()'s list of arrays, or a list of such"
                         f" lists for stacked layers, got {type(weights).__name__} {weights!r:.60}")
    stacked = isinstance(weights[0], (list, tuple))
    out = []
    for k, arrays in enumerate(weights if stacked else [weights]):
        name = f"weights[{k}]" if stacked else "weights"
        if not isinstance(arrays, (list, tuple)) or len(arrays) not in (2 * dirs, 3 * dirs):
            n = len(arrays) if isinstance(arrays, (list, tuple)) else type(arrays).__name__
            raise InputError(f"{name}: expected {3 * dirs} arrays (kernel, recurrent_kernel, bias"
                             f"{' per direction' if dirs == 2 else ''}) or {2 * dirs} without bias,"
                             f" got {n}")
        per = len(arrays) // dirs
        named = [(f"{name}[{i}]", a) for i, a in enumerate(arrays)]
        out.append([named[d * per:(d + 1) * per] for d in range(dirs)])
    return out


def _array(name, a, shape, dtype):
    """A float array of `shape`, as `dtype`."""
    a = check_array(name, a, shape=shape)
    if a.dtype.kind != "f":
        raise DTypeError(f"{name}: expected a float array, got dtype {a.dtype.name}")
    return a.astype(dtype)


def _load(unit, arrays, mode, reset_after, dtype):
    """Copy one direction's Keras arrays into a Recurrent unit's W_x, W_h, b_x, b_h."""
    D, H = unit.input_size, unit.hidden_size
    GH = _GATES[mode] * H
    two = mode == "gru" and reset_after
    shapes = [(D, GH), (H, GH), (2, GH) if two else (GH,)]
    got = [_array(f"{name} ({_NAMES[i]})", a, shapes[i], dtype) for i, (name, a) in enumerate(arrays)]
    kernel, recurrent = got[0], got[1]
    bias = got[2] if len(got) == 3 else np.zeros(shapes[2], dtype)
    P = unit.params
    P["W_x"][...] = _reorder(kernel, mode, H)
    P["W_h"][...] = _reorder(recurrent, mode, H)
    P["b_x"][...] = _reorder(bias[0] if two else bias, mode, H)
    P["b_h"][...] = _reorder(bias[1], mode, H) if two else 0


def from_keras(kind, weights, reset_after=True, *, bidirectional=False, activation="tanh",
               batch_first=False, dtype=np.float32):
    """Keras get_weights() arrays (module docstring) -> an rnnkit RNN, LSTM or GRU.

    `reset_after` is the Keras GRU's (ignored for the other kinds); `activation` is the Keras
    SimpleRNN's (LSTM and GRU convert only with Keras's defaults).
    """
    mode = _mode(kind)
    dtype = check_dtype("dtype", dtype)
    activation = check_choice("activation", activation, ("tanh", "relu", "sigmoid"))
    if mode != "rnn" and activation != "tanh":
        raise InputError(f"activation: Keras {kind} converts only with its default activation"
                         f" 'tanh' (and recurrent_activation 'sigmoid'), got {activation!r}")
    dirs = 2 if bidirectional else 1
    layers = _split(weights, dirs)
    first = [a for _, a in layers[0][0]]
    k_shape, r_shape = np.shape(first[0]), np.shape(first[1])
    if len(k_shape) != 2 or len(r_shape) != 2:
        raise InputError(f"weights: expected a 2-d kernel and recurrent_kernel, got shapes {k_shape}"
                         f" and {r_shape}")
    D, H = k_shape[0], r_shape[0]
    common = dict(num_layers=len(layers), bidirectional=bool(bidirectional),
                  batch_first=batch_first, dtype=dtype)
    if mode == "rnn":
        layer = RNN(D, H, nonlinearity=activation, **common)
    elif mode == "lstm":
        layer = LSTM(D, H, **common)
    else:
        layer = GRU(D, H, reset_after=bool(reset_after), **common)
    for k, d, unit in layer.units():
        _load(unit, layers[k][d], mode, reset_after, dtype)
    return layer


def to_keras(layer):
    """An rnnkit RNN / LSTM / GRU -> Keras set_weights()'s list (a list of them when stacked).

    With bidirectional=True the list is Keras Bidirectional's: forward arrays, then backward ones.
    Keras's GRU(reset_after=...) must match layer.reset_after, and SimpleRNN's activation
    layer.nonlinearity.
    """
    if not isinstance(layer, (RNN, LSTM, GRU)):
        raise InputError(f"layer: expected an rnnkit RNN, LSTM or GRU, got {type(layer).__name__}")
    mode, H = layer.mode, layer.hidden_size
    if mode == "lstm" and (layer.proj_size or layer.peepholes):
        raise InputError("layer: Keras's LSTM has no projection (proj_size) and no peepholes")
    if nonstandard(layer):
        raise InputError(f"layer: {', '.join(nonstandard(layer))}: rnnkit-only options with no Keras "
                         f"counterpart; convert a layer without them")
    extra = [n for n, _, _ in layer.named_parameters() if n.rsplit(".", 1)[-1] not in _PARAMS]
    if extra:
        raise InputError(f"layer: parameters {extra} have no Keras counterpart")
    two = mode == "gru" and layer.reset_after
    out = [[] for _ in range(layer.num_layers)]
    for k, d, unit in layer.units():
        P = unit.params
        bias = np.stack([P["b_x"], P["b_h"]]) if two else P["b_x"] + P["b_h"]    # (2, 3H) or (G*H,)
        out[k] += [_reorder(P["W_x"], mode, H), _reorder(P["W_h"], mode, H), _reorder(bias, mode, H)]
    return out[0] if layer.num_layers == 1 else out
