"""rnnkit.optim: optimizers (optimizers.py), learning-rate schedules (schedules.py), gradient clipping."""
from .optimizers import (SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm,
                         clip_grad_value)
from .schedules import CosineAnnealing, ReduceOnPlateau, Schedule, StepLR, Warmup

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Schedule", "StepLR",
           "CosineAnnealing", "Warmup", "ReduceOnPlateau", "clip_grad_norm", "clip_grad_value"]
