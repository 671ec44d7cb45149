"""Linear, Embedding and Dropout: the layers around the recurrent core.

    Linear      y = x W + b                 x (..., D), W (D, H), b (H,)  -> y (..., H)
                dW += x^T dy, db += Σ dy, dx = dy W^T   (all leading axes flattened: one GEMM each)
    Embedding   out = W[ids]                ids (...) integers in [0, V), W (V, E) -> out (..., E)
                dW[v] += Σ_{ids = v} dout             (the padding_idx row gets no gradient)
    Dropout     y = x * m / (1 - p)         m ~ Bernoulli(1 - p) in training; y = x in evaluation
                dx = dy * m / (1 - p)                  (inverted dropout, Srivastava et al., 2014)

Initialisation follows PyTorch: Linear W, b ~ U(±1/sqrt(D)); Embedding W ~ N(0, 1) with the
padding_idx row zero. PyTorch stores Linear's weight as (H, D): torch_state_dict() gives W^T.
"""
import numpy as np

from .. import init
from .._checks import check_array, check_dtype, check_float, check_int, check_int_array, check_real
from ..errors import DTypeError, InputError, ShapeError
from .module import Module, load_torch_layout


def _check_x(name, x, dtype, D):
    """Check a float array (..., D) of the module's dtype."""
    x = check_float(name, x, dtype)
    if x.ndim < 1 or x.shape[-1] != D:
        raise ShapeError(f"{name}: expected shape (..., {D}), got {x.shape}")
    return x


def _check_grad(name, d, shape, dtype):
    """Check an upstream gradient of exactly `shape` and `dtype`."""
    d = check_float(name, d, dtype)
    if d.shape != tuple(shape):
        raise ShapeError(f"{name}: expected shape {tuple(shape)} (the forward output's), got {d.shape}")
    return d


def _check_cache(cache, ok):
    """Raise unless `cache` came from forward (ok(cache) is True)."""
    if cache is None or not ok(cache):
        raise InputError(f"cache: expected the cache that forward returned, got {cache!r:.60}")


class Linear(Module):
    """y = x W + b over the last axis."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, seed=0):
        super().__init__()
        self.set_config(in_features=in_features, out_features=out_features, bias=bias, dtype=dtype, seed=seed)
        self.D = check_int("in_features", in_features, low=1)
        self.H = check_int("out_features", out_features, low=1)
        self.dtype = check_dtype("dtype", dtype)
        rng = np.random.default_rng(check_int("seed", seed, low=0))
        k = 1.0 / np.sqrt(self.D)
        self.W = self.add_param("W", init.uniform(rng, (self.D, self.H), k, self.dtype))  # (D, H)
        self.b = self.add_param("b", init.uniform(rng, (self.H,), k, self.dtype)) if bias else None

    def forward(self, x):
        """x (..., D) -> y (..., H), cache."""
        x = _check_x("x", x, self.dtype, self.D)
        y = x.reshape(-1, self.D) @ self.W                                   # (N, H)
        if self.b is not None:
            y += self.b
        return y.reshape(x.shape[:-1] + (self.H,)), x                        # (..., H)

    def backward(self, dy, cache):
        """dy (..., H) -> dx (..., D); adds dW and db."""
        _check_cache(cache, lambda c: isinstance(c, np.ndarray) and c.ndim >= 1 and c.shape[-1] == self.D)
        x = cache
        dy = _check_grad("dy", dy, x.shape[:-1] + (self.H,), self.dtype).reshape(-1, self.H)  # (N, H)
        self.grads["W"] += x.reshape(-1, self.D).T @ dy                     # (D, H)
        if self.b is not None:
            self.grads["b"] += dy.sum(axis=0)                               # (H,)
        return (dy @ self.W.T).reshape(x.shape)                             # (..., D)

    def torch_state_dict(self, grads=False):
        """{"weight": W^T (H, D), "bias": b (H,)}: the layout of torch.nn.Linear."""
        src = self.grads if grads else self.params
        sd = {"weight": src["W"].T.copy()}                                   # (H, D)
        if self.b is not None:
            sd["bias"] = src["b"].copy()                                     # (H,)
        return sd

    def load_torch_state_dict(self, state):
        """Copy torch.nn.Linear's weight (H, D) and bias (H,) into W and b in place."""
        mine = {"weight": (self.W, True)}
        if self.b is not None:
            mine["bias"] = (self.b, False)
        load_torch_layout(self, state, mine)


class Embedding(Module):
    """out = W[ids]: one row of W per integer id."""

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32, seed=0, padding_idx=None):
        super().__init__()
        self.set_config(num_embeddings=num_embeddings, embedding_dim=embedding_dim, dtype=dtype, seed=seed,
                        padding_idx=padding_idx)
        self.V = check_int("num_embeddings", num_embeddings, low=1)
        self.E = check_int("embedding_dim", embedding_dim, low=1)
        self.dtype = check_dtype("dtype", dtype)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx, 0, self.V - 1)
        self.padding_idx = padding_idx
        rng = np.random.default_rng(check_int("seed", seed, low=0))
        self.W = self.add_param("W", rng.standard_normal((self.V, self.E)).astype(self.dtype))  # (V, E)
        if self.padding_idx is not None:
            self.W[self.padding_idx] = 0

    def forward(self, ids):
        """ids (...) -> out (..., E), cache."""
        ids = check_int_array("ids", ids, 0, self.V)
        return self.W[ids], ids                                              # (..., E)

    def backward(self, dout, cache):
        """dout (..., E) -> None (ids have no gradient); adds dW, summing rows of repeated ids."""
        _check_cache(cache, lambda c: isinstance(c, np.ndarray) and c.dtype.kind in "iu")
        ids = cache.reshape(-1)                                              # (N,)
        dout = _check_grad("dout", dout, cache.shape + (self.E,), self.dtype).reshape(-1, self.E)
        if self.padding_idx is not None:
            keep = ids != self.padding_idx
            ids, dout = ids[keep], dout[keep]
        if ids.size:
            order = np.argsort(ids, kind="stable")                           # sort, then sum runs
            ids = ids[order]
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])        # (U,) first of each run
            self.grads["W"][ids[starts]] += np.add.reduceat(dout[order], starts, axis=0)  # (U, E)
        return None

    def torch_state_dict(self, grads=False):
        """{"weight": W (V, E)}: the layout of torch.nn.Embedding."""
        return {"weight": (self.grads if grads else self.params)["W"].copy()}

    def load_torch_state_dict(self, state):
        """Copy torch.nn.Embedding's weight (V, E) into W in place."""
        load_torch_layout(self, state, {"weight": (self.W, False)})


class Dropout(Module):
    """Inverted dropout: zero each element with probability p in training, identity in evaluation."""

    def __init__(self, p, seed=0):
        super().__init__()
        self.p = check_real("p", p, low=0.0, high=1.0)
        if self.p == 1:
            raise InputError(f"p: expected a number in [0, 1), got {self.p}")
        self.rng = np.random.default_rng(check_int("seed", seed, low=0))

    def forward(self, x):
        """x -> y (x's shape), cache = the scaled mask m / (1 - p), or None when it is the identity."""
        x = check_array("x", x)
        if x.dtype not in (np.float32, np.float64):
            raise DTypeError(f"x: expected dtype float32 or float64, got {x.dtype.name}")
        if not self.training or self.p == 0:
            return x, None
        m = (self.rng.random(x.shape, dtype=x.dtype) >= self.p) / x.dtype.type(1 - self.p)  # (...)
        m = m.astype(x.dtype, copy=False)
        return x * m, m

    def backward(self, dy, cache):
        """dy -> dx with the mask the forward pass drew."""
        if cache is None:
            return dy
        return _check_grad("dy", dy, cache.shape, cache.dtype) * cache
