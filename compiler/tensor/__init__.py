"""``theta.tensor``: the Theano-style tensor API."""
from .basic import *  # noqa: F401,F403
from .basic import (as_tensor_variable, cast, elemwise, round, sum, max, min, pow, abs_)  # noqa: F401
from . import nnet  # noqa: F401
from . import signal  # noqa: F401  (theta.tensor.signal.pool)
from . import shared_randomstreams  # noqa: F401  (theta.tensor.shared_randomstreams)
from ..ops.shape import arange  # noqa: F401
from ..graph import Variable as TensorVariable  # noqa: F401
from ..types import TensorType  # noqa: F401
from ..grad import grad  # noqa: F401,E402  (Theano's T.grad)
from ..second_order import Lop, Rop, hessian, jacobian  # noqa: F401,E402  (T.Lop, T.Rop, T.jacobian)
