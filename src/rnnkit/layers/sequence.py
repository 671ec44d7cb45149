"""Sequence helpers shared by the unroll: length checks, step masks, reversal within each length."""
import numpy as np

from .._checks import check_int_array
from ..errors import ShapeError


def check_lengths(lengths, T, B):
    """None, or an int array (B,) with 0 <= lengths[b] <= T; returns int64 array or None."""
    if lengths is None:
        return None
    lengths = check_int_array("lengths", lengths, 0, T + 1, ndim=1)
    if lengths.shape[0] != B:
        raise ShapeError(f"lengths: expected shape ({B},) (one length per sequence in the batch), "
                         f"got {lengths.shape}")
    return lengths.astype(np.int64)


def step_masks(lengths, T, dtype):
    """(T, B, 1) mask of real steps (1 where t < lengths[b]); None when every step is real."""
    if lengths is None or (lengths.size and lengths.min() == T):
        return None
    return (np.arange(T)[:, None] < lengths[None, :]).astype(dtype)[:, :, None]   # (T, B, 1)


def reverse_index(lengths, T, B):
    """Time index that reverses each sequence within its own length, leaving padding in place."""
    t = np.arange(T)[:, None]                                      # (T, 1)
    if lengths is None:
        return np.broadcast_to(T - 1 - t, (T, B))
    L = lengths[None, :]                                           # (1, B)
    return np.where(t < L, L - 1 - t, t)                           # (T, B)


def reverse_padded(x, idx):
    """x (T, B, F) with each sequence reversed by reverse_index's idx (its own inverse)."""
    return np.take_along_axis(x, idx[:, :, None], axis=0)
