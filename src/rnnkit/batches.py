"""Batch sources for rnnkit.train.fit, and evaluate(model, data): the mean loss over a whole data set.

    Batches(make_batch, n, batch_size)   batch dicts make_batch(indices (B,)) over seeded, shuffled
                                         minibatches of n examples; resumable (state / set_state)
    StreamWindows(ids, B, T)             {"x": (T, B), "y": (T, B)} windows of one token stream,
                                         in order, for truncated BPTT
    as_batches(data)                     either of these from what fit accepts (a list of batch
                                         dicts, a StreamBatches, any object with the same methods)
    evaluate(model, data, tbptt)         eval mode, no backward: {"loss", "count", **metrics}
    detach_state(state)                  a copy of a carried TBPTT state, cut from its window

rnnkit.train imports all five from here (rnnkit.train.Batches and the others stay valid names).
"""
import numpy as np

from .data.batching import BatchIterator, StreamBatches
from .errors import InputError


class Batches:
    """Batch dicts make_batch(indices (B,)) over seeded, shuffled minibatches of N examples; resumable."""

    def __init__(self, make_batch, n, batch_size, *, shuffle=True, seed=0, drop_last=False):
        if not callable(make_batch):
            raise InputError(f"make_batch: expected a function indices -> batch dict, got {make_batch!r:.60}")
        self.make_batch = make_batch
        self.it = BatchIterator(n, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    epoch = property(lambda self: self.it.epoch)
    index = property(lambda self: self.it.index)

    def __len__(self):
        return len(self.it)

    def next_batch(self):
        """The next batch dict; rolls over into the next epoch."""
        return self.make_batch(self.it.next_batch())

    def eval_batches(self):
        """All batches once, in index order, without moving the position."""
        order = np.arange(self.it.n)                                          # (N,)
        for start in range(0, len(self) * self.it.batch_size, self.it.batch_size):
            yield self.make_batch(order[start:start + self.it.batch_size])

    def state(self):
        return self.it.state()

    def set_state(self, state):
        self.it.set_state(state)


class StreamWindows(Batches):
    """{"x": (k, B), "y": (k, B)} windows of a token stream (StreamBatches) for truncated BPTT."""

    def __init__(self, ids_or_stream, batch_size=None, seq_len=None):
        s = ids_or_stream
        self.it = s if isinstance(s, StreamBatches) else StreamBatches(s, batch_size, seq_len)

    def next_batch(self):
        x, y = self.it.next_batch()
        return {"x": x, "y": y}

    def eval_batches(self):
        for j in range(len(self)):
            x, y = self.it.window(j)
            yield {"x": x, "y": y}


def as_batches(data, name="train_data"):
    """A resumable batch source from a Batches, StreamWindows, StreamBatches or list of batch dicts."""
    if isinstance(data, StreamBatches):
        return StreamWindows(data)
    if isinstance(data, (list, tuple)) and data and all(isinstance(b, dict) for b in data):
        items = list(data)
        return Batches(lambda idx: items[int(idx[0])], len(items), 1, shuffle=False)
    if all(hasattr(data, a) for a in ("next_batch", "state", "set_state", "eval_batches", "__len__")):
        return data
    hint = " (wrap it: Batches(make_batch, n, batch_size))" if isinstance(data, BatchIterator) else ""
    raise InputError(f"{name}: expected Batches, StreamWindows, StreamBatches or a non-empty list of "
                     f"batch dicts, got {type(data).__name__}{hint}")


def detach_state(state):
    """A copy of a carried state (arrays in tuples/lists/dicts), cut from the window that made it."""
    if isinstance(state, np.ndarray):
        return state.copy()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state


def _eval_batches(data):
    """The batches of one evaluation pass over `data`."""
    if isinstance(data, StreamBatches):
        return StreamWindows(data).eval_batches()
    if hasattr(data, "eval_batches"):
        return data.eval_batches()
    if isinstance(data, (dict, str, bytes)) or not hasattr(data, "__iter__"):
        raise InputError(f"data: expected Batches, StreamWindows or an iterable of batch dicts, "
                         f"got {type(data).__name__}")
    return data


def evaluate(model, data, tbptt=False, parallel=None):
    """{"loss": mean loss, "count": items, **summed metrics} over all of data; eval mode, no backward.

    With `parallel` (rnnkit.distributed.DataParallel) the ranks share the batches (every rank
    evaluates all of a TBPTT stream, whose windows must run in order) and add up their sums.
    """
    was_training, loss_sum, count, totals, state = model.training, 0.0, 0, {}, None
    share = parallel is not None and not tbptt
    model.eval()
    try:
        for i, batch in enumerate(_eval_batches(data)):
            if share and i % parallel.size != parallel.rank:
                continue
            l, n, metrics, state = model.objective(batch, state if tbptt else None, train=False)
            loss_sum, count = loss_sum + float(l), count + int(n)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0) + (v.item() if isinstance(v, np.generic) else v)
    finally:
        model.train(was_training)
    if share:
        loss_sum, count, totals = parallel.sum_eval(loss_sum, count, totals)
    if count == 0:
        raise InputError("data: expected at least one batch with counted items, got none")
    return {"loss": loss_sum / count, "count": count, **totals}
