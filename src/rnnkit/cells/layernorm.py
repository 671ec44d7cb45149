"""Layer normalisation over the last axis (Ba, Kiros & Hinton 2016, "Layer Normalization").

    μ = mean(a),  σ² = mean((a - μ)²)                    over the last axis (width N), per row
    â = (a - μ) / sqrt(σ² + eps)                        eps = 1e-5, as torch.nn.LayerNorm
    y = g ⊙ â (+ b)                                     gain g (N,), optional shift b (N,)

Backward, from the cached â and 1/sqrt(σ² + eps):
    dâ = dy ⊙ g
    da = (dâ - mean(dâ) - â ⊙ mean(dâ ⊙ â)) / sqrt(σ² + eps)
    dg = Σ_rows dy ⊙ â,   db = Σ_rows dy

The layer-normalised cells use it on the gate pre-activations and on the LSTM's cell state
(rnnkit.layers.variant_steps); the shift of a normalised pre-activation is the layer's own bias.
"""
import numpy as np

EPS = 1e-5


def layer_norm(a, g, b=None, eps=EPS):
    """a (..., N) -> y (..., N), cache (â, 1/σ)."""
    N = a.shape[-1]
    d = a - a.sum(-1, keepdims=True) / N                               # (..., N)
    rstd = 1 / np.sqrt(np.einsum("...i,...i->...", d, d)[..., None] / N + eps)   # (..., 1)
    n = d * rstd                                                       # (..., N) â
    y = n * g                                                          # (..., N)
    if b is not None:
        y += b
    return y, (n, rstd)


def layer_norm_backward(dy, cache, g):
    """dy (..., N) -> da (..., N), dg (N,) summed over every row (db = Σ dy is the caller's)."""
    n, rstd = cache
    N = n.shape[-1]
    dn = dy * g                                                        # y = g â + b
    da = dn - dn.sum(-1, keepdims=True) / N
    da -= n * (np.einsum("...i,...i->...", dn, n)[..., None] / N)
    da *= rstd
    dg = (dy * n).reshape(-1, n.shape[-1]).sum(0)                      # (N,)
    return da, dg
