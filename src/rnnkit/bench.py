"""Benchmarks: rnnkit beside PyTorch in one process, and beside the matrix-multiply limit.

For each config (T, B, D=H), cell and mode — train: forward + backward of one layer with loss =
sum of outputs (dX included); infer: forward only — rnnkit and PyTorch run alternately: `warmup`
rounds, then `repeat` rounds; the figures are medians. Cells:
    lstm, gru, rnn   rnnkit.LSTM / GRU / RNN        against nn.LSTM / nn.GRU / nn.RNN
    lnlstm           rnnkit.LSTM(layer_norm=True)   against a Python time loop with nn.LayerNorm
    mingru           rnnkit.MinGRU (log-space scan) against the scan in torch (logcumsumexp, autograd)
PyTorch has no LN-LSTM or minGRU layer: their references, rnnkit.bench_torch_variants, are the code
a PyTorch user writes instead, holding the rnnkit layer's weights (tested equal in outputs and dX).

    tokens/s    = T*B / time
    ratio       = PyTorch time / rnnkit time          (> 1: rnnkit is faster)
    GEMM limit  = time of the layer's matrix products alone, measured in the same run:
                  forward X W_x once and h W_h per step; backward dA W_h^T per step, then
                  H_prev^T dA, X^T dA and dA W_x^T (% of limit = limit / rnnkit time), timed
                  twice: all with NumPy's BLAS, and with the products rnnkit hands to
                  rnnkit.kernels.packed done there (per-step W packed outside the timing); per
                  phase the faster counts;
                  minGRU has no h W_h: forward X W_x, backward X^T dK and dK W_x^T only
    generation  = one char-LSTM step at B=1: embedding, cell, linear, softmax, sample (µs/step),
                  through the model's generation plan (model.generation_step()) and through
                  model.step (the general path); its limit: h W_h and h W_y alone with NumPy's BLAS

Threads follow OMP_NUM_THREADS (or OPENBLAS_NUM_THREADS, MKL_NUM_THREADS), else all cores;
PyTorch and numba are set to the same count. Without PyTorch, rnnkit's figures still print.
"""
import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np

from .kernels import available as kernels_available
from ._threads import env_threads, set_numba_threads

CONFIGS = ((100, 32, 256), (100, 64, 512), (50, 1, 128), (200, 16, 1024))   # (T, B, H), D = H
QUICK = ((100, 32, 256), (50, 1, 128))
CELLS = ("lstm", "lnlstm", "mingru", "gru", "rnn")
GATES = {"lstm": 4, "lnlstm": 4, "mingru": 2, "gru": 3, "rnn": 1}   # G: W_x is (D, G*H)
RECURRENT = {"lstm": True, "lnlstm": True, "mingru": False, "gru": True, "rnn": True}   # has h W_h


@dataclass
class BenchOptions:
    """What to run; defaults are the full benchmark."""
    configs: tuple = CONFIGS            # (T, B, H) triples, D = H
    cells: tuple = CELLS                # subset of lstm, lnlstm, mingru, gru, rnn
    modes: tuple = ("train", "infer")   # subset of train, infer
    repeat: int = 7                     # timed rounds per case (medians reported)
    warmup: int = 2                     # untimed rounds per case
    torch: bool = True                  # compare with PyTorch when it imports
    generation: bool = True             # time the char-LSTM generation step
    json_path: str = ""                 # write the results here when set


def thread_count():
    """Threads from OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS, else the core count."""
    n = env_threads()
    if n:
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _import_torch(want, threads):
    """torch set to `threads` threads, or None when not wanted or not installed.

    numba's thread pool is started (at `threads`) first: its OpenMP start-up sets the thread
    count of the OpenMP runtime it shares with torch, which would otherwise turn a 1-thread
    PyTorch into a 2-thread one in the same process (seen: PyTorch's char-LM step 1.7x faster).
    """
    if not want:
        return None
    try:
        import torch
    except ImportError:
        return None
    set_numba_threads(threads)
    torch.set_num_threads(threads)
    return torch


def _median_ms(seconds):
    """Median of a list of durations, in ms."""
    return float(np.median(seconds) * 1e3)


def _time(fn):
    """Seconds one call of fn takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(fns, warmup, repeat):
    """Run each fn in turn `warmup` then `repeat` times; return each fn's list of timed seconds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            ts.append(_time(fn))
    return times


# -- the GEMM lower limit ---------------------------------------------------------------------------
def gemm_limit_fns(T, B, H, G, recurrent=True, dtype=np.float32, packed_steps=False):
    """(forward, backward) closures doing exactly the matrix products of one layer, D = H.

    recurrent=False (minGRU): no per-step h W_h, dA W_h^T, nor H_prev^T dA. packed_steps: the
    products the fused layers hand to rnnkit.kernels.packed go there (per-step ones with W packed
    outside the timing; X W_x and dA W_x^T by sequence.product, which packs or calls NumPy).
    """
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T * B, H)).astype(dtype)              # (T*B, D)
    Hp = rng.standard_normal((T * B, H)).astype(dtype)             # (T*B, H) previous states
    dA = rng.standard_normal((T * B, G * H)).astype(dtype)         # (T*B, G*H)
    W_x = rng.standard_normal((H, G * H)).astype(dtype)            # (D, G*H)
    W_h = rng.standard_normal((H, G * H)).astype(dtype)            # (H, G*H)
    W_hT = np.ascontiguousarray(W_h.T)                             # (G*H, H) as the fused backward
    AX, a, dh = np.empty_like(dA), np.empty((B, G * H), dtype), np.empty((B, H), dtype)
    dW, dX = np.empty_like(W_x), np.empty_like(X)
    mul_h = lambda x, out: np.matmul(x, W_h, out=out)                          # noqa: E731
    mul_hT = lambda x, out: np.matmul(x, W_hT, out=out)                        # noqa: E731
    mul_x = lambda x, W, out: np.matmul(x, W, out=out)                         # noqa: E731
    if packed_steps:
        from .kernels import packed, sequence
        Wp, WpT, n = packed.pack(W_h), packed.pack(W_h.T), packed.threads()
        mul_h = lambda x, out: packed.matmul_threads(x, Wp, out, n)             # noqa: E731
        mul_hT = lambda x, out: packed.matmul_threads(x, WpT, out, n)           # noqa: E731
        mul_x = lambda x, W, out: sequence.product(x, W)                        # noqa: E731

    steps = range(T) if recurrent else ()

    def forward():
        mul_x(X, W_x, AX)
        for t in steps:
            mul_h(Hp[t * B:(t + 1) * B], a)

    def backward():
        for t in steps:
            mul_hT(dA[t * B:(t + 1) * B], dh)
        if recurrent:
            np.matmul(Hp.T, dA, out=dW)
        np.matmul(X.T, dA, out=dW)
        mul_x(dA, W_x.T, dX)

    return forward, backward


def gemm_limit_ms(T, B, H, G, warmup, repeat, recurrent=True):
    """Median ms of the forward GEMMs and of the backward GEMMs of one layer: per phase, the faster
    of NumPy's BLAS alone and the products rnnkit.kernels.packed takes (when numba imports)."""
    fns = list(gemm_limit_fns(T, B, H, G, recurrent))
    if kernels_available():
        fns += gemm_limit_fns(T, B, H, G, recurrent, packed_steps=True)
    times = [_median_ms(t) for t in alternate(fns, warmup, repeat)]
    return min(times[0::2]), min(times[1::2])


# -- one case: rnnkit and PyTorch on one config, cell and mode ---------------------------------------
def _rnnkit_model(cell, H):
    """A one-layer float32 rnnkit model with D = H."""
    import rnnkit
    if cell == "lnlstm":
        return rnnkit.LSTM(H, H, layer_norm=True)
    return {"lstm": rnnkit.LSTM, "mingru": rnnkit.MinGRU, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[cell](H, H)


def rnnkit_fns(model, x):
    """(train, infer) closures for an rnnkit model on x (T, B, D)."""
    dout = np.ones(x.shape[:2] + (model.hidden_size,), x.dtype)    # (T, B, H) d(sum of outputs)

    def train():
        out, _, cache = model.forward(x)
        model.backward(dout, cache)

    def infer():
        model.infer(x)

    return train, infer


def torch_fns(torch, cell, model, x):
    """(train, infer) closures for the torch twin of an rnnkit model (the reference for variants)."""
    if cell in ("lnlstm", "mingru"):
        from .bench_torch_variants import reference
        m = reference(cell, model)
    else:
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        m = cls(model.input_size, model.hidden_size)
        m.load_state_dict({k: torch.from_numpy(v) for k, v in model.torch_state_dict().items()})
    tx = torch.from_numpy(x).requires_grad_(True)

    def train():
        m.zero_grad(set_to_none=True)
        tx.grad = None
        out, _ = m(tx)
        out.sum().backward()

    def infer():
        with torch.inference_mode():
            m(tx)

    return train, infer


def run_case(torch, cfg, cell, modes, warmup, repeat):
    """Rows of results for one config and cell, one row per mode."""
    T, B, H = cfg
    x = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)   # (T, B, D)
    model = _rnnkit_model(cell, H)
    ours = dict(zip(("train", "infer"), rnnkit_fns(model, x)))
    theirs = dict(zip(("train", "infer"), torch_fns(torch, cell, model, x))) if torch else {}
    g_fwd, g_bwd = gemm_limit_ms(T, B, H, GATES[cell], warmup, repeat, RECURRENT[cell])
    rows = []
    for mode in modes:
        fns = [ours[mode]] + ([theirs[mode]] if torch else [])
        times = alternate(fns, warmup, repeat)
        ms = _median_ms(times[0])
        row = dict(T=T, B=B, D=H, H=H, cell=cell, mode=mode, rnnkit_ms=ms,
                   tokens_per_s=T * B / ms * 1e3,
                   gemm_ms=g_fwd + (g_bwd if mode == "train" else 0.0))
        row["pct_gemm_limit"] = 100 * row["gemm_ms"] / ms
        if torch:
            row["torch_ms"] = _median_ms(times[1])
            row["ratio"] = row["torch_ms"] / ms
        rows.append(row)
    return rows


# -- generation: one char-LSTM step at B = 1 ---------------------------------------------------------
def rnnkit_generate_fns(V, H):
    """(fast, general, model): one char-LSTM sampling step through the generation plan (built once,
    as decode.generate and `rnnkit sample` do) or through model.step; then sample_logits."""
    from .decode import sample_logits
    from .models.many_to_many import ManyToMany
    model = ManyToMany(vocab_size=V, embedding_dim=H, hidden_size=H, cell="lstm").eval()

    def closure(step_fn, seed):
        rng = np.random.default_rng(seed)
        carry = dict(ids=np.zeros(1, np.int64), state=None)

        def step():
            logits, carry["state"] = step_fn(carry["ids"], carry["state"])           # (1, V)
            carry["ids"] = sample_logits(logits, rng=rng)                           # (1,)
        return step

    return closure(model.generation_step(), 0), closure(model.step, 1), model


def torch_generate_fn(torch, V, H, model, cell=False):
    """The same step written the idiomatic PyTorch way, with the model's weights: nn.LSTM on one
    step (cell=False) or nn.LSTMCell (cell=True, which skips nn.LSTM's per-call setup)."""
    lstm = torch.nn.LSTMCell(H, H) if cell else torch.nn.LSTM(H, H)
    emb, lin = torch.nn.Embedding(V, H), torch.nn.Linear(H, V)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    emb.load_state_dict({"weight": t(model.input.embed.params["W"])})
    sd = model.rnn.torch_state_dict()
    lstm.load_state_dict({(k[:-3] if cell else k): t(v) for k, v in sd.items()})     # cell: no "_l0"
    lin.load_state_dict({"weight": t(model.out.W_y().T), "bias": t(model.out.params["b_y"])})
    carry = dict(ids=torch.zeros((1, 1), dtype=torch.long), state=None)

    def step():
        with torch.inference_mode():
            x = emb(carry["ids"])                                   # (1, 1, H)
            if cell:
                carry["state"] = lstm(x[0], carry["state"])
                h = carry["state"][0]
            else:
                out, carry["state"] = lstm(x, carry["state"])
                h = out[0]
            carry["ids"] = torch.multinomial(torch.softmax(lin(h), dim=-1), 1)

    return step


def matvec_fn(model):
    """A closure doing only a generation step's matrix-vector products, h W_h and h W_y (B = 1)."""
    W_h, W_y = model.rnn.children["l0"].params["W_h"], np.ascontiguousarray(model.out.W_y())
    h = np.ones((1, W_h.shape[0]), W_h.dtype)                       # (1, H)
    a, y = h @ W_h, h @ W_y                                         # (1, 4H), (1, V)
    return lambda: (np.matmul(h, W_h, out=a), np.matmul(h, W_y, out=y))


def run_generation(torch, warmup, repeat, V=65, H=512, steps=200):
    """µs per generation step (medians of rounds of `steps`): rnnkit plan, general, limit, PyTorch."""
    fast, general, model = rnnkit_generate_fns(V, H)
    limit = matvec_fn(model)
    fns = [lambda: [fast() for _ in range(steps)], lambda: [general() for _ in range(steps)],
           lambda: [limit() for _ in range(steps)]]
    if torch:
        theirs, cell = torch_generate_fn(torch, V, H, model), torch_generate_fn(torch, V, H, model, True)
        fns += [lambda: [theirs() for _ in range(steps)], lambda: [cell() for _ in range(steps)]]
    times = alternate(fns, warmup, repeat)
    us = [_median_ms(t) * 1e3 / steps for t in times]
    row = dict(B=1, H=H, V=V, rnnkit_us=us[0], rnnkit_general_us=us[1], matvec_us=us[2])
    if torch:
        row["torch_us"], row["torch_cell_us"] = us[3], us[4]
        row["ratio"] = row["torch_us"] / row["rnnkit_us"]
        row["ratio_cell"] = row["torch_cell_us"] / row["rnnkit_us"]
    return row


# -- driver -----------------------------------------------------------------------------------------
def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_table(results):
    """The results as a plain-text table (ms, tokens/s, ratio, % of the GEMM limit)."""
    head = (f"{'T, B, D=H':>15} {'cell':>6} {'mode':>6} {'rnnkit ms':>10} {'tokens/s':>10} "
            f"{'torch ms':>9} {'ratio':>6} {'GEMM ms':>8} {'% limit':>7}")
    lines = [head, "-" * len(head)] if results["cases"] else []
    for r in results["cases"]:
        cfg = f"{r['T']}, {r['B']}, {r['H']}"
        lines.append(f"{cfg:>15} {r['cell']:>6} {r['mode']:>6} {r['rnnkit_ms']:>10.2f} "
                     f"{r['tokens_per_s']:>10.0f} {_fmt(r.get('torch_ms'), '9.2f'):>9} "
                     f"{_fmt(r.get('ratio'), '6.2f'):>6} {r['gemm_ms']:>8.2f} {r['pct_gemm_limit']:>6.0f}%")
    g = results.get("generation")
    if g:
        lines.append(f"\ngeneration step (B=1, H={g['H']}, V={g['V']}): rnnkit {g['rnnkit_us']:.1f} µs"
                     f" (general model.step path {g['rnnkit_general_us']:.1f} µs; h W_h, h W_y alone"
                     f" {g['matvec_us']:.1f} µs)"
                     + (f", torch nn.LSTM {g['torch_us']:.1f} µs (ratio {g['ratio']:.2f}), nn.LSTMCell"
                        f" {g['torch_cell_us']:.1f} µs (ratio {g['ratio_cell']:.2f})" if "torch_us" in g else ""))
    m = results["machine"]
    lines.append(f"\nthreads: {m['threads']}; {m['cpu']}; numpy {m['numpy']}, torch {m['torch'] or 'absent'}")
    return "\n".join(lines)


def machine_info(torch, threads):
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), threads=threads, numpy=np.__version__,
                torch=torch.__version__ if torch else None, python=platform.python_version())


def _triple(s):
    """'T,B,H' -> (T, B, H)."""
    try:
        T, B, H = (int(v) for v in s.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected T,B,H (three integers), got {s!r}") from None
    return T, B, H


def _cells(s):
    """'lstm,mingru' -> ['lstm', 'mingru'], each one of CELLS."""
    names = [c for c in s.split(",") if c]
    bad = [c for c in names if c not in CELLS] or ([] if names else [s])
    if bad:
        raise argparse.ArgumentTypeError(f"expected cells among {', '.join(CELLS)}, got {bad[0]!r}")
    return names


def parse_args(argv=None):
    """Command-line arguments -> BenchOptions."""
    p = argparse.ArgumentParser(prog="rnnkit bench", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", type=_triple, help="T,B,H triples (D = H); default: the four standard ones")
    p.add_argument("--quick", action="store_true", help="the two small configs, 3 rounds: for iteration")
    p.add_argument("--cells", nargs="+", type=_cells, default=[list(CELLS)],
                   help=f"cells to run, spaced or comma-separated, of {', '.join(CELLS)} (default: all)")
    p.add_argument("--modes", nargs="+", choices=("train", "infer"), default=["train", "infer"],
                   help="train (forward + backward) and/or infer (forward only)")
    p.add_argument("--repeat", type=int, help="timed rounds per case (default 7, 3 with --quick)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds per case")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-generation", action="store_true", help="skip the generation-step benchmark")
    p.add_argument("--generation-only", action="store_true", help="run only the generation-step benchmark")
    p.add_argument("--json", default="", help="write the results to this JSON file")
    a = p.parse_args(argv)
    if (a.repeat is not None and a.repeat < 1) or a.warmup < 0:
        p.error(f"--repeat: expected at least 1, --warmup at least 0; got {a.repeat}, {a.warmup}")
    if a.generation_only and a.no_generation:
        p.error("--generation-only, --no-generation: expected at most one of them, got both")
    configs = tuple(a.configs) if a.configs else (QUICK if a.quick else CONFIGS)
    configs = () if a.generation_only else configs
    cells = tuple(dict.fromkeys(c for group in a.cells for c in group))
    return BenchOptions(configs=configs, cells=cells, modes=tuple(a.modes),
                        repeat=a.repeat or (3 if a.quick else 7), warmup=a.warmup, torch=not a.no_torch,
                        generation=not a.no_generation, json_path=a.json)


def run_bench(options=None, log=print):
    """Run the benchmark (options: BenchOptions or an argv list) and return the results dict."""
    opts = options if isinstance(options, BenchOptions) else parse_args(options)
    threads = thread_count()
    torch = _import_torch(opts.torch, threads)
    set_numba_threads(threads)
    results = dict(machine=machine_info(torch, threads), options=asdict(opts), cases=[])
    for cfg in opts.configs:
        for cell in opts.cells:
            rows = run_case(torch, cfg, cell, opts.modes, opts.warmup, opts.repeat)
            results["cases"] += rows
            for r in rows:
                log(f"  {cfg} {cell} {r['mode']}: rnnkit {r['rnnkit_ms']:.2f} ms"
                    + (f", torch {r['torch_ms']:.2f} ms" if torch else ""))
    if opts.generation:
        results["generation"] = run_generation(torch, opts.warmup, opts.repeat)
    if opts.json_path:
        with open(opts.json_path, "w") as f:
            json.dump(results, f, indent=1)
    return results


def main(argv=None):
    """Run and print the table."""
    results = run_bench(argv)
    print(format_table(results))
    return 0
