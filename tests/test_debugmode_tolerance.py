"""DebugMode's tolerance: each kernel value is checked against its own error bound.

The bound of a value comes from its dtype's precision and the ops that computed it
(compiler/tolerance.py): a few ulps of the value for elementwise ops and softmax, a few ulps of
the sum of |terms| for sums and dots. Bugs planted in kernel templates that make errors far
above that bound (but below the old blanket 1e-3 tolerance) must raise DebugModeError in float32
as in float64; correct kernels (op tables, the zoo's models) must never raise.
"""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler import codegen, tolerance
from theta.errors import DebugModeError


def _plant_in_template(monkeypatch, template: str, right: str, wrong: str) -> list:
    """Render ``template`` with ``right`` replaced by ``wrong``; returns the list of sources
    the plant reached (to assert it did)."""
    original, reached = codegen.render, []

    def planted(which, **context):
        source = original(which, **context)
        if which == template and right in source:
            source = source.replace(right, wrong)
            reached.append(source)
        return source
    monkeypatch.setattr(codegen, "render", planted)
    return reached


def _plant_in_elemwise(monkeypatch, right: str, wrong: str):
    original = codegen._statements

    def miscompiled(expr, names, out, dtype, input_dtypes):
        return tuple(line.replace(right, wrong) for line in original(expr, names, out, dtype, input_dtypes))
    monkeypatch.setattr(codegen, "_statements", miscompiled)


def _executor(f):
    """The executor of ``f``'s most recently run specialization (its DebugMode counters)."""
    return f._compiled().executor


# -- the two bugs ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_softmax_whose_max_skips_warp_0_is_caught(monkeypatch, dtype):
    # block mode (a long row): the row max is merged from warp 1 onwards, while warp 0's sum
    # stays relative to its own max: a ~1% error on most values
    reached = _plant_in_template(monkeypatch, "softmax.cu.j2", "m = sh_m[0];", "m = sh_m[1];")
    x = T.matrix("x", dtype=dtype)
    f = theta.function([x], T.nnet.softmax(x), backend="emu", mode="DebugMode")
    data = np.random.RandomState(0).randn(8, 2000).astype(dtype)
    with pytest.raises(DebugModeError, match=r"softmax.*disagrees"):
        f(data)
    assert reached, "the plant did not reach the softmax kernel"
    # the bug is real, and far below the old absolute tolerance (1e-3 x the largest input, 4e-3
    # here, more than most softmax outputs)
    got = theta.function([x], T.nnet.softmax(x), backend="emu")(data)
    want = theta.function([x], T.nnet.softmax(x))(data)
    assert np.median(np.abs(got - want) / want) > 1e-3 and np.abs(got - want).max() < 1e-3 * np.abs(data).max()


@pytest.mark.parametrize("dtype, right, wrong", [("float32", "expf(", "1.002f*expf("),
                                                 ("float64", "exp(", "1.002*exp(")])
def test_an_exp_scaled_by_1_002_is_caught(monkeypatch, dtype, right, wrong):
    _plant_in_elemwise(monkeypatch, right, wrong)
    x, y = T.vector("x", dtype=dtype), T.vector("y", dtype=dtype)
    f = theta.function([x, y], T.exp(x) * y + 1, backend="emu", mode="DebugMode")
    rng = np.random.RandomState(1)
    with pytest.raises(DebugModeError, match=r"\(elemwise\) disagrees") as info:
        f(rng.uniform(-3, 3, 1000).astype(dtype), rng.uniform(0.5, 2, 1000).astype(dtype))
    assert "the kernel computes: exp" in str(info.value) and "outside their bound" in str(info.value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_exp_off_by_a_tenth_of_a_percent_is_caught_in_a_fused_chain(monkeypatch, dtype):
    suffix = "f" if dtype == "float32" else ""
    _plant_in_elemwise(monkeypatch, f"tanh{suffix}(", f"1.001{suffix}*tanh{suffix}(")
    x, b = T.matrix("x", dtype=dtype), T.vector("b", dtype=dtype)
    f = theta.function([x, b], T.tanh(x + b) * 2 - x, backend="emu", mode="DebugMode")
    rng = np.random.RandomState(2)
    with pytest.raises(DebugModeError):
        f(rng.randn(32, 16).astype(dtype), rng.randn(16).astype(dtype))


# -- sums and dots: relative to the sum of |terms| -----------------------------------------------

def _hundred_bounds(dtype: str, n: int) -> float:
    """A relative error a hundred times the bound of a sum of n positive terms."""
    return 100 * (tolerance.growth(n) + tolerance.ULPS_BASIC) * tolerance.eps(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_dot_off_by_a_hundred_times_its_bound_is_caught(monkeypatch, dtype):
    K = 256
    factor = 1 + _hundred_bounds(dtype, K)       # float32: ~5e-4, under the old 1e-3
    reached = _plant_in_template(monkeypatch, "gemm.cu.j2", "const out_t dv = (out_t)acc[gr * 4 + r][gc * 4 + c];",
                                 f"const out_t dv = (out_t)(acc[gr * 4 + r][gc * 4 + c] * (acc_t){float(factor)!r});")
    a, b = T.matrix("a", dtype=dtype), T.matrix("b", dtype=dtype)
    f = theta.function([a, b], T.dot(a, b), backend="emu", mode="DebugMode")
    rng = np.random.RandomState(3)
    A, B = rng.uniform(0, 1, (64, K)).astype(dtype), rng.uniform(0, 1, (K, 64)).astype(dtype)
    with pytest.raises(DebugModeError, match=r"\(gemm\) disagrees"):
        f(A, B)
    assert reached, "the plant did not reach the gemm kernel"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_sum_off_by_a_hundred_times_its_bound_is_caught(monkeypatch, dtype):
    n = 1000
    factor = 1 + 100 * (tolerance.growth(n) * tolerance.eps("float64") + tolerance.ULPS_BASIC * tolerance.eps(dtype))
    ctype = "float" if dtype == "float32" else "double"
    reached = _plant_in_template(monkeypatch, "reduce.cu.j2", f"= ({ctype})(double)acc;",
                                 f"= ({ctype})((double)acc * {float(factor)!r});")
    x = T.matrix("x", dtype=dtype)
    f = theta.function([x], x.sum(axis=1), backend="emu", mode="DebugMode")
    with pytest.raises(DebugModeError, match=r"\(reduce\) disagrees"):
        f(np.random.RandomState(4).uniform(0.5, 1, (8, n)).astype(dtype))
    assert reached, "the plant did not reach the reduce kernel"


def test_a_cancelling_sum_is_judged_by_its_terms_not_its_value():
    # sum(x) = 0 up to rounding: the kernel's order gives another tiny value, which is right
    x = T.fmatrix("x")
    f = theta.function([x], [x.sum(axis=1), T.dot(x, x.T)], backend="emu", mode="DebugMode")
    rng = np.random.RandomState(5)
    half = rng.randn(16, 500).astype("float32")
    f(np.concatenate([half, -half[:, ::-1]], axis=1) + rng.randn(16, 1000).astype("float32") * 1e-4)
    assert _executor(f).debug_checked >= 2


# -- no false alarms -----------------------------------------------------------------------------

def _ops_table(x, y, m, labels):
    return [
        T.exp(x) * y + 1, T.log(T.abs_(x) + 1e-3), T.tanh(x) - x, T.nnet.sigmoid(x) * (1 - T.nnet.sigmoid(x)),
        T.nnet.softplus(x), T.sqrt(T.abs_(x)), x ** 3 - y ** 2, (x - y) / (T.abs_(y) + 0.5), T.sin(x * 10), T.cos(x),
        T.switch(x > y, x, y), T.maximum(x, 0) + T.minimum(y, 0), T.erf(x), T.log1p(T.abs_(x)), T.expm1(x),
        x.sum(), (x * y).sum(axis=1), x.mean(axis=0), x.max(axis=1), x.min(axis=0), x.prod(axis=1),
        T.argmax(x, axis=1), T.dot(x, m), T.dot(x.T, y), T.nnet.softmax(x), T.nnet.logsoftmax(x),
        T.nnet.categorical_crossentropy(T.nnet.softmax(x), labels),
        x[::2, 1:] * 3, T.concatenate([x, y], axis=1) - 1, T.set_subtensor(x[:, 0], y[:, 1]),
        T.inc_subtensor(x[labels], y) * 0.5,
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_op_table_passes_debug_mode_with_its_gradients(dtype):
    x, y, m = T.matrix("x", dtype=dtype), T.matrix("y", dtype=dtype), T.matrix("m", dtype=dtype)
    labels = T.ivector("labels")
    outs = _ops_table(x, y, m, labels)
    cost = sum(T.sum(o * (k + 1.0) / 7) for k, o in enumerate(outs) if o.dtype == dtype)
    grads = theta.grad(cost, [x, y, m])
    f = theta.function([x, y, m, labels], outs + grads, backend="emu", mode="DebugMode", on_unused_input="ignore")
    rng = np.random.RandomState(6)
    for scale in (1.0, 30.0):
        X = (rng.randn(12, 9) * scale).astype(dtype)
        f(X, (rng.randn(12, 9) * scale).astype(dtype), rng.randn(9, 9).astype(dtype),
          rng.randint(0, 9, 12).astype("int32"))
    executor = _executor(f)
    assert executor.debug_checked > 10 and not executor.__dict__.get("debug_unchecked")


@pytest.mark.parametrize("name", ["mlp", "relu-dropout", "lenet", "bn-mlp", "maxout"])
def test_zoo_models_train_under_debug_mode_without_alarm(name):
    from theta.models import optim
    from theta.models.classifiers import build, spec
    from theta.models.data import load_digits
    data = load_digits()
    s = spec(name)
    model = build(name, np.random.default_rng(0), data.n_in, data.n_classes, 32, 0)
    updates = optim.get(s.optimizer)(model.cost, model.params, learning_rate=s.lr)
    updates.update(model.updates)
    step = theta.function([model.x, model.y], model.cost, updates=updates, backend="emu", mode="DebugMode")
    x, y = data.train.x, data.train.y
    for k in range(3):
        cost = step(x[k * 64:(k + 1) * 64], y[k * 64:(k + 1) * 64])
        assert np.isfinite(cost)
    assert _executor(step).debug_checked > 0


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_recurrent_models_train_under_debug_mode_without_alarm(cell):
    from theta.models import optim
    from theta.models.recurrent import CELLS, adding_problem
    rng = np.random.default_rng(0)
    net = CELLS[cell](rng, 2, 16)
    w_out = theta.shared(np.zeros(16, "float32"), name="out.w")
    b_out = theta.shared(np.ones((), "float32"), name="out.b")
    params = net.params + [w_out, b_out]
    x, y = T.tensor3("x"), T.vector("y")
    mse = T.mean((T.dot(net.last_state(x), w_out) + b_out - y) ** 2)
    grads = optim.clip_norm(theta.grad(mse, params), 1.0)
    step = theta.function([x, y], mse, updates=optim.adam(grads, params, learning_rate=0.01),
                          backend="emu", mode="DebugMode")
    for _ in range(3):
        assert np.isfinite(step(*adding_problem(20, 10, rng, "float32")))
    assert _executor(step).debug_checked > 0


@pytest.mark.parametrize("kwargs", [dict(mode="DebugMode"), dict(nan_guard=True)])
def test_an_empty_kernel_input_is_checked_not_crashed_on(kwargs):
    # its buffer is never allocated: the guard's snapshot read it at address None
    x, z = T.fmatrix("x"), T.fmatrix("z")
    f = theta.function([x, z], T.concatenate([x, z, x * 2], axis=0), backend="emu", **kwargs)
    out = f(np.ones((2, 3), "float32"), np.ones((0, 3), "float32"))
    np.testing.assert_array_equal(out, np.array([[1] * 3] * 2 + [[2] * 3] * 2, "float32"))


def test_a_tenth_of_a_percent_is_far_outside_the_float32_bounds_of_exp_and_softmax():
    # the allowance (SAFETY x the bound) of float32 exp and softmax outputs, relative to the value
    x = T.fmatrix("x")
    rng = np.random.RandomState(7)
    X = (rng.randn(16, 2000) * 4).astype("float32")
    for y in (T.exp(x), T.nnet.softmax(x), T.exp(T.tanh(x) * 3 + x)):
        nodes = [v for v in theta.compiler.graph.toposort([y]) if v.op is not None]
        env = theta.runtime.nan_guard.rerun(nodes, {id(x): X})
        bound = tolerance.kernel_bounds(nodes, env)[id(y)]
        rel = tolerance.allowed(bound, "float32") / np.abs(env[id(y)].astype(np.float64))
        assert rel.max() < 1e-3 and np.median(rel) < 1e-4, (y, rel.max())
    assert tolerance.SAFETY < 100            # an error 100x the bound is always outside it


@pytest.mark.parametrize("kwargs", [dict(mode="DebugMode"), dict(nan_guard=True)])
def test_a_kernel_input_without_memory_is_not_read(kwargs):
    # an empty sparse matrix's index arrays have no buffer in the call: the guard's snapshot
    # read them at address None (a raw TypeError); now that group is left unchecked
    import scipy.sparse
    from theta import sparse
    S, D = sparse.csr_matrix("s", dtype="float32"), T.fmatrix("d")
    f = theta.function([S, D], sparse.dot(S, D) + 1, backend="emu", **kwargs)
    out = f(scipy.sparse.csr_matrix((4, 6), dtype="float32"), np.ones((6, 3), "float32"))
    np.testing.assert_array_equal(out, np.ones((4, 3), "float32"))
