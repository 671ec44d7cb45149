"""EmbeddingDropout: an Embedding that drops whole word types (Gal & Ghahramani 2016, §4.2).

    training:    m_v ~ Bernoulli(1 - p) for every row v of W (V, E), one mask per forward call
                 out = W[ids] ⊙ m[ids] / (1 - p)          a dropped word is zero wherever it occurs
    evaluation:  out = W[ids]                              (inverted scaling: nothing to undo)
    backward:    dW[v] += Σ_{ids = v} dout ⊙ m_v / (1 - p)

One mask for the whole batch, as in Merity et al. 2017 (AWD-LSTM's embedded_dropout). Masks come
from this module's generator `rng` (numpy default_rng([seed, 1]), apart from the weights').
"""
import numpy as np

from .._checks import check_real
from ..errors import InputError
from .basic import Embedding, _check_grad


class EmbeddingDropout(Embedding):
    """Embedding with dropout of whole rows (word types): Embedding's contract plus `dropout`."""

    def __init__(self, num_embeddings, embedding_dim, dropout=0.0, dtype=np.float32, seed=0,
                 padding_idx=None):
        super().__init__(num_embeddings, embedding_dim, dtype=dtype, seed=seed, padding_idx=padding_idx)
        self.p = check_real("dropout", dropout, 0.0, 1.0)
        if self.p >= 1:
            raise InputError(f"dropout: expected a probability in [0, 1), got {dropout}")
        self.set_config(num_embeddings=num_embeddings, embedding_dim=embedding_dim, dropout=self.p,
                        dtype=dtype, seed=seed, padding_idx=padding_idx)
        self.rng = np.random.default_rng([seed, 1])

    def forward(self, ids):
        """ids (...) -> out (..., E), cache (ids, or (ids, row scale (V,)) when rows were dropped)."""
        out, ids = super().forward(ids)
        if not self.training or self.p == 0:
            return out, ids
        scale = ((self.rng.random(self.V) >= self.p) / (1 - self.p)).astype(self.dtype)   # (V,)
        return out * scale[ids][..., None], (ids, scale)

    def backward(self, dout, cache):
        """dout (..., E) -> None; adds dW with the rows' scale of the forward call."""
        if isinstance(cache, tuple) and len(cache) == 2:
            ids, scale = cache
            dout = _check_grad("dout", dout, ids.shape + (self.E,), self.dtype)
            return super().backward(dout * scale[ids][..., None], ids)
        return super().backward(dout, cache)
