"""``theta.gradient``: grad, verify_grad, disconnected_grad, jacobian."""
from .grad import DisconnectedGrad, disconnected_grad, grad, jacobian  # noqa: F401
from .verify import GradientError, verify_grad  # noqa: F401

zero_grad = disconnected_grad
