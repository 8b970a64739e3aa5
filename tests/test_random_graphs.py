"""Property tests: random graphs of elementwise ops, broadcasts, reductions, dots and indexing,
with random shapes (odd and size-1 dims included), give the same values and gradients on emu
(the generated CUDA C run on the CPU) as the oracle: the NumPy reference run on the unrewritten
graph. Derandomized (the same examples each run, so the kernel cache makes reruns fast); the
wider fuzzer over every kernel family, dtype and boundary size is tests/fuzz.py. A second family ends every
graph in a row-softmax tail (softmax, log-softmax, crossentropy) over a fused elementwise
producer, where fusion once folded a value a softmax kernel reads into that kernel's epilogue
(issue 15)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import theta
import theta.tensor as T
from fuzz import oracle_function

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

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


def build(data, rng, first=None):
    """Draw a random graph; returns (inputs, input values, outputs). ``first``: the shape (r, c)
    of a first input, always present."""
    r, c = first or (data.draw(st.sampled_from(DIMS)), data.draw(st.sampled_from(DIMS)))
    shapes = data.draw(st.lists(st.sampled_from([(r, c), (1, c), (r, 1), (c,), (r, c)]), min_size=1, max_size=3))
    shapes = [first] + shapes[1:] if first else shapes
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


TAILS = {
    "softmax": T.nnet.softmax,
    "log_softmax": lambda a: T.log(T.nnet.softmax(a)),        # stabilized into one LogSoftmax
    "log_softmax_op": T.nnet.log_softmax,
}


def build_softmax_tail(data, rng):
    """A random graph whose last node is a row-softmax op over an elementwise producer (often
    broadcasting a row or column operand); returns (inputs, values, outputs, int inputs, values)."""
    xs, values, outs = build(data, rng, first=(data.draw(st.sampled_from(DIMS[1:])), data.draw(st.sampled_from(DIMS))))
    r, c = xs[0].type.shape
    rows = [v for v in [xs[0]] + outs if v.type.shape == (r, c)]
    a = data.draw(st.sampled_from(rows))
    for _ in range(data.draw(st.integers(1, 3))):   # the fused elementwise producer
        operand = data.draw(st.sampled_from(["self", "row", "col"]))
        if operand == "self":
            b = a
        else:
            b = T.tensor("float64", shape=(1, c) if operand == "row" else (r, 1), name=f"b{len(xs)}")
            xs.append(b)
            values.append(rng.standard_normal(b.type.shape))
        a = BINARY[data.draw(st.sampled_from(sorted(BINARY)))](a, b)
        a = UNARY[data.draw(st.sampled_from(sorted(UNARY)))](a)
    tail = data.draw(st.sampled_from(sorted(TAILS) + ["crossentropy", "crossentropy_indexed"]))
    ints, int_values = [], []
    if tail.startswith("crossentropy"):
        y = T.tensor("int32", shape=(r,), name="y")
        ints, int_values = [y], [rng.integers(0, c, size=r).astype("int32")]
        sm = T.nnet.softmax(a)
        tail_out = T.nnet.categorical_crossentropy(sm, y) if tail == "crossentropy" \
            else -T.log(sm)[T.arange(r), y]
    else:
        tail_out = TAILS[tail](a)
    keep = data.draw(st.sampled_from(["tail", "tail_and_producer", "all"]))
    outs = [tail_out] + ([a] if keep == "tail_and_producer" else outs if keep == "all" else [])
    return xs, values, outs, ints, int_values


def check_against_reference(xs, values, outs, rng, ints=(), int_values=()):
    """Values and gradients (of a random projection of the outputs) agree on emu and reference."""
    proj = [rng.random(o.type.shape) + 0.5 for o in outs]
    cost = sum(T.sum(o * p) for o, p in zip(outs, proj))
    grads = theta.grad(cost, xs, disconnected_inputs="ignore")
    compare(list(xs) + list(ints), outs + grads, list(values) + list(int_values), n_outputs=len(outs))


def compare(args, results, values, n_outputs):
    """``results`` of ``args`` at ``values`` on emu equal the oracle's (float64, to 1e-9): the
    reference backend on the unrewritten graph, so a wrong rewrite is caught."""
    want = oracle_function(args, results)(*values)
    got = theta.function(args, results, backend="emu", on_unused_input="ignore")(*values)
    for i, (w, g) in enumerate(zip(want, got)):
        assert w.shape == g.shape and w.dtype == g.dtype
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9,
                                   err_msg=f"result {i} ({n_outputs} outputs, then gradients)")


EXAMPLES = int(__import__("os").environ.get("THETA_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(st.data())
def test_emu_matches_reference_on_random_graphs(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    xs, values, outs = build(data, rng)
    check_against_reference(xs, values, outs, rng)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(st.data())
def test_emu_matches_reference_on_softmax_tails(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    xs, values, outs, ints, int_values = build_softmax_tail(data, rng)
    check_against_reference(xs, values, outs, rng, ints, int_values)


def test_issue_15_log_softmax_of_a_fused_expression():
    """The smallest graph of issue 15: the softmax kernel's input was fused into its epilogue."""
    x, y = T.dmatrix("x"), T.dmatrix("y")
    out = T.log(T.nnet.softmax(-(x * T.nnet.sigmoid(T.maximum(y, 0.0)))))
    gx, gy = theta.grad(T.sum(out * 0.9), [x, y])
    rng = np.random.default_rng(15)
    compare([x, y], [out, gx, gy], [rng.standard_normal((4, 5)), rng.standard_normal((4, 5))], n_outputs=1)


def test_gemm_input_is_not_folded_into_its_own_epilogue():
    """The same class on the gemm family: dot(x2, W) + x2 reads x2 in main and epilogue."""
    x, w = T.tensor("float64", shape=(3, 4), name="x"), T.tensor("float64", shape=(4, 4), name="w")
    x2 = T.tanh(x) * 2.0
    out = T.dot(x2, w) + x2
    rng = np.random.default_rng(7)
    check_against_reference([x, w], [rng.standard_normal((3, 4)), rng.standard_normal((4, 4))], [out], rng)


def test_a_value_fusion_folded_away_is_an_internal_error(monkeypatch):
    """If fusion and lowering ever disagree again, the error names the kernel, its group and the
    value, never a bare KeyError (the merge check is switched off here to provoke it)."""
    import theta.compiler.fuse as fuse
    from theta.errors import InternalError
    monkeypatch.setattr(fuse, "_phases_ok", lambda *a: True)
    x, y = T.dmatrix("x"), T.dmatrix("y")
    out = T.log(T.nnet.softmax(-(x * T.nnet.sigmoid(T.maximum(y, 0.0)))))
    gx, gy = theta.grad(T.sum(out * 0.9), [x, y])
    f = theta.function([x, y], [out, gx, gy], backend="emu")
    with pytest.raises(InternalError, match=r"kernel theta_k\d+_softmax \(Group\(softmax.*does not materialize"):
        f(np.ones((4, 5)), np.ones((4, 5)))
