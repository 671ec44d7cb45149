"""A char-level LSTM language model trained with rnnkit and with PyTorch: chars/s and peak memory.

The model, the same in both (V = 65 symbols for Tiny Shakespeare):

    x_t = E[id_t]                        E (V, D)      nn.Embedding            | ManyToMany input
    h_t = LSTM_2(LSTM_1(x_t))            2 layers, H   nn.LSTM(num_layers=2)   | rnn
    y_t = h_t W_y + b_y                  W_y (H, V)    nn.Linear               | out
    loss = mean_t,b -log softmax(y_t)[target_t]        F.cross_entropy         | model.objective

One training step, on a (T, B) window of a character stream cut into B lanes (truncated BPTT:
the final (h, c) of one window, detached, is the next window's initial state):

    rnnkit:   model.zero_grad(); model.objective(batch, carry); clip_grad_norm(model, 5); opt.step()
    PyTorch:  opt.zero_grad(); F.cross_entropy(model(x, carry)); loss.backward();
              clip_grad_norm_(model.parameters(), 5); opt.step()

both with Adam (lr 2e-3, betas (0.9, 0.999)). PyTorch starts from rnnkit's initial weights, so the
two first-step losses agree (a check that the models are the same; both are reported).

Throughput: one step (its loss is "loss 1st") and `--warmup` more untimed steps each, then
`--repeat` rounds in which rnnkit and PyTorch alternate, each round `--steps` steps:
chars/s = steps * B * T / round time (median of rounds); "loss last" ends the last round.
`--isolate` runs each round in a fresh process of its own instead (rnnkit, PyTorch, rnnkit, ...;
each builds its trainer from the same initial weights, runs 1 + `--warmup` untimed steps, then times
`--steps`): with more than one thread, one framework's idle worker threads (OpenBLAS's and PyTorch's
OpenMP pools keep spinning for a while after a call) otherwise take cores from the other in one
process.
`--profile N` instead times the parts of N rnnkit steps (embedding, LSTM forward and backward,
output layer, loss, clip, Adam) and prints cProfile's top functions.

Peak memory: each framework in a fresh subprocess of this script (the hidden flag --_memory). The
child imports NumPy and rnnkit (and PyTorch, for PyTorch's figure), loads the data, and runs one
step of a tiny model (H = 8) so that lazy one-time work is done before the baseline: numba loading
or compiling rnnkit's kernels, PyTorch's operator setup. Then it resets the peak (writing 5 to
/proc/self/clear_refs sets VmHWM to the current RSS), reads the baseline VmRSS, builds the full
model and optimizer and runs warmup + steps training steps. Reported: peak MB = VmHWM - baseline,
i.e. everything resident at the worst moment of training beyond imports and data: weights,
gradients, Adam's two moments, the activations kept for backward, temporaries, and what the
allocator keeps mapped. Where clear_refs cannot be written, the peak is ru_maxrss - baseline
("hwm_reset": false in the JSON), which may also count a peak from before the baseline.

--threads N sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS before NumPy or PyTorch
load (and torch.set_num_threads(N)), as benchmarks/bench_rnn.py does.

    python benchmarks/bench_charlm.py --threads 1 --text /work/shared/data/tinyshakespeare.txt
    python benchmarks/bench_charlm.py --hidden 128 --steps 3 --repeat 3 --json charlm.json
"""
import os
import sys


def _take_threads(argv):
    """Export `--threads N` to the BLAS / OpenMP environment variables (argv keeps the flag)."""
    if "--threads" not in argv:
        return
    i = argv.index("--threads")
    if i + 1 >= len(argv) or not argv[i + 1].isdigit() or int(argv[i + 1]) < 1:
        sys.exit("--threads: expected a positive integer")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = argv[i + 1]


if __name__ == "__main__":          # before NumPy loads its BLAS: the thread count is fixed then
    _take_threads(sys.argv[1:])
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")     # what importing rnnkit first sets
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import argparse                     # noqa: E402
import gc                           # noqa: E402
import json                         # noqa: E402
import resource                     # noqa: E402
import subprocess                   # noqa: E402
import time                         # noqa: E402

import numpy as np                  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))           # charlm_models, beside this file
from charlm_models import (CLIP, LR, RnnkitTrainer, import_torch, load_ids, torch_trainer,  # noqa: E402
                           windows)


# -- throughput -----------------------------------------------------------------------------------
def run_steps(step, data, n):
    """Seconds for n steps on the next n windows, and the last loss."""
    t0, loss = time.perf_counter(), float("nan")
    for _ in range(n):
        loss = step(*next(data))
    return time.perf_counter() - t0, loss


def throughput(torch, ids, V, a):
    """{name: {chars_per_s, step_ms, first_loss, last_loss}}, rounds of the two frameworks alternating."""
    rk = RnnkitTrainer(V, a)
    steps = {"rnnkit": rk.step}
    if torch is not None:
        steps["torch"] = torch_trainer(torch, V, a, rk.model)
    data = {name: windows(ids, a) for name in steps}
    out = {name: {"first_loss": run_steps(fn, data[name], 1)[1]} for name, fn in steps.items()}
    for name, fn in steps.items():
        run_steps(fn, data[name], a.warmup)
    times = {name: [] for name in steps}
    for _ in range(a.repeat):
        for name, fn in steps.items():
            sec, out[name]["last_loss"] = run_steps(fn, data[name], a.steps)
            times[name].append(sec)
    return _summarise(out, times, a)


def _summarise(out, times, a):
    """out with each framework's chars/s and ms/step from the median of its round times (seconds)."""
    for name, ts in times.items():
        sec = float(np.median(ts))
        out[name].update(chars_per_s=a.steps * a.batch * a.seq_len / sec, step_ms=1e3 * sec / a.steps,
                         round_s=[round(t, 4) for t in ts])
    return out


def throughput_child(framework, a):
    """Print {"sec", "first_loss", "last_loss"}: one isolated round of `framework` (see the docstring)."""
    from rnnkit.bench import thread_count
    torch = import_torch(framework == "torch", thread_count())
    ids, V, _ = load_ids(a.text)
    rk = RnnkitTrainer(V, a)
    step = rk.step if torch is None else torch_trainer(torch, V, a, rk.model)
    data = windows(ids, a)
    first = run_steps(step, data, 1)[1]
    run_steps(step, data, a.warmup)
    sec, last = run_steps(step, data, a.steps)
    print(json.dumps({"sec": sec, "first_loss": first, "last_loss": last}))


def throughput_isolated(names, a):
    """throughput's figures, each round of each framework in a fresh process (alternating)."""
    out, times = {name: {} for name in names}, {name: [] for name in names}
    for _ in range(a.repeat):
        for name in names:
            r = _child("--_throughput", name, a)
            times[name].append(r["sec"])
            out[name].update(first_loss=r["first_loss"], last_loss=r["last_loss"])
    return _summarise(out, times, a)


# -- where rnnkit's step spends its time ------------------------------------------------------------
PIECES = ("embedding", "LSTM forward", "LSTM backward", "output layer")     # the objective's parts


def _timed(fn, name, acc):
    """fn, adding the seconds of each call to acc[name]."""
    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.perf_counter() - t0
    return timed


def profile_rnnkit(ids, V, a, n):
    """(ms per step of each part, cProfile's top functions) over n rnnkit steps after the warm-up."""
    import cProfile
    import io
    import pstats
    tr, data = RnnkitTrainer(V, a), windows(ids, a)
    run_steps(tr.step, data, max(a.warmup, 1))
    acc = dict.fromkeys(PIECES + ("objective", "clip", "Adam", "step"), 0.0)
    m = tr.model
    for mod, method, name in ((m.input, "forward", "embedding"), (m.input, "backward", "embedding"),
                              (m.rnn, "forward", "LSTM forward"), (m.rnn, "backward", "LSTM backward"),
                              (m.out, "forward", "output layer"), (m.out, "backward", "output layer")):
        setattr(mod, method, _timed(getattr(mod, method), name, acc))
    m.objective = _timed(m.objective, "objective", acc)
    tr.clip, tr.opt.step = _timed(tr.clip, "clip", acc), _timed(tr.opt.step, "Adam", acc)
    prof = cProfile.Profile()
    prof.runcall(run_steps, _timed(tr.step, "step", acc), data, n)
    parts = {k: acc[k] for k in PIECES}
    parts["loss (softmax CE) + checks"] = acc["objective"] - sum(parts.values())
    parts.update(clip=acc["clip"], Adam=acc["Adam"])
    parts["zero_grad + carry copy"] = acc["step"] - acc["objective"] - acc["clip"] - acc["Adam"]
    parts["whole step"] = acc["step"]
    text = io.StringIO()
    pstats.Stats(prof, stream=text).strip_dirs().sort_stats("tottime").print_stats(12)
    return {k: 1e3 * v / n for k, v in parts.items()}, text.getvalue()


def format_profile(ms):
    """ms per step of each part as a table."""
    lines = [f"{'rnnkit step':28} {'ms/step':>8} {'%':>6}"]
    lines += [f"{k:28} {v:8.2f} {100 * v / ms['whole step']:6.1f}" for k, v in ms.items()]
    return "\n".join(lines)


# -- peak memory, in a child process per framework --------------------------------------------------
def _status_mb(key):
    """A /proc/self/status field (VmRSS, VmHWM) in MB, or None."""
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith(key + ":")), None)
    except OSError:
        return None
    return None if line is None else int(line.split()[1]) / 1024


def _reset_peak():
    """Set VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(framework, a):
    """Print {"baseline_mb", "peak_mb", "hwm_reset"} for training `framework` (see the docstring)."""
    from rnnkit.bench import thread_count
    torch = import_torch(framework == "torch", thread_count())
    ids, V, _ = load_ids(a.text)
    if torch is None:
        make = lambda h: RnnkitTrainer(V, a, h).step                          # noqa: E731
    else:
        make = lambda h: torch_trainer(torch, V, a, None, h)                  # noqa: E731
    data = windows(ids, a)
    run_steps(make(8), data, 1)                         # lazy one-time work, before the baseline
    gc.collect()
    reset = _reset_peak()
    base = _status_mb("VmRSS")
    run_steps(make(None), data, a.warmup + a.steps)
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_mb": base, "peak_mb": peak - base, "hwm_reset": reset}))


def measure_memory(framework, a):
    """Run memory_child(framework) in a fresh interpreter; its JSON result."""
    return _child("--_memory", framework, a)


def _child(flag, framework, a):
    """Run this script with the hidden `flag framework` in a fresh interpreter; its last line's JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), flag, framework, "--batch", str(a.batch),
           "--seq-len", str(a.seq_len), "--hidden", str(a.hidden), "--embed", str(a.embed),
           "--layers", str(a.layers), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--text", a.text or ""]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{flag[3:]} run for {framework} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------------------
def format_table(res):
    """The results as a text table."""
    c = res["config"]
    lines = [f"char-LM: embedding {c['D']}, {c['layers']}-layer LSTM H={c['H']}, softmax V={c['V']}; "
             f"B={c['B']}, T={c['T']}; Adam + clip {CLIP}; {res['machine']['threads']} thread(s)"
             + ("; each round in a fresh process" if c.get("isolate") else ""),
             f"data: {c['data']}",
             f"{'':8} {'chars/s':>9} {'ms/step':>8} {'peak MB':>8} {'loss 1st':>9} {'loss last':>9}"]
    for name in ("rnnkit", "torch"):
        r = res.get(name)
        if r:
            peak = f"{r['peak_mb']:8.0f}" if "peak_mb" in r else f"{'-':>8}"
            lines.append(f"{name:8} {r['chars_per_s']:9.0f} {r['step_ms']:8.1f} {peak} "
                         f"{r['first_loss']:9.4f} {r['last_loss']:9.4f}")
    if "ratio" in res:
        lines.append(f"ratio rnnkit/PyTorch chars/s: {res['ratio']:.2f}  (> 1: rnnkit is faster)")
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="bench_charlm.py", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, help="BLAS/OpenMP/torch threads (set before NumPy loads)")
    p.add_argument("--text", default="/work/shared/data/tinyshakespeare.txt",
                   help="training text; random ids (V=65) when the file is absent")
    p.add_argument("--batch", type=int, default=32, help="B, lanes per window")
    p.add_argument("--seq-len", type=int, default=128, help="T, characters per window (TBPTT length)")
    p.add_argument("--hidden", type=int, default=512, help="H, LSTM units per layer")
    p.add_argument("--embed", type=int, default=64, help="D, embedding size")
    p.add_argument("--layers", type=int, default=2, help="LSTM layers")
    p.add_argument("--steps", type=int, default=4, help="training steps per timed round")
    p.add_argument("--repeat", type=int, default=5, help="timed rounds per framework (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per framework before the rounds")
    p.add_argument("--no-torch", action="store_true", help="rnnkit alone")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--isolate", action="store_true",
                   help="time each round in a fresh process (alternating) instead of both in this one")
    p.add_argument("--json", default="", help="write the results to this JSON file")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="instead: time the parts of N rnnkit steps (and cProfile them), print, exit")
    p.add_argument("--_memory", choices=("rnnkit", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--_throughput", choices=("rnnkit", "torch"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for name in ("batch", "seq_len", "hidden", "embed", "layers", "steps", "repeat"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected at least 1, got {getattr(a, name)}")
    if a.warmup < 0:
        p.error(f"--warmup: expected at least 0, got {a.warmup}")
    return a


def run(a, log=print):
    """The results dict: config, machine, per-framework figures, ratio."""
    from rnnkit.bench import machine_info, thread_count
    threads = thread_count()
    torch = import_torch(not a.no_torch, threads)
    ids, V, source = load_ids(a.text)
    res = dict(config=dict(B=a.batch, T=a.seq_len, D=a.embed, H=a.hidden, layers=a.layers, V=V,
                           steps=a.steps, repeat=a.repeat, warmup=a.warmup, lr=LR, clip=CLIP, data=source),
               machine=machine_info(torch, threads))
    log(f"throughput: {a.warmup} warm-up + {a.repeat} x {a.steps} steps each"
        + (", each round in a fresh process ..." if a.isolate else " ..."))
    if a.isolate:
        res.update(throughput_isolated(("rnnkit", "torch") if torch is not None else ("rnnkit",), a))
    else:
        res.update(throughput(torch, ids, V, a))
    res["config"]["isolate"] = a.isolate
    if torch is not None:
        res["ratio"] = res["rnnkit"]["chars_per_s"] / res["torch"]["chars_per_s"]
    if not a.no_memory:
        for name in ("rnnkit", "torch") if torch is not None else ("rnnkit",):
            log(f"peak memory: {name} in a fresh process ...")
            res[name].update(measure_memory(name, a))
    return res


def main(argv=None):
    """Run, print the table, write the JSON."""
    a = parse_args(argv)
    if a._memory:
        memory_child(a._memory, a)
        return 0
    if a._throughput:
        throughput_child(a._throughput, a)
        return 0
    if a.profile:
        ids, V, _ = load_ids(a.text)
        ms, stats = profile_rnnkit(ids, V, a, a.profile)
        print(format_profile(ms) + "\n\n" + stats)
        return 0
    res = run(a, log=lambda s: print(s, file=sys.stderr))
    print(format_table(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
