"""The rnnkit command line: `rnnkit <command> ...` (also `python -m rnnkit`).

Each command lives in its own module with a `register(subparsers)` function that adds its
parsers and sets `func`; main() wires them together and turns every error a user can make into
one line on stderr (exit status 2), never a traceback.
"""
import argparse
import importlib
import sys

from ..errors import RnnkitError

# modules under rnnkit.cli that define register(subparsers); a missing one is skipped
COMMAND_MODULES = ("demo", "lm", "classify", "tag", "forecast", "seq2seq", "runs", "experiment", "bench")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    """The argparse parser with every available subcommand."""
    parser = OneLineParser(prog="rnnkit", description="Recurrent neural networks on a CPU: "
                                     "train, sample, predict, forecast, translate, and run experiments.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv=None):
    """Entry point of the `rnnkit` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_other_ranks()
    try:
        return args.func(args) or 0
    except (RnnkitError, OSError) as e:
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror}"
        print(f"rnnkit {args.command}: error: {msg}", file=sys.stderr)
        _abort_mpi_job(2)
        return 2
    except BaseException:
        _abort_mpi_job(1)
        raise


def _quiet_other_ranks():
    """Under mpiexec, only rank 0 prints (every rank runs the same command)."""
    import os
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if os.environ.get(var, "0") not in ("", "0"):
            sys.stdout = open(os.devnull, "w")
            return


def _abort_mpi_job(code):
    """Under mpiexec, a rank that fails takes the whole job down instead of leaving the others waiting."""
    if "mpi4py.MPI" in sys.modules and sys.modules["mpi4py.MPI"].COMM_WORLD.Get_size() > 1:
        sys.stderr.flush()
        sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(code)
