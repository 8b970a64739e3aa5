"""``theta.sparse`` is theta.compiler.sparse itself (Theano's module name): importing this module
puts that module in its place, so both names are one module object."""
import sys

from .compiler import sparse as _module

sys.modules[__name__] = _module
