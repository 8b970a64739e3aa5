"""``theta.gradient`` is theta.compiler.gradient itself (Theano's module name): importing this module
puts that module in its place, so both names are one module object."""
import sys

from .compiler import gradient as _module

sys.modules[__name__] = _module
