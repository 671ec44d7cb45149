"""Elementwise functions and their derivatives, written from outputs (the form backward uses).

    sigmoid(a) = 1 / (1 + exp(-a))         d/da = s * (1 - s)
    tanh(a)                                d/da = 1 - t * t
    relu(a)    = max(a, 0)                 d/da = [r > 0]
    log_softmax(z) = z - logsumexp(z)      (stable: shift by the max)
"""
import numpy as np


def sigmoid(a):
    """Numerically stable logistic function: never overflows exp for large |a|."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


def dsigmoid(s):
    """Derivative of sigmoid written from its output s."""
    return s * (1 - s)


def tanh(a):
    """Hyperbolic tangent."""
    return np.tanh(a)


def dtanh(t):
    """Derivative of tanh written from its output t."""
    return 1 - t * t


def relu(a):
    """max(a, 0)."""
    return np.maximum(a, 0)


def drelu(r):
    """Derivative of relu written from its output r (0 at a = 0, as PyTorch)."""
    return (r > 0).astype(r.dtype)


ACTIVATIONS = {"tanh": (tanh, dtanh), "relu": (relu, drelu), "sigmoid": (sigmoid, dsigmoid)}


def log_softmax(z, axis=-1):
    """log(softmax(z)) without overflow."""
    m = np.max(z, axis=axis, keepdims=True)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def softmax(z, axis=-1):
    """softmax(z) without overflow."""
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
