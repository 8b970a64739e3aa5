"""``theta.sandbox.rng_mrg``: Theano's module name for ``MRG_RandomStreams``. theta's streams
are counter-based (Philox4x32-10, compiler/random.py), not MRG31k3p, with MRG's signatures."""
from ..compiler.random import MRG_RandomStreams  # noqa: F401

__all__ = ["MRG_RandomStreams"]
