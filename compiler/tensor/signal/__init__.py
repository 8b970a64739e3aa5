"""``theta.tensor.signal``: signal-processing ops on tensors (Theano's module; ``pool``)."""
from . import pool  # noqa: F401
