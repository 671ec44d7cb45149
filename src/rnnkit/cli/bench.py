"""`rnnkit bench [options]`: rnnkit's speed beside PyTorch's; the options are rnnkit.bench's own."""
import argparse


def bench(args):
    """Hand the remaining arguments to rnnkit.bench.main."""
    from ..bench import main
    return main(args.bench_args)


def register(sub):
    """Add `bench` (its flags are parsed by rnnkit.bench: `rnnkit bench --help`)."""
    # prefix_chars="+": every "-..." argument after `bench` is left for rnnkit.bench to parse
    p = sub.add_parser("bench", help="time RNN/LSTM/GRU layers against PyTorch (rnnkit bench --help)",
                       prefix_chars="+", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of rnnkit.bench")
    p.set_defaults(func=bench)
