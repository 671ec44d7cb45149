"""Weight initialisers: each takes a numpy Generator, a shape and a dtype."""
import numpy as np


def uniform(rng, shape, bound, dtype):
    """U(-bound, bound): PyTorch's default for recurrent layers uses bound = 1/sqrt(H)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier(rng, shape, dtype):
    """Glorot uniform: U(±sqrt(6 / (fan_in + fan_out))) for a (fan_in, fan_out) matrix."""
    fan_in, fan_out = shape[0], shape[-1]
    return uniform(rng, shape, np.sqrt(6.0 / (fan_in + fan_out)), dtype)


def orthogonal(rng, shape, dtype, gain=1.0):
    """A (rows, cols) matrix with orthonormal rows or columns (QR of a Gaussian, sign-corrected)."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).astype(dtype)
