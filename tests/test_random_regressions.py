"""Random-stream arguments that NumPy and Theano refuse (issue 29, item 5), and permutations
that scale: every bad argument is refused, a constant when the graph is built, a symbolic one
when the function runs (a GraphError from the reference backend and, through the status word,
from emu), and permutation(30000) is a valid permutation, deterministic, the same on both."""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import GraphError, ShapeError
from theta.sandbox.rng_mrg import MRG_RandomStreams
from theta.tensor.shared_randomstreams import RandomStreams

HERE = "test_random_regressions.py"

# (name, draw(srng, mrg) with constant bad arguments, the error, a regex the message matches)
CONSTANT = [
    ("random_integers low > high", lambda s, m: s.random_integers(size=(4,), low=5, high=2),
     GraphError, r"random_integers: low must not exceed high.*low=5 and high=2"),
    ("choice p sums to 0.4", lambda s, m: s.choice(size=(4,), a=2, p=[.2, .2]),
     GraphError, r"choice: p must sum to 1.*sums 0\.4"),
    ("choice len(p) != a", lambda s, m: s.choice(size=(4,), a=5, p=[.5, .5]),
     ShapeError, r"choice: p must have one probability per element of a \(5\)"),
    ("choice len(p) != len(a)", lambda s, m: s.choice(size=(4,), a=np.array([1, 2, 3]), p=[.5, .5]),
     ShapeError, r"one probability per element of a \(3\)"),
    ("choice len(p) != a, static shape", lambda s, m: s.choice(size=(4,), a=5, p=T.tensor("float64", shape=(2,), name="p")),
     ShapeError, r"one probability per element of a \(5\), got 'p' float64\[2\]"),
    ("choice p outside [0, 1]", lambda s, m: s.choice(size=(4,), a=2, p=[1.5, -.5]),
     GraphError, r"choice: p must hold probabilities in \[0, 1\]"),
    ("choice without replacement, too many", lambda s, m: s.choice(size=(6,), a=5, replace=False),
     GraphError, r"asks for 6 samples without replacement, but there are only 5"),
    ("choice without replacement, too few non-zero p", lambda s, m: s.choice(size=(3,), a=4, replace=False,
                                                                            p=[.5, .5, 0, 0]),
     GraphError, r"3 samples without replacement, but p .* has 2 non-zero probabilities"),
    ("binomial p = 1.7", lambda s, m: s.binomial(size=(4,), p=1.7),
     GraphError, r"binomial: p must hold probabilities in \[0, 1\]"),
    ("binomial p = nan", lambda s, m: s.binomial(size=(4,), p=float("nan")),
     GraphError, r"binomial: p must hold probabilities"),
    ("multinomial pvals sums to 0.5", lambda s, m: s.multinomial(size=(2,), n=3, pvals=[.25, .25]),
     GraphError, r"multinomial: pvals must sum to 1"),
    ("MRG choice size > categories", lambda s, m: m.choice(size=5, p=np.full((2, 3), 1 / 3)),
     GraphError, r"MRG_RandomStreams\.choice: size=5 asks for 5 samples.*only 3 categories"),
    ("MRG choice rows not summing to 1", lambda s, m: m.choice(size=1, p=np.full((2, 3), .2)),
     GraphError, r"MRG_RandomStreams\.choice: p must sum to 1"),
    ("permutation n < 0", lambda s, m: s.permutation(n=-1), GraphError, r"permutation: n must be"),
]


@pytest.mark.parametrize("name, make, error, match", CONSTANT, ids=[c[0] for c in CONSTANT])
def test_constant_bad_arguments_are_refused_when_the_graph_is_built(name, make, error, match):
    with pytest.raises(error, match=match) as info:
        make(RandomStreams(1), MRG_RandomStreams(1))
    assert HERE in str(info.value)   # the user's line


# (name, symbolic inputs, draw(srng, mrg, *inputs), good values, bad values, regex)
def _ints():
    return [T.lscalar("low"), T.lscalar("high")]


SYMBOLIC = [
    ("random_integers low > high", _ints, lambda s, m, lo, hi: s.random_integers(size=(4,), low=lo, high=hi),
     (2, 5), (5, 2), r"random_integers: low must not exceed high.*'high'"),
    ("choice p sums to 0.4", lambda: [T.dvector("p")], lambda s, m, p: s.choice(size=(4,), a=2, p=p),
     (np.array([.3, .7]),), (np.array([.2, .2]),), r"choice: p must sum to 1.*'p'"),
    ("choice len(p) != a", lambda: [T.dvector("p")], lambda s, m, p: s.choice(size=(4,), a=5, p=p),
     (np.full(5, .2),), (np.array([.5, .5]),), r"choice: p must have one probability per element of a \(5\)"),
    ("binomial p = 1.7", lambda: [T.dscalar("p")], lambda s, m, p: s.binomial(size=(4,), p=p),
     (0.5,), (1.7,), r"binomial: p must hold probabilities in \[0, 1\].*'p'"),
    ("binomial p vector with nan", lambda: [T.dvector("p")], lambda s, m, p: s.binomial(p=p, size=(3,)),
     (np.array([0., .5, 1.]),), (np.array([.5, np.nan, .5]),), r"binomial: p must hold probabilities"),
    ("multinomial pvals sums to 0.5", lambda: [T.dvector("pv")], lambda s, m, pv: s.multinomial(size=(2,), n=3, pvals=pv),
     (np.array([.5, .5]),), (np.array([.25, .25]),), r"multinomial: pvals must sum to 1"),
    ("MRG choice size > categories", lambda: [T.dmatrix("p")], lambda s, m, p: m.choice(size=5, p=p),
     (np.full((2, 6), 1 / 6),), (np.full((2, 3), 1 / 3),), r"asks for 5 samples without replacement"),
    ("choice without replacement, too few non-zero p", lambda: [T.dvector("p")],
     lambda s, m, p: s.choice(size=(3,), a=4, replace=False, p=p),
     (np.full(4, .25),), (np.array([.5, .5, 0, 0]),), r"3 samples without replacement, but p .*'p'.* fewer non-zero"),
    ("choice without replacement from a short a", lambda: [T.lvector("a")],
     lambda s, m, a: s.choice(size=(4,), a=a, replace=False),
     (np.arange(6),), (np.arange(3),), r"asks for 4 samples without replacement"),
]


@pytest.mark.parametrize("backend", ["reference", "emu"])
@pytest.mark.parametrize("name, inputs, make, good, bad, match", SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
def test_symbolic_bad_arguments_are_refused_when_the_function_runs(backend, name, inputs, make, good, bad, match):
    xs = inputs()
    streams = [RandomStreams(3), MRG_RandomStreams(3)]
    out = make(*streams, *xs)
    f = theta.function(xs, out, backend=backend)
    f(*good)                                         # good values draw
    after_good = [s.state.get_value()[1] for s in streams]
    assert sum(after_good) == 1
    with pytest.raises(GraphError, match=match) as info:
        f(*bad)
    assert HERE in str(info.value)                   # the line of the draw
    assert [s.state.get_value()[1] for s in streams] == after_good   # the failed call updated nothing


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_symbolic_checks_keep_the_numbers(backend):
    """A checked argument draws what the unchecked one drew: the check adds an exact zero."""
    p = T.dscalar("p")
    lo, hi = T.lscalar("lo"), T.lscalar("hi")
    srng = RandomStreams(9)
    f = theta.function([p, lo, hi], [srng.binomial(size=(50,), p=p), srng.random_integers((50,), lo, hi)],
                       backend=backend)
    srng2 = RandomStreams(9)
    g = theta.function([], [srng2.binomial(size=(50,), p=0.3), srng2.random_integers((50,), 2, 7)],
                       backend=backend)
    for a, b in zip(f(0.3, 2, 7), g()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_mrg_choice_shape_is_rows_by_size(backend):
    p = T.dmatrix("p")
    f = theta.function([p], MRG_RandomStreams(4).choice(size=2, p=p), backend=backend)
    out = f(np.full((3, 5), 0.2))
    assert out.shape == (3, 2)
    assert all(len(set(row)) == 2 for row in out) and out.min() >= 0 and out.max() < 5


def test_permutation_of_30000_is_valid_deterministic_and_the_same_on_emu():
    n = 30000
    srng = RandomStreams(5)
    perm = srng.permutation(n=n)
    ref = theta.function([], perm, backend="reference")
    first = ref()
    assert first.shape == (n,) and np.array_equal(np.sort(first), np.arange(n))
    assert not np.array_equal(first, np.arange(n))
    second = ref()
    assert np.array_equal(np.sort(second), np.arange(n)) and not np.array_equal(first, second)  # new call, new numbers
    srng.seed(5)
    assert np.array_equal(ref(), first)                              # same seed, same permutation
    srng.seed(5)
    emu = theta.function([], perm, backend="emu")
    np.testing.assert_array_equal(emu(), first)                      # bit for bit on emu


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_permutation_rows_and_small_n(backend):
    srng = RandomStreams(6)
    outs = [srng.permutation(size=(7,), n=n) for n in (1, 2, 3, 17)]
    f = theta.function([], outs, backend=backend)
    for n, out in zip((1, 2, 3, 17), f()):
        assert out.shape == (7, n)
        assert all(np.array_equal(np.sort(row), np.arange(n)) for row in out)
    big = f()[3]
    assert len({tuple(r) for r in big}) > 1                          # rows differ


def test_permutation_is_uniform_enough():
    """Every position takes every value about equally often (a biased Feistel would not)."""
    srng = RandomStreams(8)
    rows = theta.function([], srng.permutation(size=(4000,), n=5), backend="reference")()
    counts = np.stack([np.bincount(rows[:, j], minlength=5) for j in range(5)])
    np.testing.assert_allclose(counts / 4000, 0.2, atol=0.03)


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_choice_without_replacement_draws_distinct_values(backend):
    srng = RandomStreams(11)
    a = T.lvector("a")
    f = theta.function([a], [srng.choice(size=(2, 3), a=a, replace=False), srng.choice(size=(4,), a=9, replace=False)],
                       backend=backend)
    x, y = f(np.arange(100, 110))
    assert x.shape == (2, 3) and len(set(x.ravel())) == 6 and set(x.ravel()) <= set(range(100, 110))
    assert len(set(y)) == 4 and y.min() >= 0 and y.max() < 9


def test_a_saved_program_keeps_its_argument_checks(tmp_path):
    """The check's message travels in the manifest: a loaded function refuses the same way."""
    p = T.dscalar("p")
    srng = RandomStreams(2)
    f = theta.function([p], srng.binomial(size=(8,), p=p), backend="emu")
    f(0.5)
    f.save(tmp_path / "prog")
    g = theta.load(tmp_path / "prog")
    assert g(0.5).shape == (8,)
    with pytest.raises(GraphError, match=r"binomial: p must hold probabilities in \[0, 1\]") as info:
        g(1.7)
    assert HERE in str(info.value)


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_a_bad_probability_inside_a_scan_step_is_refused(backend):
    srng = RandomStreams(1)
    ps = T.dvector("ps")
    out, updates = theta.scan(lambda p: srng.binomial(size=(3,), p=p, dtype="float64"), sequences=ps)
    f = theta.function([ps], out, updates=updates, backend=backend)
    assert f(np.array([0.1, 0.9])).shape == (2, 3)
    with pytest.raises(GraphError, match=r"binomial: p must hold probabilities in \[0, 1\].*'ps\[t\]'"):
        f(np.array([0.1, 1.9]))
