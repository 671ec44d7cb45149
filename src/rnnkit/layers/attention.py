"""Attention: a context vector, the weighted sum of S keys (encoder states), weighted by a query.

    scores   e_s = score(q, k_s)                        q (B, Hq), keys k (S, B, Hk) -> e (S, B)
      additive (Bahdanau et al., 2015)  e_s = v · tanh(q W_q + k_s W_k + b)   W_q (Hq, A), W_k (Hk, A),
                                                                              b (A,), v (A,)
      dot      (Luong et al., 2015)     e_s = q · k_s                         needs Hq = Hk
      general  (Luong et al., 2015)     e_s = (q W) · k_s                     W (Hq, Hk)
    weights  w_s = exp(e_s) / Σ_{s' real} exp(e_s')    softmax over the real positions of the mask
                                                       (S, B); masked positions get w_s = 0
    context  c = Σ_s w_s k_s                            (B, Hk)

The key side of the score, K = k W_k + b (additive) or K = k (dot, general), does not depend on the
query. A decoder computes it once per source with precompute(keys) -> K and then calls
attend(q, keys, K, mask) at every step, so a step costs O(S B A) and never multiplies keys by W_k.
Backward mirrors that split: attend_backward -> (dq, dkeys through c, dK); the decoder sums dK
over its steps and calls precompute_backward(dK) once (one GEMM over all S B rows).
forward/backward do both halves for one query.

The softmax is stable: e is set to -inf at masked positions and shifted by its max over the real
ones; a column with no real position (a source of length 0) gets zero weights and a zero context,
never NaN.
"""
import numpy as np

from .. import init
from .._checks import check_array, check_choice, check_dtype, check_float, check_int
from ..errors import DTypeError, InputError, ShapeError
from .module import Module

KINDS = ("additive", "dot", "general")


def masked_softmax(e, mask):
    """Softmax of e (S, B) over axis 0, restricted to mask (S, B) bool (None: all real)."""
    if mask is not None:
        e = np.where(mask, e, -np.inf)                                       # (S, B)
    m = e.max(axis=0)                                                        # (B,)
    m = np.where(np.isfinite(m), m, 0)                                       # all-masked column
    p = np.exp(e - m)                                                        # (S, B) exp(-inf) = 0
    Z = p.sum(axis=0)                                                        # (B,)
    return p / np.where(Z > 0, Z, 1)


class Attention(Module):
    """Additive (Bahdanau) or multiplicative (Luong dot / general) attention of a query over keys."""

    def __init__(self, query_size, key_size, kind="additive", attn_size=None, dtype=np.float32, seed=0):
        super().__init__()
        self.Hq = check_int("query_size", query_size, low=1)
        self.Hk = check_int("key_size", key_size, low=1)
        self.kind = check_choice("kind", kind, KINDS)
        self.dtype = check_dtype("dtype", dtype)
        if attn_size is not None and kind != "additive":
            raise InputError(f"attn_size: only kind='additive' has one, expected None, got {attn_size!r}")
        self.A = check_int("attn_size", self.Hq if attn_size is None else attn_size, low=1)
        if kind == "dot" and self.Hq != self.Hk:
            raise InputError(f"key_size: kind='dot' needs key_size == query_size={self.Hq}, got {self.Hk}"
                             " (use 'general' or 'additive')")
        rng = np.random.default_rng(seed)
        if kind == "additive":
            self.add_param("W_q", init.uniform(rng, (self.Hq, self.A), 1 / np.sqrt(self.Hq), self.dtype))
            self.add_param("W_k", init.uniform(rng, (self.Hk, self.A), 1 / np.sqrt(self.Hk), self.dtype))
            self.add_param("b", init.uniform(rng, (self.A,), 1 / np.sqrt(self.Hk), self.dtype))
            self.add_param("v", init.uniform(rng, (self.A,), 1 / np.sqrt(self.A), self.dtype))
        elif kind == "general":
            self.add_param("W", init.uniform(rng, (self.Hq, self.Hk), 1 / np.sqrt(self.Hq), self.dtype))

    # -- checks ---------------------------------------------------------------------------------
    def _check_keys(self, keys):
        keys = check_float("keys", keys, self.dtype, ndim=3)
        if keys.shape[0] < 1 or keys.shape[2] != self.Hk:
            raise ShapeError(f"keys: expected shape (S, B, {self.Hk}) with S >= 1, got {keys.shape}")
        return keys

    def _check_mask(self, mask, S, B):
        if mask is None:
            return None
        mask = check_array("mask", mask, shape=(S, B))
        if mask.dtype.kind not in "biuf":
            raise DTypeError(f"mask: expected bool or 0/1 numbers, got dtype {mask.dtype.name}")
        return mask.astype(bool, copy=False)

    @property
    def proj_size(self):
        """Last dimension of precompute's K: A (additive) or Hk."""
        return self.A if self.kind == "additive" else self.Hk

    # -- the key side, once per source ----------------------------------------------------------
    def precompute(self, keys):
        """keys (S, B, Hk) -> K (S, B, A) = keys W_k + b (additive) or keys itself, cache."""
        keys = self._check_keys(keys)
        if self.kind != "additive":
            return keys, None
        S, B, _ = keys.shape
        K = (keys.reshape(S * B, self.Hk) @ self.params["W_k"] + self.params["b"]).reshape(S, B, self.A)
        return K, keys                                                       # (S, B, A)

    def precompute_backward(self, dK, cache):
        """dK like K -> dkeys (S, B, Hk); adds dW_k and db."""
        if self.kind != "additive":
            return dK
        keys = cache
        rows = dK.reshape(-1, self.A)                                        # (S*B, A)
        self.grads["W_k"] += keys.reshape(-1, self.Hk).T @ rows              # (Hk, A)
        self.grads["b"] += rows.sum(axis=0)                                  # (A,)
        return (rows @ self.params["W_k"].T).reshape(keys.shape)             # (S, B, Hk)

    # -- one query ------------------------------------------------------------------------------
    def attend(self, query, keys, K, mask=None, need_cache=True):
        """query (B, Hq), keys (S, B, Hk), K, mask (S, B) -> context (B, Hk), weights (S, B), cache."""
        q = check_float("query", query, self.dtype, shape=(None, self.Hq))
        S, B = keys.shape[0], q.shape[0]
        check_float("keys", keys, self.dtype, shape=(S, B, self.Hk))
        check_float("K", K, self.dtype, shape=(S, B, self.proj_size))
        mask = self._check_mask(mask, S, B)
        P = self.params
        if self.kind == "additive":
            aux = np.tanh(K + q @ P["W_q"])                                  # (S, B, A) U
            e = aux @ P["v"]                                                 # (S, B)
        else:
            aux = q if self.kind == "dot" else q @ P["W"]                    # (B, Hk) q or q W
            e = np.einsum("sbh,bh->sb", K, aux)                              # (S, B)
        w = masked_softmax(e, mask)                                          # (S, B)
        c = np.einsum("sb,sbh->bh", w, keys)                                 # (B, Hk)
        return c, w, ((q, keys, K, w, aux) if need_cache else None)

    def attend_backward(self, dcontext, dweights, cache):
        """dcontext (B, Hk), dweights (S, B) or None -> dquery (B, Hq), dkeys (S, B, Hk) via c, dK."""
        q, keys, K, w, aux = cache
        dc = check_float("dcontext", dcontext, self.dtype, shape=(q.shape[0], self.Hk))
        dkeys = w[:, :, None] * dc                                           # (S, B, Hk) c = Σ w k
        dw = np.einsum("sbh,bh->sb", keys, dc)                               # (S, B)
        if dweights is not None:
            dw += check_float("dweights", dweights, self.dtype, shape=w.shape)
        de = w * (dw - (w * dw).sum(axis=0))                                 # (S, B) softmax; 0 where masked
        P, G = self.params, self.grads
        if self.kind == "additive":
            G["v"] += np.einsum("sb,sba->a", de, aux)                        # e = U v
            dK = de[:, :, None] * P["v"] * (1 - aux * aux)                   # (S, B, A) U = tanh(K + q W_q)
            dqW = dK.sum(axis=0)                                             # (B, A)
            G["W_q"] += q.T @ dqW
            return dqW @ P["W_q"].T, dkeys, dK
        dK = de[:, :, None] * aux                                            # (S, B, Hk) e = K · aux
        daux = np.einsum("sb,sbh->bh", de, K)                                # (B, Hk)
        if self.kind == "dot":
            return daux, dkeys, dK
        G["W"] += q.T @ daux                                                 # aux = q W
        return daux @ P["W"].T, dkeys, dK

    # -- both halves ----------------------------------------------------------------------------
    def forward(self, query, keys, mask=None):
        """query (B, Hq), keys (S, B, Hk), mask (S, B) -> context (B, Hk), weights (S, B), cache."""
        K, pre_cache = self.precompute(keys)
        c, w, cache = self.attend(query, keys, K, mask)
        return c, w, (pre_cache, cache)

    def backward(self, dcontext, dweights=None, cache=None):
        """dcontext (B, Hk), dweights (S, B) or None, cache -> dquery (B, Hq), dkeys (S, B, Hk)."""
        if cache is None:
            raise InputError("cache: expected the cache forward returned, got None")
        pre_cache, cache = cache
        dq, dkeys, dK = self.attend_backward(dcontext, dweights, cache)
        return dq, dkeys + self.precompute_backward(dK, pre_cache)
