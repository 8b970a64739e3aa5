"""``theta.gradient``: grad, verify_grad, disconnected_grad, jacobian."""
from .grad import DisconnectedGrad, ZeroGrad, disconnected_grad, grad, jacobian, zero_grad  # noqa: F401
from .verify import GradientError, verify_grad  # noqa: F401

