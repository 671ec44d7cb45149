"""A plug-in cell: the coupled input-forget gate LSTM (CIFG; Greff et al. 2017, "LSTM: A Search
Space Odyssey"), whose forget gate is f = 1 - i, written as two NumPy functions.

    a = x W_x + h_{t-1} W_h + b = [a_i | a_g | a_o]        (B, 3H): three gate blocks
    i = σ(a_i),  g = tanh(a_g),  o = σ(a_o)
    c_t = (1 - i) ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

rnnkit.Cell registers it as "cifg"; rnnkit.CellRNN runs it stacked, bidirectional, with lengths,
carried state (truncated BPTT) and every option of the built-in layers. Run:

    python examples/plugin_cifg.py
"""
import numpy as np

import rnnkit
from rnnkit.functional import sigmoid


def cifg_gates(a, rest):
    """a (B, 3H), rest = (c_prev,) -> h (B, H), (c,), cache."""
    c_prev, = rest
    H = c_prev.shape[1]
    i, g, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:])
    c = (1 - i) * c_prev + i * g
    tc = np.tanh(c)
    return o * tc, (c,), (i, g, o, c_prev, tc)


def cifg_gates_backward(dh, drest, cache):
    """dh (B, H), drest = (dc,) -> da (B, 3H), (dc_prev,)."""
    i, g, o, c_prev, tc = cache
    da_o = dh * tc * o * (1 - o)                   # h = o tanh(c)
    dc = drest[0] + dh * o * (1 - tc * tc)
    da_i = dc * (g - c_prev) * i * (1 - i)         # c = (1 - i) c_prev + i g
    da_g = dc * i * (1 - g * g)
    return np.concatenate([da_i, da_g, da_o], axis=1), (dc * (1 - i),)


CIFG = rnnkit.Cell("cifg", n_gates=3, n_extra_states=1, gates=cifg_gates, gates_backward=cifg_gates_backward)


def main(T=20, B=16, D=4, H=16, steps=100, seed=0):
    """Check the cell's backward, fit a 2-layer bidirectional CIFG to a running sum -> the losses."""
    print("cell gradient check, max error:", max(CIFG.gradcheck().values()))
    rng = np.random.default_rng(seed)
    net = rnnkit.CellRNN("cifg", D, H, num_layers=2, bidirectional=True, seed=seed)
    head = rnnkit.Linear(2 * H, 1, seed=seed)
    opt = rnnkit.optim.Adam([*net.named_parameters("rnn."), *head.named_parameters("head.")], lr=0.01)
    losses = []
    for step in range(steps):
        x = rng.standard_normal((T, B, D)).astype(np.float32)         # (T, B, D)
        y = np.cumsum(x[..., :1], axis=0) / np.float32(np.sqrt(T))     # (T, B, 1) target
        lengths = rng.integers(T // 2, T + 1, size=B)                  # (B,)
        real = (np.arange(T)[:, None] < lengths)[..., None]           # (T, B, 1)
        n = float(real.sum())
        net.zero_grad()
        head.zero_grad()
        h, state, cache = net.forward(x, None, lengths)
        pred, hcache = head.forward(h)
        err = (pred - y) * real
        losses.append(float(np.sum(err ** 2)) / n)
        net.backward(head.backward((2 / n) * err, hcache), cache)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
    return losses


if __name__ == "__main__":
    main()
