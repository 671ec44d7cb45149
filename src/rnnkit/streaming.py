"""Inference over sequences far longer than memory: one chunk of steps at a time, the state carried.

For a causal recurrent module f (out, s_T = f(x_{1..T}, s_0)) and chunks x = [x^1 ; x^2 ; ...] of at
most `chunk` steps each,

    s^0 = state (None: the module's zero state)
    out^k, s^k = f(x^k, s^{k-1})          k = 1, 2, ...      on_chunk(t0_k, out^k), then out^k is dropped
    return s^K                            the one-shot forward's final state f(x, s^0)[1]

so memory is O(chunk · B · H) whatever T is: only one chunk's input, pre-activations and outputs
exist at a time. t0_k is the index of chunk k's first step in the whole stream.

`module` is any rnnkit module whose infer(x, state) returns (out, state) and reads the sequence
left to right: RNN / LSTM / GRU (unidirectional; batch_first puts time on axis 1), Recurrent with
reverse=False, MinGRU / MinLSTM, ManyToMany (ids (T, B) or vectors (T, B, D) in, logits out).
A bidirectional layer needs the whole sequence and is refused. The module runs in evaluation mode
(no dropout) and is put back in its former mode afterwards.

`xs` is one array (time on the module's time axis) or an iterable of such arrays, e.g. a generator
that reads the stream from disk; pieces longer than `chunk` are cut. A stream of no steps returns
`state` unchanged.
"""
import numpy as np

from ._checks import check_int
from .errors import InputError
from .layers import MinGRU, MinLSTM, Recurrent, RecurrentNet
from .models.many_to_many import ManyToMany

STREAMABLE = (RecurrentNet, Recurrent, MinGRU, MinLSTM, ManyToMany)


def _check_module(module):
    """The module is one of STREAMABLE and reads left to right."""
    if not isinstance(module, STREAMABLE):
        raise InputError(f"module: expected an RNN, LSTM, GRU, Recurrent, MinGRU, MinLSTM or ManyToMany,"
                         f" got {type(module).__name__}")
    rnn = module.rnn if isinstance(module, ManyToMany) else module
    if getattr(rnn, "bidirectional", False) or getattr(rnn, "reverse", False):
        raise InputError(f"module: a bidirectional or reversed {type(rnn).__name__} needs the whole "
                         f"sequence at once; expected a left-to-right module")


def _pieces(xs, chunk, axis):
    """Yield the pieces of xs (an array or an iterable of arrays), each at most `chunk` steps (views)."""
    if isinstance(xs, (str, bytes, dict)) or not hasattr(xs, "__iter__"):
        raise InputError(f"xs: expected an array or an iterable of arrays, got {type(xs).__name__}")
    one = isinstance(xs, np.ndarray)
    for i, part in enumerate([xs] if one else xs):
        if not isinstance(part, np.ndarray) or part.ndim <= axis:
            what = type(part).__name__ + (f" of shape {part.shape}" if hasattr(part, "shape") else "")
            raise InputError(f"{'xs' if one else f'xs[{i}]'}: expected an array with time on axis {axis},"
                             f" got {what}")
        for t in range(0, part.shape[axis], chunk):
            yield part[(slice(None),) * axis + (slice(t, t + chunk),)]


def run_stream(module, xs, chunk=1000, state=None, on_chunk=None):
    """Run module over xs chunk by chunk, carrying the state -> the final state (see the module docstring)."""
    _check_module(module)
    chunk = check_int("chunk", chunk, low=1)
    if on_chunk is not None and not callable(on_chunk):
        raise InputError(f"on_chunk: expected a function (t0, out) or None, got {on_chunk!r:.60}")
    axis = 1 if getattr(module, "batch_first", False) else 0
    was_training, t0 = getattr(module, "training", False), 0
    module.eval()
    try:
        for x in _pieces(xs, chunk, axis):
            out, state = module.infer(x, state)
            if on_chunk is not None:
                on_chunk(t0, out)
            t0 += x.shape[axis]
    finally:
        module.train(was_training)
    return state
