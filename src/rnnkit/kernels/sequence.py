"""Fused whole-sequence forward and backward of one layer: RNN, LSTM and GRU (reset_after).

The same computation as the reference unroll (rnnkit.layers.recurrent with layers.steps; the
tests assert equality), arranged so that the matrix products do nearly all the work:

    AX = X W_x + b                  one GEMM; b = b_x + b_h (GRU: b_hn stays in the step)
    for t: A_h = h_{t-1} W_h        into one preallocated (B, G*H) buffer, by a product with
                                    W_h packed once per sequence (kernels.packed)
           kernel(AX[t], A_h, ...)  writes h_t into out[t], the state, and the activated gates
                                    over AX[t]: that array is the cache, no copies
    for t = T-1 .. 0: kernel writes dA_t into dA[t]; then dh = dA_t W_h^T into a buffer
                      (W_h^T packed once per backward)
    dW_h = H_prev^T dA with H_prev = [h_0; out[:T-1]] (two GEMMs, no stacking),
    dW_x = X^T dA, db = Σ dA, dX = dA W_x^T

Steps with fewer than SMALL_WORK multiply-adds in h W_h (B H_out G H) run the whole time loop
inside numba (seqloops), where Python's per-step overhead would dominate. No sequence lengths
(masks), no LSTM projection and no Cho-form GRU here: those take the reference unroll.
"""
import numpy as np

from . import cellkernels as K
from . import packed
from . import seqloops as S
from . import threaded

SMALL_WORK = 1 << 19        # h W_h multiply-adds per step below which the loop runs in numba
PACK_MIN_STEPS = 8          # packing W costs 1-3 products: below this many steps, BLAS multiplies
PACK_MIN_ROWS = 512         # the input projection and dX of fewer rows (T B) go to BLAS


def fused_runner(mode, nonlinearity="tanh", reset_after=True, peepholes=False, proj=False):
    """The fused runner for a layer's options, or None where only the reference unroll applies."""
    if mode == "rnn":
        return RNNFused(nonlinearity)
    if mode == "lstm" and not proj:
        return LSTMFused(peepholes)
    if mode == "gru" and reset_after:
        return GRUFused()
    return None


def _small(B, H_out, GH):
    return B * H_out * GH < SMALL_WORK


def step_product(W, steps):
    """mul(h, out): out = h W, for `steps` products by the same W.

    W packed once and multiplied by kernels.packed on packed.threads() threads, or NumPy's BLAS
    when too few steps pay for the packing (W copied contiguous: at H = 1024 one thread
    multiplied by a contiguous W_h^T up to 20% faster than by the view).
    """
    if steps >= PACK_MIN_STEPS:
        Wp, n = packed.pack(W), packed.threads()
        if n > 1:                                      # and the step kernels split rows too
            return lambda h, out: packed.matmul_threads(h, Wp, out, n)
        return lambda h, out: packed.matmul(h, Wp, out)
    W = np.ascontiguousarray(W)
    return lambda h, out: np.matmul(h, W, out=out)


def _split(serial, rowsplit, n):
    """The step kernel `serial`, or with n > 1 threads its form in kernels.threaded (rows split)."""
    return serial if n <= 1 else (lambda *args: rowsplit(n, *args))


def _contiguous(*arrays):
    return [np.ascontiguousarray(a) for a in arrays]


def product(x, W):
    """x W for a whole sequence's rows x (M, K): NumPy's BLAS, or kernels.packed's matmul_rows where
    it was faster (M = 3200-6400 rows, one AMD EPYC core or two): N <= 256 (1.05-1.3x on one
    thread, 1.6-2.3x on two) and, on two threads, K <= 256 (1.5-1.6x). OpenBLAS kept the lead
    elsewhere (on two threads at K = 512 by 5-15%, on one at K, N >= 256 by up to 15%)."""
    M, (K, N), n = x.shape[0], W.shape, packed.threads()
    if M < PACK_MIN_ROWS or not (N <= 256 or (n > 1 and K <= 256)):
        return x @ W
    out = np.empty((M, N), x.dtype)                                 # (M, N)
    packed.matmul_rows(np.ascontiguousarray(x), packed.pack(W), out, n)
    return out


def input_projection(P, x, b):
    """AX = x W_x + b: (T, B, D) -> (T, B, G*H), one GEMM."""
    T, B, D = x.shape
    AX = product(x.reshape(T * B, D), P["W_x"])                    # (T*B, G*H)
    AX += b
    return AX.reshape(T, B, b.shape[0])


def weight_grads(P, G, x, h0, out, dAX, dAH):
    """Add dW_x, db_x, dW_h, db_h (GEMMs over all T*B rows) and return dX (T, B, D)."""
    T, B, D = x.shape
    dAXr, dAHr = dAX.reshape(T * B, dAX.shape[-1]), dAH.reshape(T * B, dAH.shape[-1])  # (T*B, G*H)
    G["W_x"] += x.reshape(T * B, D).T @ dAXr
    db = dAXr.sum(0)                                               # (G*H,)
    G["b_x"] += db
    G["b_h"] += db if dAH is dAX else dAHr.sum(0)
    G["W_h"] += h0.T @ dAH[0]                                      # H_prev = [h_0; out[:T-1]]
    if T > 1:
        G["W_h"] += out[:-1].reshape((T - 1) * B, out.shape[-1]).T @ dAHr[B:]
    return product(dAXr, P["W_x"].T).reshape(T, B, D)


class RNNFused:
    """h_t = f(x_t W_x + h_{t-1} W_h + b)."""

    def __init__(self, nonlinearity):
        self.kind = K._NL[nonlinearity]

    def forward(self, P, x, state, need_cache):
        """x (T, B, D), state (h0,) -> out (T, B, H), (h_T,), cache."""
        h0, = _contiguous(*state)
        AX = input_projection(P, x, P["b_x"] + P["b_h"])          # (T, B, H)
        T, B, H = AX.shape
        out = np.empty_like(AX)                                    # (T, B, H)
        if _small(B, H, H):
            S.rnn_forward(AX, P["W_h"], h0, self.kind, out)
        else:
            ah, h, mul = np.empty_like(h0), h0, step_product(P["W_h"], T)   # (B, H)
            step = _split(K.rnn_fwd, threaded.rnn_fwd, min(packed.threads(), B))
            for t in range(T):
                mul(h, ah)
                step(AX[t], ah, self.kind, out[t])
                h = out[t]
        return out, (out[-1].copy(),), (x, h0, out) if need_cache else None

    def backward(self, P, G, dout, dstate, cache):
        """dout (T, B, H), dstate (dh_T,) -> dx (T, B, D), (dh_0,); adds parameter gradients."""
        x, h0, out = cache
        dout, g = _contiguous(dout, dstate[0].copy())
        dA = np.empty_like(out)                                    # (T, B, H)
        T, B, H = out.shape
        if _small(B, H, H):
            S.rnn_backward(dout, g, out, np.ascontiguousarray(P["W_h"].T), self.kind, dA)
        else:
            mul = step_product(P["W_h"].T, T)                      # dh = dA_t W_h^T
            step = _split(K.rnn_bwd, threaded.rnn_bwd, min(packed.threads(), B))
            for t in reversed(range(T)):
                step(dout[t], g, out[t], self.kind, dA[t])
                mul(dA[t], g)
        return weight_grads(P, G, x, h0, out, dA, dA), (g,)


class LSTMFused:
    """LSTM with optional peepholes; the cache keeps i, f, g, o (over AX) and c for every step."""

    def __init__(self, peepholes):
        self.peepholes = peepholes

    def forward(self, P, x, state, need_cache):
        """x (T, B, D), state (h0, c0) -> out (T, B, H), (h_T, c_T), cache."""
        h0, c0 = _contiguous(*state)
        peep = P["p"] if self.peepholes else None
        AX = input_projection(P, x, P["b_x"] + P["b_h"])          # (T, B, 4H)
        T, B, H = AX.shape[0], c0.shape[0], c0.shape[1]
        out, C = np.empty((T, B, H), x.dtype), np.empty((T, B, H), x.dtype)   # (T, B, H)
        if _small(B, H, 4 * H):
            S.lstm_forward(AX, P["W_h"], h0, c0, peep, out, C)
        else:
            ah, h, c, mul = np.empty_like(AX[0]), h0, c0, step_product(P["W_h"], T)   # (B, 4H)
            step = _split(K.lstm_fwd, threaded.lstm_fwd, min(packed.threads(), B))
            for t in range(T):
                mul(h, ah)
                step(AX[t], ah, c, peep, out[t], C[t])
                h, c = out[t], C[t]
        cache = (x, h0, c0, AX, C, out) if need_cache else None
        return out, (out[-1].copy(), C[-1].copy()), cache

    def backward(self, P, G, dout, dstate, cache):
        """dout (T, B, H), dstate (dh_T, dc_T) -> dx, (dh_0, dc_0); adds parameter gradients."""
        x, h0, c0, ACT, C, out = cache
        dout, g, dc = _contiguous(dout, dstate[0].copy(), dstate[1].copy())
        peep = P["p"] if self.peepholes else None
        dpeep = np.zeros_like(peep) if self.peepholes else None   # (3, H)
        dA = np.empty_like(ACT)                                    # (T, B, 4H)
        T, B, H = out.shape
        if _small(B, H, 4 * H):
            S.lstm_backward(dout, g, dc, ACT, C, c0, np.ascontiguousarray(P["W_h"].T), peep, dA, dpeep)
        else:
            mul = step_product(P["W_h"].T, T)                      # dh = dA_t W_h^T
            n = 1 if self.peepholes else min(packed.threads(), B)   # one dpeep sum: one thread
            step = _split(K.lstm_bwd, lambda n, dm, dm2, dc, act, cp, c, peep, da, dpeep:
                          threaded.lstm_bwd(n, dm, dm2, dc, act, cp, c, da), n)
            for t in reversed(range(T)):
                step(dout[t], g, dc, ACT[t], C[t - 1] if t else c0, C[t], peep, dA[t], dpeep)
                mul(dA[t], g)
        if self.peepholes:
            G["p"] += dpeep
        return weight_grads(P, G, x, h0, out, dA, dA), (g, dc)


class GRUFused:
    """GRU, reset_after form; b_hr, b_hz fold into AX, b_hn is added in the step (inside r *)."""

    def forward(self, P, x, state, need_cache):
        """x (T, B, D), state (h0,) -> out (T, B, H), (h_T,), cache."""
        h0, = _contiguous(*state)
        T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
        b = P["b_x"].copy()                                        # (3H,)
        b[:2 * H] += P["b_h"][:2 * H]                              # b_hr, b_hz fold into AX
        AX = input_projection(P, x, b)                             # (T, B, 3H)
        b_hn = np.ascontiguousarray(P["b_h"][2 * H:])              # (H,)
        out, AHn = np.empty((T, B, H), x.dtype), np.empty((T, B, H), x.dtype)   # (T, B, H)
        if _small(B, H, 3 * H):
            S.gru_forward(AX, P["W_h"], b_hn, h0, out, AHn)
        else:
            ah, h, mul = np.empty_like(AX[0]), h0, step_product(P["W_h"], T)   # (B, 3H)
            step = _split(K.gru_fwd, threaded.gru_fwd, min(packed.threads(), B))
            for t in range(T):
                mul(h, ah)
                step(AX[t], ah, b_hn, h, out[t], AHn[t])
                h = out[t]
        return out, (out[-1].copy(),), (x, h0, AX, AHn, out) if need_cache else None

    def backward(self, P, G, dout, dstate, cache):
        """dout (T, B, H), dstate (dh_T,) -> dx (T, B, D), (dh_0,); adds parameter gradients."""
        x, h0, RZN, AHn, out = cache
        dout, g = _contiguous(dout, dstate[0].copy())
        dz, dz_next = np.zeros_like(g), np.empty_like(g)           # (B, H) the z part of dh_prev
        dAX, dAH = np.empty_like(RZN), np.empty_like(RZN)          # (T, B, 3H)
        T, B, H = out.shape
        if _small(B, H, 3 * H):
            dz = S.gru_backward(dout, g, dz, dz_next, RZN, AHn, h0, out, np.ascontiguousarray(P["W_h"].T),
                                dAX, dAH)
        else:
            mul = step_product(P["W_h"].T, T)                      # dh = dA_t W_h^T
            step = _split(K.gru_bwd, threaded.gru_bwd, min(packed.threads(), B))
            for t in reversed(range(T)):
                step(dout[t], g, dz, RZN[t], AHn[t], out[t - 1] if t else h0, dAX[t], dAH[t], dz_next)
                mul(dAH[t], g)
                dz, dz_next = dz_next, dz
        return weight_grads(P, G, x, h0, out, dAX, dAH), (g + dz,)
