"""rnnkit: recurrent neural networks from first principles, fast on a CPU."""
from .layers.stack import GRU, LSTM, RNN
from .layers.recurrent import Recurrent

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Recurrent"]
