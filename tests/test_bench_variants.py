"""The benchmark's PyTorch references (rnnkit.bench_torch_variants) compute what rnnkit's layers do:
the same outputs and dX in float64 on the same weights, so the benchmark compares equal work."""
import numpy as np
import pytest

import rnnkit

torch = pytest.importorskip("torch")
from rnnkit.bench_torch_variants import reference  # noqa: E402  (needs torch)

T, B, D, H = 6, 3, 4, 5


@pytest.mark.parametrize("cell", ["lnlstm", "mingru"])
def test_reference_matches_rnnkit_forward_and_dx(cell):
    layer = (rnnkit.LSTM(D, H, layer_norm=True, dtype=np.float64, seed=1) if cell == "lnlstm"
             else rnnkit.MinGRU(D, H, dtype=np.float64, seed=1))
    rng = np.random.default_rng(0)
    for _, P, _ in layer.named_parameters():       # move gains and shifts off their 1 / 0 start
        P += 0.1 * rng.standard_normal(P.shape)
    x = rng.standard_normal((T, B, D))                                      # (T, B, D)
    dout = rng.standard_normal((T, B, H))                                   # (T, B, H)
    out, _, cache = layer.forward(x)
    dx, _ = layer.backward(dout, cache)
    tx = torch.from_numpy(x).requires_grad_(True)
    tout, _ = reference(cell, layer)(tx)
    (tout * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(tout.detach().numpy(), out, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(tx.grad.numpy(), dx, rtol=1e-8, atol=1e-10)
