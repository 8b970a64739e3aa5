"""Regressions of theta.scan met with plausible wrong (or unusual but valid) usage (issue 29):
sequence taps that do not include 0 (cut as Theano does), a step output whose dtype differs
from its state's, a state that changes shape between steps, random draws inside a loop whose
updates are not passed to theta.function, and the outputs_info / step-return forms Theano
accepts or refuses. Each case runs on the reference and emu backends."""
import re

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import DTypeError, GraphError, ShapeError
from theta.gradient import verify_grad
from theta.tensor.shared_randomstreams import RandomStreams

rng = np.random.default_rng(29)


@pytest.fixture(autouse=True, params=["reference", "emu"])
def backend(request):
    """Every test runs with each backend as theta.config.backend (restored by conftest)."""
    theta.config.backend = request.param
    return request.param


# ------------------------------------------------------------------ 1. sequence taps without 0

def numpy_taps(X: np.ndarray, taps: list, fn) -> np.ndarray:
    """Theano's rule written as a loop: the sequence is cut as if tap 0 were also read, so step
    t reads rows t + k for every tap k, for t from -min(taps, 0) to len - max(taps, 0) - 1."""
    lo, hi = min(min(taps), 0), max(max(taps), 0)
    return np.array([fn(*[X[t + k] for k in taps]) for t in range(-lo, len(X) - hi)])


def weigh(*rows):
    """Each tap's row weighed by its own power of ten: a wrong row shows in the digits."""
    return sum(r * 10 ** (len(rows) - 1 - i) for i, r in enumerate(rows))


def test_the_issues_examples():
    x = T.dvector("x")
    X = np.arange(5.0)
    ahead, _ = theta.scan(lambda a: a, sequences={"input": x, "taps": [1]})
    np.testing.assert_array_equal(theta.function([x], ahead)(X), [1, 2, 3, 4])
    behind, _ = theta.scan(lambda a, b: a * 10 + b, sequences={"input": x, "taps": [-2, -1]})
    np.testing.assert_array_equal(theta.function([x], behind)(X), [1, 12, 23])


@pytest.mark.parametrize("taps", [[1], [2], [1, 3], [3, 1], [-3], [-2, -1], [-1, 2], [-2, 0, 2], [0], [-1, 0, 1]])
@pytest.mark.parametrize("backwards", [False, True])
def test_sequence_taps_follow_theanos_cut(taps, backwards):
    """Going backwards, Theano reverses each cut slice: the same steps, last first."""
    X = np.arange(8.0)
    x = T.dvector("x")
    out, _ = theta.scan(lambda *rows: weigh(*rows), sequences={"input": x, "taps": taps}, go_backwards=backwards)
    want = numpy_taps(X, taps, weigh)
    np.testing.assert_array_equal(theta.function([x], out)(X), want[::-1] if backwards else want)


def test_sequence_taps_without_0_beside_a_plain_sequence_and_a_state():
    """The shortest sequence (after its cut) sets the length; the state sees the same rows."""
    X, Y = np.arange(8.0), np.arange(6.0) * 100
    x, y = T.dvector("x"), T.dvector("y")
    out, _ = theta.scan(lambda a, b, c, acc: acc + a * 10 + b + c, outputs_info=T.constant(0.0, dtype="float64"),
                        sequences=[{"input": x, "taps": [2, 3]}, y])
    steps = numpy_taps(X, [2, 3], lambda a, b: a * 10 + b)[:len(Y)] + Y[:5]
    np.testing.assert_array_equal(theta.function([x, y], out)(X, Y), np.cumsum(steps))


@pytest.mark.parametrize("taps", [[1], [1, 3], [-2, -1], [-3]])
def test_sequence_taps_without_0_gradient_against_finite_differences(taps):
    X = rng.standard_normal(7)

    def cost(x):
        out, _ = theta.scan(lambda *rows: T.tanh(weigh(*rows) * 0.1) * rows[0], sequences={"input": x, "taps": taps})
        return out

    verify_grad(cost, [X])


def test_a_sequence_too_short_for_its_taps_counts_tap_0():
    short = T.tensor("float64", shape=(2,), name="short")
    with pytest.raises(ShapeError, match=r"taps \[2\] need a sequence of at least 3 rows"):
        theta.scan(lambda a: a, sequences={"input": short, "taps": [2]})


# ------------------------------------------------------------------ 2. a step output's dtype

@pytest.mark.parametrize("init, seq_dtype, state, out", [
    (0, "float64", "int64", "float64"),                                  # the issue's reduce
    (T.zeros(()), "float64", "float32", "float64"),                      # floatX zeros, float64 sum
    (T.zeros((), dtype="float64"), "float32", "float64", "float32"),     # a narrower output
    (np.int32(0), "int64", "int32", "int64"),
])
def test_a_step_output_whose_dtype_differs_from_its_state_is_refused(init, seq_dtype, state, out):
    x = T.vector("x", dtype=seq_dtype)

    def accumulate(a, acc):
        return T.cast(a, out) if out == "float32" else acc + a

    with pytest.raises(DTypeError) as err:
        theta.reduce(accumulate, sequences=x, outputs_info=init)
    msg = str(err.value)
    assert f"output 0 of the step is {out}" in msg and f"its state is {state}" in msg, msg
    assert re.search(r"accumulate at .*test_scan_regressions.py:\d+", msg), msg
    assert f"T.zeros((), dtype='{out}')" in msg, msg


def test_matching_dtypes_accumulate_in_the_states_dtype():
    x = T.dvector("x")
    total, _ = theta.reduce(lambda a, acc: acc + a, sequences=x, outputs_info=T.zeros((), dtype="float64"))
    assert total.dtype == "float64"
    np.testing.assert_allclose(theta.function([x], total)(np.array([0.5, 0.7, 0.9])), 2.1, rtol=1e-15)
    count, _ = theta.reduce(lambda a, n: n + 1, sequences=x, outputs_info=0)   # int64 + int: int64
    assert count.dtype == "int64" and theta.function([x], count)(np.ones(4)) == 4


def test_a_window_state_of_taps_is_checked_too():
    with pytest.raises(DTypeError, match=r"output 0 .*float64.*float32"):
        theta.scan(lambda a, b: a + b * np.float64(0.5) + T.constant(0.0, dtype="float64"),
                   outputs_info={"initial": T.vector("i", dtype="float32"), "taps": [-2, -1]}, n_steps=3)


# ------------------------------------------------------------------ 3. a state that changes shape

def grow(hp):
    return T.concatenate([hp, hp])


def test_a_state_that_grows_is_a_shape_error_naming_both_shapes_and_the_step():
    h = T.dvector("h")
    out, _ = theta.scan(grow, outputs_info=h, n_steps=3)
    with pytest.raises(ShapeError) as err:
        theta.function([h], out)(np.ones(2))
    msg = str(err.value)
    assert "output 0" in msg and "(2,)" in msg and "(4,)" in msg, msg
    assert re.search(r"grow at .*test_scan_regressions.py:\d+", msg), msg


def test_a_state_whose_shape_is_declared_is_refused_when_the_scan_is_built():
    h = T.tensor("float64", shape=(2,), name="h")
    with pytest.raises(ShapeError, match=r"output 0.*\(4,\).*\(2,\)"):
        theta.scan(grow, outputs_info=h, n_steps=3)


def test_a_state_that_broadcasts_against_a_sequence_row_is_refused():
    x, h = T.dmatrix("x"), T.dvector("h")
    out, _ = theta.scan(lambda xt, hp: xt + hp.sum(), sequences=x, outputs_info=h)
    f = theta.function([x, h], out)
    with pytest.raises(ShapeError, match=r"output 0.*\(1,\).*\(3,\)|output 0.*\(3,\).*\(1,\)"):
        f(np.ones((4, 3)), np.ones(1))
    np.testing.assert_allclose(f(np.ones((2, 3)), np.ones(3)), [[4, 4, 4], [13, 13, 13]])   # shapes that fit


def test_a_window_state_that_changes_shape_is_refused():
    i = T.dmatrix("i")
    out, _ = theta.scan(lambda a, b: T.concatenate([a, b], axis=0), outputs_info={"initial": i, "taps": [-2, -1]},
                        n_steps=3)
    with pytest.raises(ShapeError, match=r"output 0.*\(2,\).*\(4,\)|output 0.*\(4,\).*\(2,\)"):
        theta.function([i], out)(np.ones((2, 2)))


def test_a_shared_variable_the_step_updates_to_another_shape_is_refused():
    s = theta.shared(np.zeros(2), name="s")
    x = T.dvector("x")
    out, updates = theta.scan(lambda a: (a * 2, {s: T.concatenate([s, s])}), sequences=x)
    with pytest.raises(ShapeError, match=r"'s'.*\(2,\).*\(4,\)|'s'.*\(4,\).*\(2,\)"):
        theta.function([x], out, updates=updates)(np.ones(3))


# ------------------------------------------------------------------ 4. random draws in a loop

def draws_per_call(backend: str, pass_updates: bool, calls: int = 3) -> list:
    srng = RandomStreams(seed=29)
    x = T.dvector("x")
    out, updates = theta.scan(lambda a: a + srng.uniform((2,), dtype="float64"), sequences=x)
    f = theta.function([x], out, updates=updates if pass_updates else None, backend=backend)
    return [f(np.zeros(4)) for _ in range(calls)]


@pytest.mark.parametrize("pass_updates", [False, True])
def test_successive_calls_never_reuse_numbers(backend, pass_updates):
    got = draws_per_call(backend, pass_updates)
    seen = [set(np.round(g.ravel(), 15)) for g in got]
    for a in range(len(seen)):
        assert len(seen[a]) == got[a].size           # no number twice within a call
        for b in range(a):
            assert not seen[a] & seen[b], f"calls {b} and {a} share numbers"


def test_loop_draws_are_the_same_numbers_on_every_backend():
    for pass_updates in (False, True):
        ref, emu = draws_per_call("reference", pass_updates), draws_per_call("emu", pass_updates)
        for r, e in zip(ref, emu):
            np.testing.assert_array_equal(r, e)


def test_a_draw_beside_the_loop_and_two_loops_on_one_stream_never_repeat():
    srng = RandomStreams(seed=3)
    x = T.dvector("x")
    a, _ = theta.scan(lambda v: v + srng.uniform((), dtype="float64"), sequences=x)
    b, _ = theta.scan(lambda v: v + srng.uniform((), dtype="float64"), sequences=x[:2])
    c = srng.uniform((3,), dtype="float64")
    f = theta.function([x], [a, b, c])
    calls = [np.concatenate(f(np.zeros(5))) for _ in range(3)]
    for k in range(3):
        for j in range(k):
            assert not set(calls[k]) & set(calls[j])


def test_nested_loops_drawing_never_repeat_across_outer_steps_and_calls():
    srng = RandomStreams(seed=4)
    x = T.dmatrix("x")

    def row(r):
        inner, _ = theta.scan(lambda v: v + srng.uniform((), dtype="float64"), sequences=r)
        return inner

    out, _ = theta.scan(row, sequences=x)
    f = theta.function([x], out)
    first, second = f(np.zeros((3, 4))), f(np.zeros((3, 4)))
    both = np.concatenate([first.ravel(), second.ravel()])
    assert len(set(both)) == both.size


# ------------------------------------------------------------------ 5. outputs_info and step returns

def fib_like(init, taps_entry, steps=4):
    info = {"initial": init, **taps_entry}
    out, _ = theta.scan(lambda *prev: sum(prev) * 0.5, outputs_info=info, n_steps=steps)
    return out


@pytest.mark.parametrize("entry, taps", [
    ({"taps": None}, [-1]),                  # Theano: an initial value with taps=None reads t-1
    ({}, [-1]),
    ({"taps": [-1]}, [-1]),
    ({"taps": (-2, -1)}, [-2, -1]),
    ({"taps": [np.int64(-2)]}, [-2]),
])
def test_output_taps_theano_accepts(entry, taps):
    init = T.dvector("init")
    rows = max(-t for t in taps)
    x0 = np.arange(1.0, 1.0 + (rows if taps != [-1] else 1))
    f = theta.function([init], fib_like(init if taps != [-1] else init[0], entry))
    vals = list(x0)
    for _ in range(4):
        vals.append(sum(vals[len(vals) + t] for t in taps) * 0.5)
    np.testing.assert_allclose(f(x0), vals[-4:])


@pytest.mark.parametrize("taps, match", [
    (-1, r"output taps must be negative integers, in a list: got -1 \(write 'taps': \[-1\]\)"),
    ([-1, -1], r"output taps must be different, got \[-1, -1\]"),
    ([0], r"negative integers, in a list: got \[0\]"),
    ([], r"negative integers, in a list: got \[\]"),
    (["-1"], r"negative integers"),
    ([True], r"negative integers"),
])
def test_output_taps_theano_refuses_are_typed_errors(taps, match):
    with pytest.raises(GraphError, match=match) as err:
        theta.scan(lambda *p: p[0], outputs_info={"initial": T.dvector("i"), "taps": taps}, n_steps=2)
    assert re.search(r"at .*test_scan_regressions.py:\d+", str(err.value))


@pytest.mark.parametrize("entry, taps", [({"taps": 1}, [1]), ({"taps": None}, [0]), ({"taps": np.int64(-1)}, [-1])])
def test_sequence_taps_as_an_int_or_none_as_theano_wraps_them(entry, taps):
    X = np.arange(6.0)
    x = T.dvector("x")
    out, _ = theta.scan(lambda a: a * 2, sequences={"input": x, **entry})
    np.testing.assert_array_equal(theta.function([x], out)(X), numpy_taps(X, taps, lambda a: a * 2))


@pytest.mark.parametrize("form", ["pairs", "tuple of pairs", "dict", "outputs list and pairs", "empty updates"])
def test_a_step_may_return_its_updates_as_pairs_or_a_dict(form):
    count = theta.shared(np.float64(0.0), name="count")
    x = T.dvector("x")

    def step(a):
        pairs = [(count, count + a)]
        return {"pairs": (a * 2, pairs), "tuple of pairs": (a * 2, tuple(pairs)), "dict": (a * 2, dict(pairs)),
                "outputs list and pairs": ([a * 2], pairs), "empty updates": (a * 2, [])}[form]

    out, updates = theta.scan(step, sequences=x)
    f = theta.function([x], out, updates=updates)
    np.testing.assert_array_equal(f(np.array([1.0, 2.0, 3.0])), [2, 4, 6])
    assert count.get_value() == (0.0 if form == "empty updates" else 6.0)


def test_a_step_returning_only_updates():
    count = theta.shared(np.float64(0.0), name="count")
    out, updates = theta.scan(lambda: [(count, count + 2)], n_steps=3)
    assert out == [] or out is None or len(out) == 0
    theta.function([], [], updates=updates)()
    assert count.get_value() == 6.0


@pytest.mark.parametrize("returned, match", [
    ("text", r"step.*returns 'text'"),
    (({1: 2},), r"updates .*not a shared variable"),
])
def test_step_returns_theano_refuses_are_typed_errors(returned, match):
    x = T.dvector("x")
    with pytest.raises(GraphError, match=match):
        theta.scan(lambda a: returned, sequences=x)


def test_a_window_state_fed_a_sequence_row_of_another_shape_is_refused():
    x, i = T.dmatrix("x"), T.dmatrix("i")
    out, _ = theta.scan(lambda xt, a, b: xt, sequences=x, outputs_info={"initial": i, "taps": [-2, -1]})
    f = theta.function([x, i], out)
    with pytest.raises(ShapeError, match=r"output 0 of the step has shape \(3,\).*has shape \(2,\)"):
        f(np.ones((4, 3)), np.ones((2, 2)))
    np.testing.assert_array_equal(f(np.arange(6.0).reshape(3, 2), np.ones((2, 2))), np.arange(6.0).reshape(3, 2))


def test_a_state_whose_shape_depends_on_the_data_is_checked_at_every_step(backend):
    """The reference backend checks at run time; the kernel backends refuse a step whose shapes
    are unknown when the function is compiled (they never run it on rows of another size)."""
    h, k = T.dvector("h"), T.lscalar("k")

    def cut(hp, k):
        return T.concatenate([hp, hp])[:hp.shape[0] + k]

    out, _ = theta.scan(cut, outputs_info=h, non_sequences=k, n_steps=3)
    f = theta.function([h, k], out)
    if backend != "reference":
        with pytest.raises(theta.errors.BackendError, match="step shapes unknown"):
            f(np.ones(2), 0)
        return
    np.testing.assert_array_equal(f(np.arange(2.0), 0), [[0, 1]] * 3)
    with pytest.raises(ShapeError, match=r"cut at .*test_scan_regressions.py:\d+\): output 0 of the step has shape "
                                         r"\(3,\).*but the state 'h\[t-1\]' it feeds has shape \(2,\)"):
        f(np.ones(2), 1)
