"""rnnkit against PyTorch (and the GEMM limit) side by side: `python benchmarks/bench_rnn.py --help`.

The same benchmark as `rnnkit bench` (see rnnkit.bench for what is measured and how), plus
`--threads N`, which sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS before NumPy
loads its BLAS (the thread count of a BLAS is fixed when it loads).

    python benchmarks/bench_rnn.py --quick                       # two small configs, 3 rounds
    python benchmarks/bench_rnn.py --json bench.json             # the four standard configs
    python benchmarks/bench_rnn.py --threads 1 --configs 50,1,128 --cells lstm
"""
import os
import sys


def _take_threads(argv):
    """Remove `--threads N` from argv and export N to the BLAS / OpenMP environment variables."""
    if "--threads" not in argv:
        return argv
    i = argv.index("--threads")
    if i + 1 >= len(argv) or not argv[i + 1].isdigit() or int(argv[i + 1]) < 1:
        sys.exit("--threads: expected a positive integer")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = argv[i + 1]
    return argv[:i] + argv[i + 2:]


if __name__ == "__main__":
    args = _take_threads(sys.argv[1:])
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from rnnkit.bench import main
    sys.exit(main(args))
