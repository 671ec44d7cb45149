"""out = x W with W packed once: the per-step h W_h of the fused sequence loops.

A recurrent layer multiplies a few rows (h_{t-1}: B x K, B = 16..64) by the same matrix
(W_h: K x N) at each of T steps. A BLAS call re-packs W_h on every call, with a kernel tuned for
many rows: on one core of the 2-core AMD EPYC we develop on, OpenBLAS ran these products at
33-69 GFLOP/s inside the LSTM loop, this module at 42-76 (the core's FMA peak: about 89). Here W_h
is packed once per sequence into panels of P = two vector registers of columns (16 float32,
8 float64), each panel its K rows one after another, the last one padded with zeros:

    Wp[p, k, :] = W[k, p P : (p + 1) P]                   Wp: (ceil(N / P), K, P)

and one micro-kernel computes a 4 x P block of out in eight vector registers: for each k, two
vector loads of the panel's row k, four broadcasts of x[i .. i+3, k], eight fused multiply-adds.
The 4-row blocks sweep all of x for one panel before the next panel starts, so the panel
(K P values) stays in L1/L2 and x (B K values) in L2; the first block of each panel prefetches
the next panel from L3.

numba has no vector type, so the few operations the kernel needs are written as LLVM intrinsics
below (`Vec`: a <lanes x float> register value; vload, vsplat, vzero, vfma, vadd, vstore,
prefetch). They take C-contiguous arrays and flat element offsets and do no bounds checks:
`matmul` checks the shapes once per call, and the offsets stay inside them.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from .._threads import env_threads
from .fastmath import JIT_OPTIONS

VECTOR_BYTES = 32           # one AVX2 register; LLVM splits or joins registers on other machines
ROWS = 4                    # rows of x per micro-kernel block


def threads():
    """Threads for the per-step products: numba's thread count, capped by env_threads().

    With 1 asked for, numba's thread pool is not started (its OpenMP start-up would change the
    thread count of an OpenMP runtime it shares with, e.g., PyTorch in the same process).
    """
    asked = env_threads()
    if asked == 1:
        return 1
    n = numba.get_num_threads()
    return min(n, asked or n)


def panel_width(dtype):
    """P: the columns of one packed panel, two vector registers of dtype."""
    return 2 * VECTOR_BYTES // np.dtype(dtype).itemsize


class Vec(types.Type):
    """One vector register of `dtype` values: LLVM's <lanes x dtype>."""

    def __init__(self, dtype):
        self.dtype, self.lanes = dtype, VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"Vec({dtype} x {self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elem = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(elem, fe_type.lanes))


def _float_array(a):
    """True for a C-contiguous float32 / float64 array type (what the intrinsics accept)."""
    return isinstance(a, types.Array) and a.layout == "C" and a.dtype in (types.float32, types.float64)


def _element_pointer(context, builder, arrty, arr, i):
    """Pointer to a.flat[i]."""
    return builder.gep(context.make_array(arrty)(context, builder, arr).data, [i])


@intrinsic
def vload(typingctx, a, i):
    """a.flat[i : i + lanes] as one vector."""
    if not _float_array(a):
        return None
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        vptr = builder.bitcast(ptr, context.get_value_type(vt).as_pointer())
        return builder.load(vptr, align=a.dtype.bitwidth // 8)
    return vt(a, i), codegen


@intrinsic
def vstore(typingctx, a, i, v):
    """a.flat[i : i + lanes] = v."""
    if not (_float_array(a) and isinstance(v, Vec) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        vptr = builder.bitcast(ptr, args[2].type.as_pointer())
        builder.store(args[2], vptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def vsplat(typingctx, a, i):
    """a.flat[i] in every lane (one broadcast load)."""
    if not _float_array(a):
        return None
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        x = builder.load(_element_pointer(context, builder, sig.args[0], args[0], args[1]))
        llty = context.get_value_type(vt)
        v = builder.insert_element(ir.Constant(llty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(v, ir.Constant(llty, ir.Undefined), zeros)
    return vt(a, i), codegen


@intrinsic
def vzero(typingctx, a):
    """A vector of zeros of a's dtype."""
    if not _float_array(a):
        return None
    vt = Vec(a.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), [0.0] * vt.lanes)
    return vt(a), codegen


@intrinsic
def vfma(typingctx, x, y, z):
    """x * y + z per lane (one FMA instruction where the machine has it)."""
    if not (isinstance(x, Vec) and x == y == z):
        return None

    def codegen(context, builder, sig, args):
        llty = args[0].type
        name = f"llvm.fmuladd.v{x.lanes}f{x.dtype.bitwidth}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(llty, [llty] * 3), name)
        return builder.call(fn, args)
    return x(x, y, z), codegen


@intrinsic
def vadd(typingctx, x, y):
    """x + y per lane."""
    if not (isinstance(x, Vec) and x == y):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(*args)
    return x(x, y), codegen


@intrinsic
def prefetch(typingctx, a, i):
    """Hint the cache to fetch a.flat[i]'s line (no fault, no effect on results)."""
    if not _float_array(a):
        return None

    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_element_pointer(context, builder, sig.args[0], args[0], args[1]),
                              ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.none(a, i), codegen


@intrinsic
def lanes(typingctx, a):
    """The number of a's elements in one vector (a compile-time constant)."""
    if not _float_array(a):
        return None
    n = VECTOR_BYTES * 8 // a.dtype.bitwidth

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)
    return types.intp(a), codegen


@njit(**JIT_OPTIONS)
def _block4(x, xi, K, Wp, wi, out, oi, ldo, pf):
    """out rows r = 0..3: out.flat[oi + r ldo : + P] = x.flat[xi + r K : + K] @ panel (Wp.flat[wi:]).

    pf > 0: also prefetch the panel pf elements ahead, one cache line (P float32) per k.
    """
    L = lanes(Wp)
    c00, c01, c10, c11 = vzero(Wp), vzero(Wp), vzero(Wp), vzero(Wp)
    c20, c21, c30, c31 = vzero(Wp), vzero(Wp), vzero(Wp), vzero(Wp)
    for k in range(K):
        w0 = vload(Wp, wi + 2 * L * k)
        w1 = vload(Wp, wi + 2 * L * k + L)
        if pf:
            prefetch(Wp, wi + pf + 2 * L * k)
        a = vsplat(x, xi + k)
        c00, c01 = vfma(a, w0, c00), vfma(a, w1, c01)
        a = vsplat(x, xi + K + k)
        c10, c11 = vfma(a, w0, c10), vfma(a, w1, c11)
        a = vsplat(x, xi + 2 * K + k)
        c20, c21 = vfma(a, w0, c20), vfma(a, w1, c21)
        a = vsplat(x, xi + 3 * K + k)
        c30, c31 = vfma(a, w0, c30), vfma(a, w1, c31)
    vstore(out, oi, c00)
    vstore(out, oi + L, c01)
    vstore(out, oi + ldo, c10)
    vstore(out, oi + ldo + L, c11)
    vstore(out, oi + 2 * ldo, c20)
    vstore(out, oi + 2 * ldo + L, c21)
    vstore(out, oi + 3 * ldo, c30)
    vstore(out, oi + 3 * ldo + L, c31)


@njit(**JIT_OPTIONS)
def _block1(x, xi, K, Wp, wi, out, oi):
    """One row: out.flat[oi : oi + P] = x.flat[xi : xi + K] @ panel; four chains hide FMA latency."""
    L = lanes(Wp)
    c0, c1, d0, d1 = vzero(Wp), vzero(Wp), vzero(Wp), vzero(Wp)
    K2 = K - K % 2
    for k in range(0, K2, 2):
        a = vsplat(x, xi + k)
        c0 = vfma(a, vload(Wp, wi + 2 * L * k), c0)
        c1 = vfma(a, vload(Wp, wi + 2 * L * k + L), c1)
        a = vsplat(x, xi + k + 1)
        d0 = vfma(a, vload(Wp, wi + 2 * L * (k + 1)), d0)
        d1 = vfma(a, vload(Wp, wi + 2 * L * (k + 1) + L), d1)
    if K2 < K:
        a = vsplat(x, xi + K2)
        c0 = vfma(a, vload(Wp, wi + 2 * L * K2), c0)
        c1 = vfma(a, vload(Wp, wi + 2 * L * K2 + L), c1)
    vstore(out, oi, vadd(c0, d0))
    vstore(out, oi + L, vadd(c1, d1))


@njit(**JIT_OPTIONS)
def _panel(x, Wp, p, out, oi, ldo):
    """out.flat[oi + i ldo : + P] = x[i] @ panel p, for every row i of x."""
    M, K = x.shape
    P = Wp.shape[2]
    wi = p * K * P
    i = 0
    ahead = K * P if p + 1 < Wp.shape[0] else 0       # the first block prefetches the next panel
    while i + ROWS <= M:
        _block4(x, i * K, K, Wp, wi, out, oi + i * ldo, ldo, ahead if i == 0 else 0)
        i += ROWS
    while i < M:
        _block1(x, i * K, K, Wp, wi, out, oi + i * ldo)
        i += 1


@njit(**JIT_OPTIONS)
def _check(x, Wp, out):
    M, K = x.shape
    N, P = out.shape[1], Wp.shape[2]
    if out.shape[0] != M or Wp.shape[1] != K or Wp.shape[0] != (N + P - 1) // P or P != 2 * lanes(Wp):
        raise ValueError("packed.matmul: shapes of x (M, K), Wp (ceil(N/P), K, P), out (M, N) do not match")


@njit(**JIT_OPTIONS)
def _panels(x, Wp, out, p0, p1):
    """out[:, p P : (p + 1) P] = x @ panel p for the whole panels p0 <= p < p1."""
    N, P = out.shape[1], Wp.shape[2]
    for p in range(p0, p1):
        _panel(x, Wp, p, out, p * P, N)


@njit(**JIT_OPTIONS)
def _last_panel(x, Wp, out):
    """The zero-padded last panel, when N is not a multiple of P: via a scratch, valid columns only."""
    N, P = out.shape[1], Wp.shape[2]
    full = N // P
    if full * P < N:
        tmp = np.empty((x.shape[0], P), out.dtype)                 # (M, P)
        _panel(x, Wp, full, tmp, 0, P)
        out[:, full * P:] = tmp[:, :N - full * P]


@njit(**JIT_OPTIONS)
def _product(x, Wp, out):
    """out = x W: every whole panel, then the partial last one (shapes already checked)."""
    _panels(x, Wp, out, 0, out.shape[1] // Wp.shape[2])
    _last_panel(x, Wp, out)


@njit(**JIT_OPTIONS)
def matmul(x, Wp, out):
    """out = x W for x (M, K), Wp = pack(W) of W (K, N), out (M, N); all C-contiguous, one dtype."""
    _check(x, Wp, out)
    _product(x, Wp, out)


@njit(parallel=True, **JIT_OPTIONS)
def matmul_threads(x, Wp, out, n):
    """matmul on n of numba's threads, each computing a contiguous share of the panels."""
    _check(x, Wp, out)
    full = out.shape[1] // Wp.shape[2]
    for t in prange(n):
        _panels(x, Wp, out, t * full // n, (t + 1) * full // n)
    _last_panel(x, Wp, out)


@njit(**JIT_OPTIONS)
def _row_blocks(x, Wp, out, b0, b1, rows):
    """out = x W on the row blocks b0 <= blk < b1 of `rows` rows: each sweeps all panels while its
    rows stay in L2."""
    M = x.shape[0]
    for blk in range(b0, b1):
        r0, r1 = blk * rows, min(M, (blk + 1) * rows)
        _product(x[r0:r1], Wp, out[r0:r1])


@njit(parallel=True, **JIT_OPTIONS)
def _row_blocks_threads(x, Wp, out, n, rows):
    blocks = (x.shape[0] + rows - 1) // rows
    for t in prange(n):
        _row_blocks(x, Wp, out, t * blocks // n, (t + 1) * blocks // n, rows)


def matmul_rows(x, Wp, out, n, rows=64):
    """matmul for many rows (x (M, K), M >> 64), in blocks of `rows` rows; with n > 1 threads each
    takes a contiguous share of the blocks."""
    _check(x, Wp, out)
    if n > 1:
        _row_blocks_threads(x, Wp, out, n, rows)
    else:
        _row_blocks(x, Wp, out, 0, (x.shape[0] + rows - 1) // rows, rows)


@njit(**JIT_OPTIONS)
def _pack_rows(W, Wp):
    """Wp[p, k, j] = W[k, p P + j], zero past W's last column; W row-major.

    16 rows of W at a time (in L2), copied panel by panel: each panel gets 16 consecutive rows.
    """
    K, N = W.shape
    P = Wp.shape[2]
    full = N // P
    for k0 in range(0, K, 16):
        k1 = min(K, k0 + 16)
        for p in range(full):
            for k in range(k0, k1):
                Wp[p, k, :] = W[k, p * P:(p + 1) * P]
        if full < Wp.shape[0]:
            for k in range(k0, k1):
                Wp[full, k, :] = 0
                Wp[full, k, :N - full * P] = W[k, full * P:]


@njit(**JIT_OPTIONS)
def _pack_cols(Wt, Wp):
    """Wp[p, k, j] = Wt[p P + j, k], zero past Wt's last row; Wt = W^T row-major (read row by row)."""
    N, K = Wt.shape
    P = Wp.shape[2]
    for p in range(Wp.shape[0]):
        for j in range(P):
            c = p * P + j
            if c < N:
                Wp[p, :, j] = Wt[c]
            else:
                Wp[p, :, j] = 0


def pack(W):
    """W (K, N) -> Wp (ceil(N / P), K, P): the panels `matmul` reads. W may be a transposed view."""
    K, N = W.shape
    P = panel_width(W.dtype)
    Wp = np.empty((-(-N // P), K, P), W.dtype)                 # (ceil(N / P), K, P)
    if W.T.flags.c_contiguous and not W.flags.c_contiguous:
        _pack_cols(W.T, Wp)
    else:
        _pack_rows(np.ascontiguousarray(W), Wp)
    return Wp
