"""What a PyTorch user writes for rnnkit's layer-norm LSTM and minGRU: the benchmark's references.

PyTorch has neither layer, so the comparison is with the plain-PyTorch code one writes instead,
holding an rnnkit layer's weights (tests/test_bench_variants.py checks equal outputs and dX).

LN-LSTM (Ba et al. 2016; rnnkit.layers.variant_steps): nn.LayerNorm over all 4H pre-activations,
its weight the gain and its bias the layer's bias, and over c before its tanh; a Python time loop:
    AX  = LN_x(X W_x)                  once for all T steps      LN_x: gain g_x, shift b_x
    a_t = AX_t + LN_h(h_{t-1} W_h)                               LN_h: gain g_h, shift b_h
    i, f, g, o = σ, σ, tanh, σ of a_t's blocks;  c_t = f c_{t-1} + i g;  h_t = o tanh(LN_c(c_t))

minGRU (Feng et al. 2024, the log-space reference code; h_0 = 0, so the scan has no h_0 term):
    [k_z, k_h] = X W_x + b_x;  log a = -softplus(k_z);  log b = -softplus(-k_z) + log g(k_h)
    a* = cumsum(log a);  h = exp(a* + logcumsumexp(log b - a*))          over time, autograd backward
The scan runs in the input's dtype (rnnkit's runs in float64 whatever the layer's dtype).

Shapes are time-major, as rnnkit's: x (T, B, D) -> out (T, B, H). This module imports torch; only
the benchmark and the tests import it.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _t(a):
    """A NumPy array as a torch tensor (a copy, contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(a).copy())


class LayerNormLSTM(nn.Module):
    """One LN-LSTM layer as a Python loop over time; parameters as nn.Linear and nn.LayerNorm."""

    def __init__(self, D, H, dtype=torch.float32):
        super().__init__()
        self.H = H
        self.W_x = nn.Linear(D, 4 * H, bias=False, dtype=dtype)
        self.W_h = nn.Linear(H, 4 * H, bias=False, dtype=dtype)
        self.ln_x, self.ln_h = nn.LayerNorm(4 * H, dtype=dtype), nn.LayerNorm(4 * H, dtype=dtype)
        self.ln_c = nn.LayerNorm(H, dtype=dtype)

    def forward(self, x):
        """x (T, B, D) -> out (T, B, H), (h_T, c_T)."""
        B = x.shape[1]
        AX = self.ln_x(self.W_x(x))                                        # (T, B, 4H)
        h = c = x.new_zeros(B, self.H)                                     # (B, H)
        out = []
        for ax in AX.unbind(0):                   # one backward node for all steps (AX[t]: T of them)
            a = ax + self.ln_h(self.W_h(h))                                # (B, 4H)
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
            out.append(h)
        return torch.stack(out), (h, c)                                    # (T, B, H)


def log_g(k):
    """log g(k): log(k + 0.5) for k >= 0, log σ(k) below (the paper's positive activation)."""
    return torch.where(k >= 0, (F.relu(k) + 0.5).log(), -F.softplus(-k))


class MinGRU(nn.Module):
    """One minGRU layer, trained by the log-space parallel scan (Heinsen 2023), h_0 = 0."""

    def __init__(self, D, H, dtype=torch.float32):
        super().__init__()
        self.W_x = nn.Linear(D, 2 * H, dtype=dtype)                        # blocks [z, h]

    def forward(self, x):
        """x (T, B, D) -> out (T, B, H), h_T."""
        k_z, k_h = self.W_x(x).chunk(2, dim=-1)                            # (T, B, H) each
        log_a = -F.softplus(k_z)                                           # log(1 - z)
        log_b = -F.softplus(-k_z) + log_g(k_h)                             # log z + log g(k_h)
        a_star = log_a.cumsum(dim=0)                                       # (T, B, H)
        h = (a_star + (log_b - a_star).logcumsumexp(dim=0)).exp()          # (T, B, H)
        return h, h[-1]


def lnlstm_from(layer):
    """A LayerNormLSTM holding the weights of a one-layer rnnkit.LSTM(layer_norm=True)."""
    (_, _, unit), = layer.units()
    P = unit.params
    m = LayerNormLSTM(layer.input_size, layer.hidden_size, getattr(torch, np.dtype(layer.dtype).name))
    with torch.no_grad():
        m.W_x.weight.copy_(_t(P["W_x"].T))
        m.W_h.weight.copy_(_t(P["W_h"].T))
        m.ln_x.weight.copy_(_t(P["ln_x_g"]))
        m.ln_x.bias.copy_(_t(P["b_x"]))
        m.ln_h.weight.copy_(_t(P["ln_h_g"]))
        m.ln_h.bias.copy_(_t(P["b_h"]))
        m.ln_c.weight.copy_(_t(P["ln_c_g"]))
        m.ln_c.bias.copy_(_t(P["ln_c_b"]))
    return m


def mingru_from(layer):
    """A MinGRU holding the weights of a one-layer rnnkit.MinGRU."""
    (unit,) = layer.units()
    m = MinGRU(layer.input_size, layer.hidden_size, getattr(torch, np.dtype(layer.dtype).name))
    with torch.no_grad():
        m.W_x.weight.copy_(_t(unit.params["W_x"].T))
        m.W_x.bias.copy_(_t(unit.params["b_x"]))
    return m


FROM_RNNKIT = {"lnlstm": lnlstm_from, "mingru": mingru_from}


def reference(cell, layer):
    """The PyTorch reference of benchmark cell 'lnlstm' or 'mingru', with `layer`'s weights."""
    return FROM_RNNKIT[cell](layer)
