"""The math of one time step of each cell, readable NumPy: the reference the kernels are tested against."""
from .gru import (gru_cell, gru_cell_backward, gru_cho_backward_n, gru_cho_backward_rz,
                  gru_cho_cell, gru_rz)
from .lstm import lstm_cell, lstm_cell_backward
from .rnn import rnn_cell, rnn_cell_backward

__all__ = ["rnn_cell", "rnn_cell_backward", "lstm_cell", "lstm_cell_backward", "gru_cell",
           "gru_cell_backward", "gru_rz", "gru_cho_cell", "gru_cho_backward_n", "gru_cho_backward_rz"]
