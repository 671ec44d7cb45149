"""Layers: Module, Linear, Embedding, Dropout, the unroll (Recurrent) and the stacked RNN/LSTM/GRU."""
from .attention import Attention
from .basic import Dropout, Embedding, Linear
from .embedding_dropout import EmbeddingDropout
from .minimal import MinGRU, MinLSTM
from .module import Module
from .plugin import Cell, CellRNN
from .recurrent import Recurrent
from .stack import GRU, LSTM, RNN, RecurrentNet

__all__ = ["Attention", "Module", "Linear", "Embedding", "Dropout", "Recurrent", "RecurrentNet", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM",
           "EmbeddingDropout", "Cell", "CellRNN"]
