"""Test-session settings: one BLAS thread, because the suite's matrices are small and the 2-core
CI machine loses more to thread hand-offs than it gains (seq2seq learning test: ~4x the CPU)."""
import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
