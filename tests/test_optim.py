"""The update rules of models/optim.py against a NumPy implementation of each, step by step,
on a small least-squares problem; the 1/t schedule, gradient-norm clipping, weight decay, and
the optimizer state as shared variables (fused into the parameters' kernels on emu)."""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import GraphError
from theta.models import optim

RNG = np.random.default_rng(0)
A = RNG.standard_normal((8, 3))
B = RNG.standard_normal(8)
W0 = RNG.standard_normal(3)
STEPS = 6


def _grad(w: np.ndarray) -> np.ndarray:
    return 2 * A.T @ (A @ w - B) / len(B)      # of mean((A w - b)^2)


def _numpy_run(rule: str, **kw) -> list:
    """The parameter after each step, by the textbook update rules."""
    w, state, out = W0.copy(), {}, []
    lr = kw.get("learning_rate")
    for t in range(1, STEPS + 1):
        g = _grad(w)
        eps = lr * kw["tau"] / max(t, kw["tau"]) if kw.get("tau") else lr
        if rule == "sgd":
            w = w - eps * g
        elif rule in ("momentum", "nesterov"):
            v = kw["momentum"] * state.get("v", 0) - eps * g
            state["v"] = v
            w = w + v if rule == "momentum" else w + kw["momentum"] * v - eps * g
        elif rule == "adagrad":
            state["a"] = state.get("a", 0) + g ** 2
            w = w - lr * g / np.sqrt(state["a"] + kw["epsilon"])
        elif rule == "rmsprop":
            state["a"] = kw["rho"] * state.get("a", 0) + (1 - kw["rho"]) * g ** 2
            w = w - lr * g / np.sqrt(state["a"] + kw["epsilon"])
        elif rule == "adam":
            b1, b2 = kw["beta1"], kw["beta2"]
            state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
            state["v"] = b2 * state.get("v", 0) + (1 - b2) * g ** 2
            mhat, vhat = state["m"] / (1 - b1 ** t), state["v"] / (1 - b2 ** t)
            # Kingma & Ba's "efficient version" (epsilon added to sqrt(v), not sqrt(v_hat))
            w = w - lr * mhat / (np.sqrt(vhat) + kw["epsilon"] / np.sqrt(1 - b2 ** t))
        out.append(w.copy())
    return out


CASES = {
    "sgd": dict(learning_rate=0.1),
    "sgd_1/t": dict(learning_rate=0.2, tau=2),
    "momentum": dict(learning_rate=0.05, momentum=0.9),
    "momentum_1/t": dict(learning_rate=0.05, momentum=0.5, tau=3),
    "nesterov": dict(learning_rate=0.05, momentum=0.9),
    "adagrad": dict(learning_rate=0.5, epsilon=1e-6),
    "rmsprop": dict(learning_rate=0.01, rho=0.9, epsilon=1e-6),
    "adam": dict(learning_rate=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8),
}


def _theta_run(case: str, backend: str = "reference") -> tuple:
    rule = case.split("_")[0]
    w = theta.shared(W0.copy(), name="w")
    cost = T.mean((T.dot(theta.shared(A), w) - B) ** 2)
    updates = optim.get(rule)(cost, [w], **CASES[case])
    step = theta.function([], cost, updates=updates, backend=backend)
    trace = []
    for _ in range(STEPS):
        step()
        trace.append(w.get_value())
    return trace, updates, step, w


@pytest.mark.parametrize("case", list(CASES))
def test_update_rules_match_numpy_step_by_step(case):
    trace, updates, _, w = _theta_run(case)
    want = _numpy_run(case.split("_")[0], **CASES[case])
    for t, (got, ref) in enumerate(zip(trace, want), 1):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12, err_msg=f"{case} after step {t}")
    state = optim.state_of(updates, [w])
    expected = {"sgd": 0, "sgd_1/t": 1, "momentum": 1, "momentum_1/t": 2, "nesterov": 1, "adagrad": 1,
                "rmsprop": 1, "adam": 3}[case]
    assert len(state) == expected


def test_optimizer_state_updates_fuse_into_the_parameter_kernels_on_emu():
    trace, updates, step, _ = _theta_run("adam", backend="emu")
    want, _, _, _ = _theta_run("adam")
    np.testing.assert_allclose(trace, want, rtol=1e-12)
    # m, v and w are written by one kernel (the gradient reduction's epilogue), not three
    writers = [k for k in step.kernels if sum(p.name.startswith("out") for p in k.params) >= 3]
    assert writers, [k.family for k in step.kernels]


def test_clip_norm_and_penalty():
    x = T.dvector("x")
    g1, g2 = x * 3, x * 4                       # joint norm 5 |x|
    clipped = theta.function([x], optim.clip_norm([g1, g2], max_norm=1.0))(np.array([1.0]))
    np.testing.assert_allclose(np.hypot(clipped[0], clipped[1]), [1.0], rtol=1e-6)
    small = theta.function([x], optim.clip_norm([g1, g2], max_norm=100.0))(np.array([1.0]))
    np.testing.assert_allclose(small, [[3.0], [4.0]], rtol=1e-6)
    w = theta.shared(np.array([1.0, -2.0]))
    pen = theta.function([], optim.penalty([w], l1=0.5, l2=0.1))()
    np.testing.assert_allclose(pen, 0.5 * 3 + 0.1 * 5)


def test_unknown_optimizer_and_bad_schedule_are_typed_errors():
    with pytest.raises(GraphError, match="unknown optimizer 'adamw'.*sgd"):
        optim.get("adamw")
    w = theta.shared(np.zeros(2))
    with pytest.raises(GraphError, match="tau > 0"):
        optim.sgd(T.sum(w ** 2), [w], tau=0)
    with pytest.raises(GraphError, match="2 gradients for 1"):
        optim.sgd([w, w], [w])
