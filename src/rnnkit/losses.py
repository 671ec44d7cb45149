"""Losses: each returns (loss, dlogits), the scalar loss and its gradient with respect to the prediction.

Softmax cross-entropy over the last axis, for logits z (..., V) and integer targets y (...):

    log p = log_softmax(z) = s - log Σ exp(s), s = z - max(z)   (stable: exp(s) <= 1)
    e_t   = -log p_t[y_t]                      one term per position t
    w_t   = mask_t · [y_t != ignore_index]     1 where the position counts, else 0
    de_t/dz_t = p_t - onehot(y_t)

Mean squared error, for pred and target of one shape:

    e_i = (pred_i - target_i)^2                de_i/dpred_i = 2 (pred_i - target_i)

Reductions (N = the number of counted terms, Σ w):

    "mean"        E = Σ w e / N                (0 with a zero gradient when N = 0)
    "sum"         E = Σ w e                    the classic BPTT loss E = Σ_t e_t
    "batch_mean"  E = Σ w e / B                sum over time, mean over the batch: for time-major
                                               targets (T, B, ...), B = shape[1]; for 1-d targets
                                               (B,), B = shape[0]

A mask is 0/1 or bool. For mse it has pred's shape or pred's shape without the last axis (one
flag per position, shared by its D features).
"""
import numpy as np

from ._checks import check_array, check_choice, check_dtype, check_int_array
from .errors import DTypeError, InputError, ShapeError

REDUCTIONS = ("mean", "sum", "batch_mean")


def _check_mask(mask, shape, dtype):
    """Return a 0/1 mask of `shape` and `dtype` (None -> None)."""
    if mask is None:
        return None
    mask = check_array("mask", mask)
    if mask.shape != tuple(shape):
        raise ShapeError(f"mask: expected shape {tuple(shape)}, got {mask.shape}")
    if mask.dtype.kind not in "biuf":
        raise DTypeError(f"mask: expected bool or 0/1 numbers, got dtype {mask.dtype.name}")
    if mask.dtype.kind != "b" and not np.all((mask == 0) | (mask == 1)):
        bad = mask[(mask != 0) & (mask != 1)].flat[0]
        raise InputError(f"mask: expected only 0 and 1, got {bad!r}")
    return mask.astype(dtype, copy=False)


def _scale(reduction, n, shape):
    """The factor that turns Σ w e into the reduced loss (0 when nothing counts)."""
    if n == 0:
        return 0.0
    if reduction == "mean":
        return 1.0 / n
    if reduction == "batch_mean":
        return 1.0 / (shape[1] if len(shape) >= 2 else shape[0] if len(shape) == 1 else 1)
    return 1.0


def _check_targets(targets, shape, V, ignore_index):
    """Integer class indices of `shape` in [0, V), except positions equal to ignore_index."""
    targets = check_array("targets", targets)
    if targets.shape != tuple(shape):
        raise ShapeError(f"targets: expected shape {tuple(shape)} (logits' shape without the last"
                         f" axis), got {targets.shape}")
    if ignore_index is None:
        return check_int_array("targets", targets, 0, V), None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise InputError(f"ignore_index: expected an integer or None, got {ignore_index!r}")
    ignored = targets == ignore_index                                        # (...)
    check_int_array(f"targets (other than ignore_index={ignore_index})", targets[~ignored], 0, V)
    return np.where(ignored, 0, targets).astype(np.int64), ignored           # (...)


def cross_entropy(logits, targets, mask=None, ignore_index=None, reduction="mean"):
    """Softmax cross-entropy of logits (..., V) against class indices (...) -> (loss, dlogits (..., V))."""
    check_choice("reduction", reduction, REDUCTIONS)
    logits = check_array("logits", logits)
    check_dtype("logits", logits.dtype)
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ShapeError(f"logits: expected shape (..., V) with V >= 1, got {logits.shape}")
    shape, V = logits.shape[:-1], logits.shape[-1]
    y, ignored = _check_targets(targets, shape, V, ignore_index)
    w = np.ones(shape, logits.dtype)                                         # (...)
    if ignored is not None:
        w[ignored] = 0
    m = _check_mask(mask, shape, logits.dtype)
    if m is not None:
        w *= m
    s = logits - logits.max(axis=-1, keepdims=True)                          # (..., V) exp cannot overflow
    s_y = np.take_along_axis(s, y[..., None], axis=-1)[..., 0]               # (...)
    p = np.exp(s, out=s)                                                     # (..., V) reuses s
    Z = p.sum(axis=-1)                                                       # (...)
    logp_y = s_y - np.log(Z)                                                 # (...) log_softmax at y
    k = _scale(reduction, float(w.sum()), shape)
    loss = k * float(np.sum(w * -logp_y, dtype=np.float64))
    kw = k * w                                                               # (...) weight of each term
    p *= (kw / Z)[..., None]                                                 # (..., V) k w softmax
    p_y = np.take_along_axis(p, y[..., None], axis=-1)                       # (..., 1)
    np.put_along_axis(p, y[..., None], p_y - kw[..., None], axis=-1)         # k w (p - onehot(y))
    return loss, p


def mse(pred, target, mask=None, reduction="mean"):
    """Mean squared error of pred against target (same shape) -> (loss, dpred)."""
    check_choice("reduction", reduction, REDUCTIONS)
    pred = check_array("pred", pred)
    check_dtype("pred", pred.dtype)
    target = check_array("target", target)
    if target.shape != pred.shape:
        raise ShapeError(f"target: expected shape {pred.shape} (pred's shape), got {target.shape}")
    if target.dtype.kind not in "iuf":
        raise DTypeError(f"target: expected real numbers, got dtype {target.dtype.name}")
    target = target.astype(pred.dtype, copy=False)
    diff = pred - target                                                     # (...)
    if mask is None:
        w, n = None, pred.size
    elif pred.ndim and np.shape(mask) == pred.shape[:-1]:
        w = _check_mask(mask, pred.shape[:-1], pred.dtype)[..., None]         # (..., 1)
        n = float(w.sum()) * pred.shape[-1]
    else:
        w = _check_mask(mask, pred.shape, pred.dtype)                        # (...)
        n = float(w.sum())
    if w is not None:
        diff *= w
    k = _scale(reduction, n, pred.shape)
    loss = k * float(np.sum(diff * diff, dtype=np.float64))
    return loss, diff * (2 * k)
