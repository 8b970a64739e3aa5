"""``theta.printing`` is theta.compiler.printing itself (Theano's module name): importing this module
puts that module in its place, so both names are one module object."""
import sys

from .compiler import printing as _module

sys.modules[__name__] = _module
