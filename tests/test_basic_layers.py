"""Linear, Embedding, Dropout: parity with torch, finite differences, masks, bad inputs."""
import numpy as np
import pytest

from rnnkit.errors import DTypeError, InputError, ShapeError, StateDictError
from rnnkit.gradcheck import check_module
from rnnkit.layers.basic import Dropout, Embedding, Linear

T, B, D, H, V = 4, 3, 5, 6, 9


def _rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- Linear ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    torch = pytest.importorskip("torch")
    lin = Linear(D, H, bias=bias, dtype=np.float64, seed=1)
    ref = torch.nn.Linear(D, H, bias=bias, dtype=torch.float64)
    ref.load_state_dict({k: torch.tensor(v) for k, v in lin.torch_state_dict().items()})
    x, dy = _rand(T, B, D, seed=2), _rand(T, B, H, seed=3)
    y, cache = lin.forward(x)
    dx = lin.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    grads = lin.torch_state_dict(grads=True)
    np.testing.assert_allclose(grads["weight"], ref.weight.grad.numpy(), rtol=1e-12)
    if bias:
        np.testing.assert_allclose(grads["bias"], ref.bias.grad.numpy(), rtol=1e-12)
    else:
        assert set(grads) == {"weight"}


def test_linear_load_torch_state_dict():
    torch = pytest.importorskip("torch")
    ref = torch.nn.Linear(D, H)
    lin = Linear(D, H)
    W = lin.W
    lin.load_torch_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert lin.W is W                                                        # updated in place
    x = _rand(B, D, dtype=np.float32)
    np.testing.assert_allclose(lin(x), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_linear_state_dict_errors():
    lin = Linear(D, H)
    sd = lin.torch_state_dict()
    with pytest.raises(StateDictError, match=r"missing keys \['bias'\]"):
        lin.load_torch_state_dict({"weight": sd["weight"]})
    with pytest.raises(StateDictError, match=r"unexpected keys \['extra'\]"):
        lin.load_torch_state_dict({**sd, "extra": sd["bias"]})
    with pytest.raises(StateDictError, match=r"weight.*\(6, 5\).*\(5, 6\)"):
        lin.load_torch_state_dict({**sd, "weight": sd["weight"].T})


def test_linear_init_like_torch():
    lin = Linear(100, 50, seed=0)
    bound = 1 / np.sqrt(100)
    assert lin.W.shape == (100, 50) and lin.b.shape == (50,) and lin.W.dtype == np.float32
    assert np.abs(lin.W).max() <= bound and np.abs(lin.b).max() <= bound
    assert lin.W.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert np.array_equal(Linear(100, 50, seed=0).W, lin.W)
    assert not np.array_equal(Linear(100, 50, seed=1).W, lin.W)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias):
    lin = Linear(D, H, bias=bias, dtype=np.float64, seed=4)
    errs = check_module(lin, lambda m, x: m.forward(x),
                        lambda m, d, cache: {"x": m.backward(d[0], cache)},
                        {"x": _rand(T, B, D, seed=5)})
    assert set(errs) == ({"W", "b", "x"} if bias else {"W", "x"})


def test_linear_backward_accumulates_and_any_leading_shape():
    lin = Linear(D, H, dtype=np.float64)
    x = _rand(2, T, B, D)
    y, cache = lin.forward(x)
    assert y.shape == (2, T, B, H)
    dy = _rand(2, T, B, H, seed=1)
    lin.backward(dy, cache)
    once = lin.grads["W"].copy()
    lin.backward(dy, cache)
    np.testing.assert_allclose(lin.grads["W"], 2 * once)
    np.testing.assert_allclose(once, x.reshape(-1, D).T @ dy.reshape(-1, H))
    assert lin.forward(x[0, 0, 0])[0].shape == (H,)                            # a single vector


def test_linear_bad_inputs():
    lin = Linear(D, H)
    with pytest.raises(DTypeError, match=r"x.*float32.*float64"):
        lin.forward(np.zeros((B, D)))
    with pytest.raises(ShapeError, match=r"x.*\(\.\.\., 5\).*\(3, 4\)"):
        lin.forward(np.zeros((B, 4), np.float32))
    _, cache = lin.forward(np.zeros((B, D), np.float32))
    with pytest.raises(ShapeError, match="dy"):
        lin.backward(np.zeros((B, D), np.float32), cache)
    with pytest.raises(InputError, match="in_features"):
        Linear(0, H)
    with pytest.raises(DTypeError, match="dtype"):
        Linear(D, H, dtype=np.int32)


# -- Embedding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_matches_torch(padding_idx):
    torch = pytest.importorskip("torch")
    emb = Embedding(V, D, dtype=np.float64, seed=1, padding_idx=padding_idx)
    ref = torch.nn.Embedding(V, D, padding_idx=padding_idx, dtype=torch.float64)
    ref.load_state_dict({"weight": torch.tensor(emb.torch_state_dict()["weight"])})
    ids = np.array([[0, 3, 3], [8, 0, 3], [3, 1, 1], [2, 3, 0]])             # (T, B), repeated ids
    dout = _rand(T, B, D, seed=2)
    out, cache = emb.forward(ids)
    assert emb.backward(dout, cache) is None
    out_t = ref(torch.tensor(ids))
    out_t.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(emb.grads["W"], ref.weight.grad.numpy(), rtol=1e-12, atol=1e-15)
    if padding_idx is not None:
        assert not emb.grads["W"][padding_idx].any()


def test_embedding_repeated_ids_scatter_add():
    emb = Embedding(V, D, dtype=np.float64)
    ids = np.random.default_rng(0).integers(0, 3, (T, B))                     # many repeats
    dout = _rand(T, B, D, seed=1)
    expected = np.zeros((V, D))
    np.add.at(expected, ids.reshape(-1), dout.reshape(-1, D))
    _, cache = emb.forward(ids)
    emb.backward(dout, cache)
    emb.backward(dout, cache)
    np.testing.assert_allclose(emb.grads["W"], 2 * expected, rtol=1e-12)
    errs = check_module(emb, lambda m: m.forward(ids), lambda m, d, cache: m.backward(d[0], cache), {})
    assert set(errs) == {"W"}


def test_embedding_init_and_state_dict():
    emb = Embedding(1000, 8, seed=0, padding_idx=5)
    assert emb.W.dtype == np.float32 and emb.W.shape == (1000, 8)
    assert not emb.W[5].any()
    assert emb.W.std() == pytest.approx(1.0, rel=0.05) and abs(emb.W.mean()) < 0.05
    sd = {"weight": np.ones((1000, 8))}
    emb.load_torch_state_dict(sd)
    assert (emb.W == 1).all()
    with pytest.raises(StateDictError, match=r"weight.*\(1000, 8\).*\(8, 1000\)"):
        emb.load_torch_state_dict({"weight": np.ones((8, 1000))})


def test_embedding_bad_inputs():
    emb = Embedding(V, D)
    with pytest.raises(InputError, match=r"ids.*\[0, 8\].*max 9"):
        emb.forward(np.array([1, V]))
    with pytest.raises(InputError, match="ids"):
        emb.forward(np.array([-1, 2]))
    with pytest.raises(DTypeError, match="ids"):
        emb.forward(np.array([0.5, 1.0]))
    _, cache = emb.forward(np.array([1, 2]))
    with pytest.raises(ShapeError, match="dout"):
        emb.backward(np.zeros((3, D), np.float32), cache)
    with pytest.raises(InputError, match="padding_idx"):
        Embedding(V, D, padding_idx=V)


# -- Dropout --------------------------------------------------------------------------------------
def test_dropout_eval_is_identity():
    drop = Dropout(0.5).eval()
    x = _rand(T, B, D, dtype=np.float32)
    y, cache = drop.forward(x)
    assert cache is None and np.array_equal(y, x)
    dy = _rand(T, B, D, seed=1, dtype=np.float32)
    assert np.array_equal(drop.backward(dy, cache), dy)
    assert np.array_equal(Dropout(0.0).forward(x)[0], x)


def test_dropout_train_scales_and_backward_uses_mask():
    p = 0.3
    drop = Dropout(p, seed=7)
    x = np.ones((200, 100), np.float32)
    y, mask = drop.forward(x)
    assert y.dtype == np.float32
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - p, abs=0.02)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    assert y.mean() == pytest.approx(1.0, abs=0.03)                         # expectation preserved
    dy = _rand(200, 100, seed=1, dtype=np.float32)
    dx = drop.backward(dy, mask)
    np.testing.assert_allclose(dx, dy * y, rtol=1e-6)                        # the same mask as forward
    y2, _ = drop.forward(x)
    assert not np.array_equal(y, y2)                                          # a fresh mask per call
    assert np.array_equal(Dropout(p, seed=7).forward(x)[0], y)               # seeded


def test_dropout_bad_inputs():
    for p in (1.0, -0.1, 2):
        with pytest.raises(InputError, match="p"):
            Dropout(p)
    with pytest.raises(DTypeError, match="x"):
        Dropout(0.5).forward(np.ones(3, np.int64))
    drop = Dropout(0.5)
    _, mask = drop.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="dy"):
        drop.backward(np.ones((3, 2)), mask)
