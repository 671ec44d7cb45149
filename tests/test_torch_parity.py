"""rnnkit's RNN, LSTM and GRU against torch.nn with the same weights: outputs, states and every gradient."""
import itertools

import numpy as np
import pytest

import rnnkit

torch = pytest.importorskip("torch")

CONFIGS = [  # (rnnkit class, torch class, kwargs)
    (rnnkit.RNN, torch.nn.RNN, dict(nonlinearity="tanh")),
    (rnnkit.RNN, torch.nn.RNN, dict(nonlinearity="relu")),
    (rnnkit.LSTM, torch.nn.LSTM, {}),
    (rnnkit.LSTM, torch.nn.LSTM, dict(proj_size=3)),
    (rnnkit.GRU, torch.nn.GRU, {}),
]
T, B, D, H = 6, 4, 5, 7


def run_both(ours_cls, torch_cls, kw, num_layers, bidirectional, use_lengths, dtype, kernels, seed=0):
    """Forward and backward through both with one set of weights; return pairs to compare."""
    rng = np.random.default_rng(seed)
    ours = ours_cls(D, H, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype,
                    seed=seed, kernels=kernels, **kw)
    theirs = torch_cls(D, H, num_layers=num_layers, bidirectional=bidirectional, **kw)
    theirs = theirs.double() if dtype == np.float64 else theirs.float()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.torch_state_dict().items()})
    lstm = ours_cls is rnnkit.LSTM
    n, H_out = num_layers * (2 if bidirectional else 1), kw.get("proj_size") or H
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((n, B, H_out)).astype(dtype)
    c0 = rng.standard_normal((n, B, H)).astype(dtype)
    lengths = np.array([T, 2, 5, 1]) if use_lengths else None
    state = (h0, c0) if lstm else h0

    out, st, cache = ours.forward(x, state, lengths)
    G = rng.standard_normal(out.shape).astype(dtype)
    if lengths is not None:
        G *= (np.arange(T)[:, None] < lengths)[:, :, None]   # padded outputs are constants
    Gs = tuple(rng.standard_normal(s.shape).astype(dtype) for s in (st if lstm else (st,)))
    dx, dstate = ours.backward(G, cache, Gs if lstm else Gs[0])

    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    inp = tx
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    tout, tst = theirs(inp, (th0, tc0) if lstm else th0)
    if lengths is not None:
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(tout, total_length=T)
    tst = tst if lstm else (tst,)
    loss = (tout * torch.from_numpy(G)).sum() + sum((s * torch.from_numpy(g)).sum() for s, g in zip(tst, Gs))
    loss.backward()

    pairs = [("out", out, tout), ("dx", dx, tx.grad), ("dh0", dstate[0] if lstm else dstate, th0.grad)]
    pairs += [(f"state{i}", s, t) for i, (s, t) in enumerate(zip(st if lstm else (st,), tst))]
    if lstm:
        pairs.append(("dc0", dstate[1], tc0.grad))
    grads = ours.torch_state_dict(grads=True)
    pairs += [(f"grad {k}", grads[k], p.grad) for k, p in theirs.named_parameters()]
    return [(name, a, b.detach().numpy()) for name, a, b in pairs]


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("num_layers,bidirectional,use_lengths",
                         list(itertools.product([1, 2], [False, True], [False, True])))
def test_float64_parity(cfg, num_layers, bidirectional, use_lengths):
    ours_cls, torch_cls, kw = CONFIGS[cfg]
    for kernels in ("numpy", "numba"):
        for name, a, b in run_both(ours_cls, torch_cls, kw, num_layers, bidirectional, use_lengths,
                                   np.float64, kernels):
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11, err_msg=f"{kernels}: {name}")


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_float32_default_path_parity(cfg):
    ours_cls, torch_cls, kw = CONFIGS[cfg]
    for name, a, b in run_both(ours_cls, torch_cls, kw, 2, True, True, np.float32, None, seed=1):
        assert a.dtype == np.float32, name
        scale = np.abs(b).max() + 1e-30
        assert np.abs(a - b).max() <= 1e-4 * scale, name


def test_batch_first_matches_torch():
    ours = rnnkit.GRU(D, H, batch_first=True, dtype=np.float64)
    theirs = torch.nn.GRU(D, H, batch_first=True).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.torch_state_dict().items()})
    x = np.random.default_rng(3).standard_normal((B, T, D))
    out, h = ours(x)
    tout, th = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(h, th.detach().numpy(), rtol=1e-10)


def test_state_dict_round_trip_from_torch():
    theirs = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True, proj_size=3)
    ours = rnnkit.LSTM(D, H, num_layers=2, bidirectional=True, proj_size=3)
    ours.load_torch_state_dict(theirs.state_dict())
    back = ours.torch_state_dict()
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(back[k], v.numpy())
