"""The cells' elementwise math fused with numba, and whole-sequence loops built on it.

    fastmath     tanh, sigmoid: vectorised rationals in float32 (|error| < 5e-7), exact in float64
    cellkernels  one fused pass per step; same names, signatures and results as rnnkit.cells
                 (tests assert kernel == cell); caches may differ and are read only by the
                 matching backward
    seqloops     the time loop itself inside numba, for steps too small for a BLAS call
    packed       x W with W packed once per sequence: the per-step product of the fused loops
    threaded     the cellkernels steps split by rows over numba's threads (more than one thread)
    sequence     the fused forward/backward of a whole layer that rnnkit.layers.Recurrent uses
    lnkernels    LN-LSTM / LN-GRU steps: LN(h W_h), the gates and LN(c) in one pass per row
    lnsequence   their fused whole-layer forward/backward (layer_norm=True of VariantRecurrent)
    scan         the minGRU / minLSTM scan of rnnkit.layers.minimal, fused per (b, h) lane
Compiled kernels are cached on disk (numba's cache=True): the compile cost is paid once per
machine. numba keys that cache on each file's own text, so a file that calls into another carries
the other's hash (FASTMATH_SHA, CELLKERNELS_SHA; tests/test_kernels.py says when to update them).
"""


def available():
    """True when numba imports."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


if available():
    from .cellkernels import (gru_cell, gru_cell_backward, gru_cho_backward_n, gru_cho_backward_rz,
                              gru_cho_cell, gru_rz, lstm_cell, lstm_cell_backward, rnn_cell,
                              rnn_cell_backward)
