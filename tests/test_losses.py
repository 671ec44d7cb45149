"""Losses: values and gradients against torch, finite differences with masks, bad inputs."""
import numpy as np
import pytest

from rnnkit.errors import DTypeError, InputError, ShapeError
from rnnkit.gradcheck import gradcheck
from rnnkit.losses import cross_entropy, mse

T, B, V = 5, 3, 7


def _data(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.standard_normal((T, B, V))).astype(dtype)             # (T, B, V)
    targets = rng.integers(0, V, (T, B))                                     # (T, B)
    return logits, targets


def _torch_ce(logits, targets, **kw):
    torch = pytest.importorskip("torch")
    z = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(z.reshape(-1, V), torch.tensor(targets).reshape(-1), **kw)
    loss.backward()
    return loss.item(), z.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch(reduction):
    logits, targets = _data()
    loss, dlogits = cross_entropy(logits, targets, reduction=reduction)
    ref_loss, ref_grad = _torch_ce(logits, targets, reduction=reduction)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dlogits, ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_ignore_index_matches_torch(reduction, ignore_index):
    logits, targets = _data()
    targets[0, :] = ignore_index
    targets[3, 1] = ignore_index
    loss, dlogits = cross_entropy(logits, targets, ignore_index=ignore_index, reduction=reduction)
    ref_loss, ref_grad = _torch_ce(logits, targets, ignore_index=ignore_index, reduction=reduction)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dlogits, ref_grad, rtol=1e-10, atol=1e-14)
    assert not dlogits[0].any()


def test_cross_entropy_mask_and_batch_mean():
    logits, targets = _data()
    mask = np.ones((T, B), bool)
    mask[3:, 0] = False                                                      # sequence 0 has length 3
    mask[4:, 2] = False
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))             # (T, B, V)
    e = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]              # (T, B)
    for reduction, ref in [("sum", (e * mask).sum()), ("mean", (e * mask).sum() / mask.sum()),
                           ("batch_mean", (e * mask).sum() / B)]:
        loss, dlogits = cross_entropy(logits, targets, mask=mask.astype(np.int64), reduction=reduction)
        assert loss == pytest.approx(ref, rel=1e-12)
        assert not dlogits[3:, 0].any() and not dlogits[4:, 2].any()
        _, dsum = cross_entropy(logits, targets, mask=mask, reduction="sum")
        np.testing.assert_allclose(dlogits, dsum * (ref / (e * mask).sum()), rtol=1e-12)


def test_cross_entropy_batch_mean_of_1d_targets_is_mean():
    logits, targets = _data()
    loss, dlogits = cross_entropy(logits[0], targets[0], reduction="batch_mean")
    ref_loss, ref_grad = cross_entropy(logits[0], targets[0], reduction="mean")
    assert loss == pytest.approx(ref_loss) and np.allclose(dlogits, ref_grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "batch_mean"])
def test_cross_entropy_finite_differences_with_mask(reduction):
    logits, targets = _data(seed=1)
    mask = np.random.default_rng(2).random((T, B)) < 0.7                     # (T, B)
    targets[1, 1] = -1
    _, dlogits = cross_entropy(logits, targets, mask=mask, ignore_index=-1, reduction=reduction)
    f = lambda: cross_entropy(logits, targets, mask=mask, ignore_index=-1, reduction=reduction)[0]
    errs = gradcheck(f, {"logits": logits}, {"logits": dlogits})
    assert errs["logits"] < 1e-6


def test_cross_entropy_nothing_counts_gives_zero():
    logits, targets = _data()
    loss, dlogits = cross_entropy(logits, targets, mask=np.zeros((T, B)))
    assert loss == 0.0 and dlogits.shape == logits.shape and not dlogits.any()
    loss, dlogits = cross_entropy(logits, np.full((T, B), -100), ignore_index=-100)
    assert loss == 0.0 and not dlogits.any()


def test_cross_entropy_float32_stable_and_dtype():
    logits, targets = _data(np.float32)
    logits[0, 0] = 1e4                                                       # would overflow exp
    loss, dlogits = cross_entropy(logits, targets)
    assert dlogits.dtype == np.float32 and dlogits.shape == logits.shape
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    ref, _ = cross_entropy(logits.astype(np.float64), targets)
    assert loss == pytest.approx(ref, rel=1e-5)


def test_cross_entropy_single_position():
    z = np.array([1.0, 2.0, 3.0])
    loss, dz = cross_entropy(z, np.array(2))
    p = np.exp(z) / np.exp(z).sum()
    assert loss == pytest.approx(-np.log(p[2]))
    np.testing.assert_allclose(dz, p - np.eye(3)[2])


def test_cross_entropy_bad_inputs():
    logits, targets = _data()
    with pytest.raises(ShapeError, match=r"targets.*\(5, 3\).*\(3, 5\)"):
        cross_entropy(logits, targets.T)
    with pytest.raises(InputError, match=r"targets.*\[0, 6\].*max 7"):
        cross_entropy(logits, np.where(targets == 0, V, targets))
    with pytest.raises(InputError, match="targets"):
        cross_entropy(logits, np.where(targets == 0, -100, targets), ignore_index=-1)
    with pytest.raises(DTypeError, match="targets"):
        cross_entropy(logits, targets + 0.5)
    with pytest.raises(DTypeError, match="logits"):
        cross_entropy(targets[..., None], targets)
    with pytest.raises(InputError, match="reduction"):
        cross_entropy(logits, targets, reduction="avg")
    with pytest.raises(ShapeError, match="mask"):
        cross_entropy(logits, targets, mask=np.ones((T,)))
    with pytest.raises(InputError, match="mask"):
        cross_entropy(logits, targets, mask=np.full((T, B), 2))
    with pytest.raises(InputError, match="ignore_index"):
        cross_entropy(logits, targets, ignore_index=1.5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    pred, target = rng.standard_normal((2, T, B, 4))                         # (T, B, 4) each
    loss, dpred = mse(pred, target, reduction=reduction)
    p = torch.tensor(pred, requires_grad=True)
    ref = torch.nn.functional.mse_loss(p, torch.tensor(target), reduction=reduction)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dpred, p.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("mask_shape", [(T, B), (T, B, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "batch_mean"])
def test_mse_mask_finite_differences(mask_shape, reduction):
    rng = np.random.default_rng(4)
    pred, target = rng.standard_normal((2, T, B, 4))                         # (T, B, 4) each
    mask = rng.random(mask_shape) < 0.6
    loss, dpred = mse(pred, target, mask=mask, reduction=reduction)
    m = np.broadcast_to(mask.reshape(mask_shape + (1,) * (3 - len(mask_shape))), pred.shape)
    div = {"mean": m.sum(), "sum": 1, "batch_mean": B}[reduction]
    assert loss == pytest.approx(((pred - target) ** 2 * m).sum() / div, rel=1e-12)
    errs = gradcheck(lambda: mse(pred, target, mask=mask, reduction=reduction)[0], {"pred": pred},
                     {"pred": dpred})
    assert errs["pred"] < 1e-6


def test_mse_float32_and_bad_inputs():
    pred = np.ones((2, 3), np.float32)
    loss, dpred = mse(pred, np.zeros((2, 3)))
    assert loss == 1.0 and dpred.dtype == np.float32 and np.allclose(dpred, 2 / 6)
    assert mse(pred, pred, mask=np.zeros((2,)))[0] == 0.0
    with pytest.raises(ShapeError, match=r"target.*\(2, 3\).*\(3, 2\)"):
        mse(pred, np.zeros((3, 2)))
    with pytest.raises(DTypeError, match="pred"):
        mse(np.ones((2, 3), np.int64), np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="mask"):
        mse(pred, pred, mask=np.ones((3,)))
    with pytest.raises(InputError, match="reduction"):
        mse(pred, pred, reduction="none")
