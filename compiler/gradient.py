"""``theta.gradient``: grad, verify_grad, disconnected_grad, and the second-order helpers
(jacobian and hessian through scan, Lop, Rop, hessian_vector_product)."""
from .grad import DisconnectedGrad, ZeroGrad, disconnected_grad, grad, zero_grad  # noqa: F401
from .second_order import Lop, Rop, hessian, hessian_vector_product, jacobian  # noqa: F401
from .verify import GradientError, verify_grad  # noqa: F401

__all__ = ["grad", "verify_grad", "GradientError", "disconnected_grad", "zero_grad", "DisconnectedGrad", "ZeroGrad",
           "Lop", "Rop", "jacobian", "hessian", "hessian_vector_product"]
