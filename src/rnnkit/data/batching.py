"""Padding, masks and resumable minibatch iterators.

pad_sequences: B sequences of lengths L_b -> ids (T, B) time-major, T = max_b L_b, with
    ids[t, b] = seq_b[t] for t < L_b and `pad` after; lengths (B,). batch_first gives (B, T).
length_mask: mask[t, b] = 1 where t < lengths[b], else 0 (the mask the losses take).

BatchIterator: minibatches of example indices. Epoch e visits the permutation
    perm_e = default_rng([seed, e]).permutation(N)       (arange(N) when shuffle=False)
in slices of batch_size. The position is only (epoch, index), and perm_e depends only on (seed, e),
so state() -> set_state() resumes exactly: the batches after a restore equal those that an
uninterrupted run would have produced.

StreamBatches (truncated BPTT): a stream w of N ids is cut into B contiguous lanes of
L = (N - 1) // B steps; lane b holds inputs w[b L : (b+1) L] and targets w[b L + 1 : (b+1) L + 1].
Window j is x = X[j k : (j+1) k], y = Y[j k : (j+1) k], both (k, B) with k = seq_len (the last
window of an epoch may be shorter). Window j+1 of lane b continues where window j ended, so the
final hidden state of one window is the right initial state of the next; reset it when
`index == 0` (a new epoch starts).
"""
import numpy as np

from .._checks import check_int, check_int_array
from ..errors import InputError


def pad_sequences(seqs, pad=0, batch_first=False, dtype=np.int64):
    """Pad B 1-D int sequences into ids (T, B) (or (B, T)) and lengths (B,)."""
    if isinstance(seqs, np.ndarray) and seqs.ndim == 2:
        seqs = list(seqs)
    if not isinstance(seqs, (list, tuple)) or len(seqs) == 0:
        raise InputError(f"seqs: expected a non-empty list of 1-D int arrays, got {seqs!r:.60}")
    pad = check_int("pad", pad)
    arrs = [check_int_array(f"seqs[{b}]", s, np.iinfo(np.int64).min, np.iinfo(np.int64).max, ndim=1)
            for b, s in enumerate(seqs)]
    lengths = np.array([len(a) for a in arrs], dtype=np.int64)      # (B,)
    T = int(lengths.max())
    ids = np.full((T, len(arrs)), pad, dtype=dtype)                  # (T, B)
    for b, a in enumerate(arrs):
        ids[: len(a), b] = a
    return (np.ascontiguousarray(ids.T) if batch_first else ids), lengths


def length_mask(lengths, T=None, batch_first=False, dtype=np.float32):
    """Mask (T, B) (or (B, T)): 1 where t < lengths[b], else 0."""
    lengths = check_int_array("lengths", lengths, 0, np.iinfo(np.int64).max, ndim=1)
    T_min = int(lengths.max(initial=0))
    T = T_min if T is None else check_int("T", T, low=T_min)            # every length fits in T
    mask = (np.arange(T)[:, None] < lengths[None, :]).astype(dtype)   # (T, B)
    return np.ascontiguousarray(mask.T) if batch_first else mask


def _check_state(obj, state, keys):
    """Check a state dict against the iterator's fixed settings; return (epoch, index)."""
    if not isinstance(state, dict):
        raise InputError(f"state: expected a dict from state(), got {type(state).__name__}")
    for k in keys + ("epoch", "index"):
        if k not in state:
            raise InputError(f"state: missing key {k!r} (expected keys {sorted(keys + ('epoch', 'index'))})")
    for k in keys:
        if state[k] != getattr(obj, k):
            raise InputError(f"state[{k!r}]: this iterator has {k}={getattr(obj, k)!r}, "
                             f"the state was saved with {state[k]!r}")
    epoch = check_int("state['epoch']", state["epoch"], low=0)
    index = check_int("state['index']", state["index"], low=0, high=len(obj))
    return epoch, index


class BatchIterator:
    """Seeded, shuffled minibatches of indices into N examples, resumable with state()/set_state()."""

    _keys = ("n", "batch_size", "shuffle", "seed", "drop_last")

    def __init__(self, n, batch_size, *, shuffle=True, seed=0, drop_last=False):
        self.n = check_int("n", n, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.seed = check_int("seed", seed, low=0)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if self.drop_last and self.batch_size > self.n:
            raise InputError(f"batch_size: with drop_last=True it must be <= n={self.n}, "
                             f"got {self.batch_size}")
        self.epoch, self.index = 0, 0

    def __len__(self):
        """Batches per epoch."""
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch):
        """The visiting order (N,) of an epoch."""
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)                       # (N,)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)  # (N,)

    def next_batch(self):
        """The next batch's indices (B,); rolls over into the next epoch."""
        if self.index >= len(self):
            self.epoch, self.index = self.epoch + 1, 0
        start = self.index * self.batch_size
        idx = self.order(self.epoch)[start:start + self.batch_size]          # (B,)
        self.index += 1
        return idx

    def __iter__(self):
        """The remaining batches of the current epoch; the next loop starts the next epoch."""
        if self.index >= len(self):
            self.epoch, self.index = self.epoch + 1, 0
        perm = self.order(self.epoch)
        while self.index < len(self):
            start = self.index * self.batch_size
            self.index += 1
            yield perm[start:start + self.batch_size]

    def state(self):
        """The position and settings as a JSON-able dict."""
        return {"epoch": self.epoch, "index": self.index, "n": self.n, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "seed": self.seed, "drop_last": self.drop_last}

    def set_state(self, state):
        """Resume at a position saved by state() (settings must match)."""
        self.epoch, self.index = _check_state(self, state, self._keys)


class StreamBatches:
    """Windows (x (k, B), y (k, B)) of B contiguous lanes of a 1-D id stream, for truncated BPTT."""

    _keys = ("n", "batch_size", "seq_len")

    def __init__(self, ids, batch_size, seq_len):
        ids = check_int_array("ids", ids, np.iinfo(np.int64).min, np.iinfo(np.int64).max, ndim=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.seq_len = check_int("seq_len", seq_len, low=1)
        self.n = len(ids)
        L = (self.n - 1) // self.batch_size
        if L < 1:
            raise InputError(f"ids: a stream of {self.n} ids is too short for batch_size="
                             f"{self.batch_size} (need at least {self.batch_size + 1})")
        w = ids.astype(np.int64)
        self.X = np.ascontiguousarray(w[:L * self.batch_size].reshape(self.batch_size, L).T)       # (L, B)
        self.Y = np.ascontiguousarray(w[1:L * self.batch_size + 1].reshape(self.batch_size, L).T)  # (L, B)
        self.lane_len = L
        self.epoch, self.index = 0, 0

    def __len__(self):
        """Windows per epoch."""
        return -(-self.lane_len // self.seq_len)

    def window(self, j):
        """Window j: x (k, B) and y (k, B)."""
        t = j * self.seq_len
        return self.X[t:t + self.seq_len], self.Y[t:t + self.seq_len]

    def next_batch(self):
        """The next window; rolls over into the next epoch."""
        if self.index >= len(self):
            self.epoch, self.index = self.epoch + 1, 0
        self.index += 1
        return self.window(self.index - 1)

    def __iter__(self):
        """The remaining windows of the current epoch, in order."""
        if self.index >= len(self):
            self.epoch, self.index = self.epoch + 1, 0
        while self.index < len(self):
            self.index += 1
            yield self.window(self.index - 1)

    def state(self):
        """The position and settings as a JSON-able dict."""
        return {"epoch": self.epoch, "index": self.index, "n": self.n,
                "batch_size": self.batch_size, "seq_len": self.seq_len}

    def set_state(self, state):
        """Resume at a position saved by state() (settings must match)."""
        self.epoch, self.index = _check_state(self, state, self._keys)


def stream_batches(ids, batch_size, seq_len):
    """A resumable iterator of (x (k, B), y (k, B)) windows over a 1-D id stream."""
    return StreamBatches(ids, batch_size, seq_len)
