"""The cells' elementwise math fused with numba, one loop over (B, H) per call.

Same names, signatures and results as rnnkit.cells (tests assert kernel == cell); caches may differ
in layout and are only read by the matching backward. Compiled kernels are cached on disk
(numba's cache=True), so the compile cost is paid once per machine, not on every run.
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
