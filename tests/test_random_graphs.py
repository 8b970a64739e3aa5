"""Property test: random graphs of elementwise ops, broadcasts, reductions, dots and indexing,
with random shapes (odd and size-1 dims included), give the same values and gradients on emu
(the generated CUDA C run on the CPU) as on the NumPy reference."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import theta
import theta.tensor as T

DIMS = [1, 2, 3, 5, 8]

UNARY = {
    "tanh": T.tanh, "sigmoid": T.nnet.sigmoid, "softplus": T.nnet.softplus, "neg": lambda a: -a,
    "sqr": T.sqr, "abs": abs, "exp": lambda a: T.exp(T.clip(a, -5, 5)), "log1p_sqr": lambda a: T.log(1 + a * a),
    "relu": T.nnet.relu,
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "maximum": T.maximum, "switch": lambda a, b: T.switch(T.gt(a, b), a, 2 * b),
}


def _broadcastable(a, b) -> bool:
    sa, sb = a.type.shape, b.type.shape
    sa, sb = (1,) * (len(sb) - len(sa)) + sa, (1,) * (len(sa) - len(sb)) + sb
    return all(x == y or x == 1 or y == 1 for x, y in zip(sa, sb))


def build(data, rng):
    """Draw a random graph; returns (inputs, input values, outputs)."""
    r, c = data.draw(st.sampled_from(DIMS)), data.draw(st.sampled_from(DIMS))
    shapes = data.draw(st.lists(st.sampled_from([(r, c), (1, c), (r, 1), (c,), (r, c)]), min_size=1, max_size=3))
    xs = [T.tensor("float64", shape=s, name=f"x{i}") for i, s in enumerate(shapes)]
    values = [rng.standard_normal(s) for s in shapes]
    pool = list(xs)
    for _ in range(data.draw(st.integers(2, 7))):
        kind = data.draw(st.sampled_from(["unary", "binary", "reduce", "dot", "index", "transpose"]))
        a = data.draw(st.sampled_from(pool))
        if kind == "unary":
            pool.append(UNARY[data.draw(st.sampled_from(sorted(UNARY)))](a))
        elif kind == "binary":
            partners = [b for b in pool if _broadcastable(a, b)]
            b = data.draw(st.sampled_from(partners))
            pool.append(BINARY[data.draw(st.sampled_from(sorted(BINARY)))](a, b))
        elif kind == "reduce" and a.ndim:
            axis = data.draw(st.sampled_from([None] + list(range(a.ndim))))
            op = data.draw(st.sampled_from([T.sum, T.mean, T.max]))
            pool.append(op(a, axis=axis, keepdims=data.draw(st.booleans())))
        elif kind == "dot" and a.ndim in (1, 2):
            k = a.type.shape[-1]
            n = data.draw(st.sampled_from(DIMS))
            w = T.tensor("float64", shape=(k, n), name=f"w{len(xs)}")
            xs.append(w)
            values.append(rng.standard_normal((k, n)))
            pool.append(T.dot(a, w))
        elif kind == "index" and a.ndim and a.type.shape[0] > 1:
            n = a.type.shape[0]
            how = data.draw(st.sampled_from(["adv", "slice", "step"]))
            if how == "adv":
                idx = rng.integers(0, n, size=data.draw(st.sampled_from([1, 3, 4])))
                pool.append(a[idx])
            elif how == "slice":
                pool.append(a[1:])
            else:
                pool.append(a[::-2])
        elif kind == "transpose" and a.ndim == 2:
            pool.append(a.T)
    outs = [v for v in pool[len(shapes):]] or [pool[-1] * 1.0]
    return xs, values, outs


@settings(max_examples=int(__import__("os").environ.get("THETA_HYPOTHESIS_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_emu_matches_reference_on_random_graphs(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    xs, values, outs = build(data, rng)
    proj = [rng.random(o.type.shape) + 0.5 for o in outs]
    cost = sum(T.sum(o * p) for o, p in zip(outs, proj))
    grads = theta.grad(cost, xs, disconnected_inputs="ignore")
    want = theta.function(xs, outs + grads, backend="reference", on_unused_input="ignore")(*values)
    got = theta.function(xs, outs + grads, backend="emu", on_unused_input="ignore")(*values)
    for i, (w, g) in enumerate(zip(want, got)):
        assert w.shape == g.shape and w.dtype == g.dtype
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9, err_msg=f"result {i} of {len(outs)} outputs")
