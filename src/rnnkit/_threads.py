"""Thread counts: what the usual environment variables ask for, and numba's share of it.

Kept apart from rnnkit.kernels, whose import loads numba, so that the command line and the
benchmarks can read and set thread counts without compiling or loading any kernel.
"""
import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def env_threads():
    """The thread count the usual variables ask for (OMP_NUM_THREADS first), or None."""
    for var in THREAD_VARS:
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    return None


def set_numba_threads(n):
    """Cap numba's parallel kernels (kernels.packed, kernels.threaded) at n threads, if numba imports."""
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
