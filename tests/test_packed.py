"""kernels.packed: the product with a packed W against NumPy's, over every edge of the blocking."""
import numpy as np
import pytest

from rnnkit import kernels as K

pytestmark = pytest.mark.skipif(not K.available(), reason="numba is not installed")

if K.available():
    from numba.core.errors import TypingError

    from rnnkit.kernels import packed


# rows: 0, below one 4-row block, blocks plus 1-3 leftover rows; columns: under one panel, whole
# panels, a partial last panel; K = 1 and odd K (the one-row kernel's odd tail)
SHAPES = [(0, 5, 16), (1, 1, 1), (1, 3, 16), (3, 7, 13), (4, 1, 8), (5, 33, 40), (6, 130, 390),
          (9, 64, 256), (17, 31, 100), (32, 128, 512)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
def test_matmul_equals_numpy(shape, dtype):
    M, K_, N = shape
    rng = np.random.default_rng(M * 1000 + N)
    x = rng.standard_normal((M, K_)).astype(dtype)
    W = rng.standard_normal((K_, N)).astype(dtype)
    out = np.full((M, N), np.nan, dtype)             # every element must be written
    packed.matmul(x, packed.pack(W), out)
    ref = x.astype(np.float64) @ W.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert np.abs(out - ref).max(initial=0) <= tol * max(1.0, np.abs(ref).max(initial=0)) * np.sqrt(K_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_layout_and_transposed_views(dtype):
    """Wp[p, k, j] = W[k, p P + j], zeros past the last column, the same from a transposed view."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((7, 21)).astype(dtype)
    P = packed.panel_width(dtype)
    Wp = packed.pack(W)
    assert Wp.shape == (-(-21 // P), 7, P) and Wp.dtype == dtype
    padded = np.zeros((7, Wp.shape[0] * P), dtype)
    padded[:, :21] = W
    assert np.array_equal(Wp, padded.reshape(7, -1, P).transpose(1, 0, 2))
    Wt = np.ascontiguousarray(W.T)                   # (21, 7): Wt.T is a transposed view of W
    assert np.array_equal(packed.pack(Wt.T), Wp)
    assert np.array_equal(packed.pack(W[:, ::-1][:, ::-1]), Wp)   # any other view: copied first


def test_mismatched_shapes_raise():
    x = np.ones((4, 8), np.float32)
    Wp = packed.pack(np.ones((8, 32), np.float32))
    with pytest.raises(ValueError, match="shapes"):
        packed.matmul(x, Wp, np.empty((4, 48), np.float32))        # N does not match the panels
    with pytest.raises(ValueError, match="shapes"):
        packed.matmul(np.ones((4, 9), np.float32), Wp, np.empty((4, 32), np.float32))
    with pytest.raises(ValueError, match="shapes"):
        packed.matmul(x, Wp, np.empty((5, 32), np.float32))


def test_non_contiguous_or_mixed_arrays_are_refused_at_compile_time():
    """The intrinsics read flat offsets: a strided view or a second dtype must not compile."""
    Wp = packed.pack(np.ones((8, 16), np.float32))
    with pytest.raises(TypingError):
        packed.matmul(np.ones((4, 16), np.float32)[:, ::2], Wp, np.empty((4, 16), np.float32))
    with pytest.raises(TypingError):
        packed.matmul(np.ones((4, 8), np.float64), Wp, np.empty((4, 16), np.float32))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(0, 4, 16), (5, 3, 7), (64, 9, 16), (65, 9, 16), (300, 33, 100)])
def test_matmul_rows_equals_numpy(shape, threads):
    """Row blocks of 64 shared among threads: blocks that do not divide the rows, more threads than blocks."""
    M, K_, N = shape
    rng = np.random.default_rng(M + K_)
    x = rng.standard_normal((M, K_)).astype(np.float32)
    W = rng.standard_normal((K_, N)).astype(np.float32)
    out = np.full((M, N), np.nan, np.float32)
    packed.matmul_rows(x, packed.pack(W), out, threads)
    np.testing.assert_allclose(out, x @ W, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_sequence_product_takes_either_route_with_the_same_result(monkeypatch, threads):
    from rnnkit.kernels import sequence
    rng = np.random.default_rng(1)
    monkeypatch.setattr(packed, "threads", lambda: threads)
    for K_, N in ((64, 40), (40, 300), (300, 300)):
        x = rng.standard_normal((600, K_)).astype(np.float32)
        W = rng.standard_normal((K_, N)).astype(np.float32)
        np.testing.assert_allclose(sequence.product(x, W), x @ W, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(sequence.product(x[:10], W), x[:10] @ W, rtol=1e-5, atol=1e-4)
        Wt = np.ascontiguousarray(W.T)
        np.testing.assert_allclose(sequence.product(x, Wt.T), x @ W, rtol=1e-5, atol=1e-4)
