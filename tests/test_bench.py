"""rnnkit bench end to end on a tiny config (no PyTorch), and its GEMM limit's two forms."""
import numpy as np
import pytest

from rnnkit import bench
from rnnkit import kernels as K


def test_bench_runs_and_reports_every_column():
    opts = bench.BenchOptions(configs=((12, 16, 32),), cells=("lstm", "rnn"), repeat=1, warmup=0,
                              torch=False, generation=False)
    res = bench.run_bench(opts, log=lambda *a: None)
    rows = res["cases"]
    assert [(r["cell"], r["mode"]) for r in rows] == [("lstm", "train"), ("lstm", "infer"),
                                                      ("rnn", "train"), ("rnn", "infer")]
    for r in rows:
        assert r["rnnkit_ms"] > 0 and r["gemm_ms"] > 0 and np.isfinite(r["pct_gemm_limit"])
    assert "lstm" in bench.format_table(res)


@pytest.mark.skipif(not K.available(), reason="numba is not installed")
def test_gemm_limit_times_both_forms_of_the_per_step_products():
    """NumPy and packed per-step products both run on the limit's shapes; gemm_limit_ms returns times."""
    for packed_steps in (False, True):
        fwd, bwd = bench.gemm_limit_fns(5, 16, 40, 4, packed_steps=packed_steps)
        fwd()
        bwd()
    f, b = bench.gemm_limit_ms(5, 16, 40, 4, warmup=0, repeat=1)
    assert f > 0 and b > 0
