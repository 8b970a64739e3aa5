"""``theta.sandbox``: Theano's module path for ``rng_mrg.MRG_RandomStreams``.

``import theta; theta.sandbox.rng_mrg`` works without importing the submodule first, as in
Theano (resolved on first access, like theta's other submodules)."""
import importlib as _importlib

__all__ = ["rng_mrg"]


def __getattr__(name: str):
    if name in __all__:
        return _importlib.import_module(f"{__name__}.{name}")   # the import binds theta.sandbox.<name>
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
