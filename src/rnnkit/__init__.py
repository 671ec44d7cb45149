"""rnnkit: recurrent neural networks from first principles, fast on a CPU."""
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
