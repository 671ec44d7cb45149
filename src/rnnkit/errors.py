"""rnnkit's exceptions: every error a user can cause is one of these, and names the argument.

    RnnkitError            base of all of them
    InputError             a bad argument value (ValueError)        -> ShapeError, DTypeError
    ShapeError             an array of the wrong shape (ValueError)
    DTypeError             an array of the wrong dtype (ValueError)
    StateDictError         missing, extra or misshaped weights (ValueError)
    FileFormatError        a model or checkpoint file that is not safe or not whole (ValueError)
    NonFiniteError         NaN or Inf where numbers must be finite (ValueError)
"""


class RnnkitError(Exception):
    """Base class of every exception rnnkit raises on purpose."""


class InputError(RnnkitError, ValueError):
    """An argument has a value rnnkit cannot use."""


class ShapeError(InputError):
    """An array argument has the wrong shape."""


class DTypeError(InputError):
    """An array argument has the wrong dtype."""


class StateDictError(InputError):
    """A state dict has missing, unexpected or misshaped entries."""


class FileFormatError(RnnkitError, ValueError):
    """A file is truncated, corrupt, of an unknown version, or of the wrong kind."""


class NonFiniteError(InputError):
    """NaN or Inf found where finite numbers are required."""
