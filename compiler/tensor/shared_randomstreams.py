"""``theta.tensor.shared_randomstreams``: Theano's module name for ``RandomStreams``
(compiler/random.py: counter-based draws, the same bits on every backend)."""
from ..random import RandomStreams  # noqa: F401

__all__ = ["RandomStreams"]
