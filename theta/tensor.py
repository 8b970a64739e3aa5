"""``theta.tensor`` is theta.compiler.tensor itself (Theano's module name): importing this
module puts that package, and its submodules (``theta.tensor.nnet``), in its place, so each
has one module object under both names (never a second copy with its own classes)."""
import sys

from .compiler import tensor as _tensor

for _name, _module in list(sys.modules.items()):
    if _name.startswith("theta.compiler.tensor."):
        sys.modules["theta.tensor." + _name[len("theta.compiler.tensor."):]] = _module
sys.modules[__name__] = _tensor
