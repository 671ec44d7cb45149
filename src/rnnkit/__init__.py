"""rnnkit: recurrent neural networks from first principles, fast on a CPU."""
import os

# After each call OpenBLAS's idle threads spin for 2^28 cycles (about 0.1 s) before they sleep,
# holding the cores rnnkit's own threads need for the next per-step product (kernels.packed):
# 2^4 cycles lets them sleep at once. Read when NumPy loads OpenBLAS, so only when rnnkit is
# imported first (the `rnnkit` command, the benchmarks); a value the user set is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
from . import errors, functional, init, losses, optim
from .diagnostics import Recorder
from .gradcheck import check_module, gradcheck
from .io.model_file import load, save
from .layers import GRU, LSTM, RNN, Dropout, Embedding, Linear, MinGRU, MinLSTM, Module, Recurrent
from .layers import Cell, CellRNN, EmbeddingDropout
from .streaming import run_stream

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Cell", "CellRNN", "EmbeddingDropout", "MinGRU", "MinLSTM", "Recurrent", "Module", "Linear", "Embedding",
           "Dropout", "gradcheck", "check_module", "save", "load", "Recorder", "run_stream", "losses",
           "optim", "errors", "functional", "init"]
