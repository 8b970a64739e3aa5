"""Random streams (compiler/random.py, compiler/ops/random.py): Philox4x32-10 against its
published known answers, bit-identical numbers on the reference and emu backends, distribution
tests at dropout-layer sizes, Theano's default updates, draws inside scan steps, dropout fused
into the kernels that use the mask, the categorical draws, saving the state, and bad input."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats

import theta
import theta.tensor as T
from theta.compiler.ops.random import philox4x32
from theta.errors import GraphError, ShapeError
from theta.sandbox.rng_mrg import MRG_RandomStreams
from theta.tensor.shared_randomstreams import RandomStreams

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


# ------------------------------------------------------------------------------------ Philox

@pytest.mark.parametrize("counter, key, expected", [
    # Random123's known-answer tests (kat_vectors: philox4x32 10 rounds)
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff, 0xffffffff), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
])
def test_philox_known_answers(counter, key, expected):
    words = philox4x32([np.array([c], dtype=np.uint64) for c in counter], key)
    assert tuple(int(w[0]) for w in words) == expected


# ----------------------------------------------------------- the same bits on every backend

def _draws(srng: RandomStreams, n):
    """Every distribution, at sizes that cross the kernels' vector and block boundaries, one
    of them symbolic."""
    return [srng.uniform((3, 5)), srng.uniform((257,), dtype="float64"), srng.uniform((n, 33), low=-2, high=3),
            srng.normal((1, 1030)), srng.normal((4, 4), avg=1.0, std=2.0, dtype="float64"),
            srng.binomial((31, 9), p=0.3, dtype="float32"), srng.binomial((6,), n=5, p=0.5),
            srng.random_integers((50,), low=-3, high=4)]


def test_reference_and_emu_draw_identical_bits_call_after_call():
    n = T.lscalar("n")
    results = {}
    for backend in ("reference", "emu"):
        srng = RandomStreams(seed=2024)
        f = theta.function([n], _draws(srng, n), backend=backend)
        results[backend] = [f(7), f(7), f(2)]
        srng.seed(2024)
        again = f(7)
        for a, b in zip(results[backend][0], again):
            assert _bits(a) == _bits(b), "seed() must restart the stream"
    for call, (ref, emu) in enumerate(zip(results["reference"], results["emu"])):
        for k, (a, b) in enumerate(zip(ref, emu)):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert _bits(a) == _bits(b), f"draw {k} differs between reference and emu at call {call}"
    first, second = results["reference"][:2]
    assert all(_bits(a) != _bits(b) for a, b in zip(first, second)), "each call must draw new numbers"


def test_streams_and_seeds_are_independent():
    a, b = RandomStreams(1), RandomStreams(2)
    f = theta.function([], [a.uniform((1000,)), a.uniform((1000,)), b.uniform((1000,))])
    u1, u2, u3 = f()
    assert abs(np.corrcoef(u1, u2)[0, 1]) < 0.1 and abs(np.corrcoef(u1, u3)[0, 1]) < 0.1
    assert len(set(np.concatenate([u1, u2, u3]).tolist())) > 2990


# ------------------------------------------------------------------------ distributions

DROPOUT = (256, 1024)   # a dropout layer's mask: batch 256, 1024 units


def test_distributions_at_dropout_sizes():
    srng = RandomStreams(7)
    f = theta.function([], [srng.uniform(DROPOUT), srng.normal(DROPOUT), srng.binomial(DROPOUT, p=0.2),
                            srng.uniform(DROPOUT, dtype="float64"), srng.normal(DROPOUT, dtype="float64")],
                       backend="emu")
    u, z, m, u64, z64 = f()
    n = u.size
    for x in (u, u64):
        assert 0 < x.min() and x.max() < 1
        assert abs(x.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
        assert abs(x.var() - 1 / 12) < 0.002
        assert stats.kstest(x.ravel()[:20000], "uniform").pvalue > 1e-4
    for x in (z, z64):
        assert abs(x.mean()) < 5 / np.sqrt(n) and abs(x.var() - 1) < 0.01
        assert stats.kstest(x.ravel()[:20000], "norm").pvalue > 1e-4
        assert abs(stats.skew(x.ravel())) < 0.02 and abs(stats.kurtosis(x.ravel())) < 0.05
    assert m.dtype == np.int64 and set(np.unique(m)) == {0, 1}
    assert abs(m.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / n)
    assert z.dtype == np.float32 and z64.dtype == np.float64


# ------------------------------------------------------------------------- default updates

def test_default_updates_advance_the_state_unless_turned_off():
    srng = RandomStreams(3)
    u = srng.uniform((4,))
    f = theta.function([], u)
    frozen = theta.function([], u, no_default_updates=True)
    a, b = f(), f()
    assert _bits(a) != _bits(b)
    assert srng.state.get_value()[1] == 2
    assert _bits(frozen()) == _bits(frozen()) and srng.state.get_value()[1] == 2
    # an explicit update of the state wins over the default one
    keep = theta.function([], u, updates=[(srng.state, srng.state)])
    assert _bits(keep()) == _bits(keep())
    assert srng.state_updates[0][0] is srng.state


def test_state_saves_restores_and_pickles():
    srng = RandomStreams(11)
    f = theta.function([], srng.normal((10,)))
    f()
    saved = srng.state.get_value()
    a = f()
    srng.state.set_value(saved)
    assert _bits(f()) == _bits(a)
    srng2 = pickle.loads(pickle.dumps(srng))
    assert np.array_equal(srng2.state.get_value(), srng.state.get_value())
    g = theta.function([], srng2.normal((10,)))     # the copy's draws advance its own state
    assert _bits(g()) != _bits(g()) and srng2.state.get_value()[1] == saved[1] + 3


def test_saved_function_continues_the_stream(tmp_path):
    srng = RandomStreams(5)
    x = T.matrix("x")
    f = theta.function([x], x * srng.binomial(size=x.shape, p=0.5, dtype=x.dtype), backend="emu")
    ones = np.ones((3, 8), "float32")
    f(ones)
    f.save(tmp_path / "job")
    job = theta.load(tmp_path / "job")
    assert _bits(job(ones)) == _bits(f(ones))
    assert _bits(job(ones)) == _bits(f(ones))


# ------------------------------------------------------------------------------- scan steps

@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_scan_steps_draw_new_numbers_and_return_the_state_update(backend):
    srng = RandomStreams(9)
    x = T.dmatrix("x")
    H, updates = theta.scan(lambda xt, h: T.tanh(xt * srng.binomial(size=xt.shape, p=0.5, dtype="float64") + h),
                            sequences=x, outputs_info=T.zeros((6,), dtype="float64"))
    assert list(updates) == [srng.state]
    cost = H.sum()
    f = theta.function([x], [H, theta.grad(cost, x)], updates=updates, backend=backend)
    ones = np.ones((5, 6))
    h1, g1 = f(ones)
    assert srng.state.get_value()[1] == 5            # one counter value per step
    masks = (g1 != 0)                                # the gradient flows through kept units only
    assert len({m.tobytes() for m in masks}) > 1     # each step drew its own mask
    srng.seed(9)
    h_again, _ = f(ones)
    assert _bits(h_again) == _bits(h1)
    if backend == "emu":
        srng.seed(9)
        ref = theta.function([x], [H, theta.grad(cost, x)], updates=updates, backend="reference")(ones)
        # the same masks (tanh itself may differ in the last bit between libms)
        np.testing.assert_array_equal(ref[1] != 0, masks)
        np.testing.assert_allclose(ref[0], h1, rtol=1e-13)
        np.testing.assert_allclose(ref[1], g1, rtol=1e-12)


def test_scan_step_returning_its_own_updates():
    count = theta.shared(np.int64(0), name="count")
    x = T.dvector("x")
    ys, updates = theta.scan(lambda xt: (xt * 2, {count: count + 1}), sequences=x)
    f = theta.function([x], ys, updates=updates)
    np.testing.assert_array_equal(f(np.arange(4.0)), [0, 2, 4, 6])
    assert count.get_value() == 4


# ------------------------------------------------------------------------------ fusion

def _dropout_step(backend: str, seed: int = 1):
    rng = np.random.default_rng(0)
    srng = RandomStreams(seed)
    x, y = T.matrix("x"), T.ivector("y")
    sizes = (64, 32, 32, 10)
    params, h = [], x
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta.shared((rng.standard_normal((n_in, n_out)) * 0.1).astype("float32"), name=f"W{k}")
        b = theta.shared(np.zeros(n_out, "float32"), name=f"b{k}")
        params += [W, b]
        h = T.dot(h, W) + b
        if k < len(sizes) - 2:
            h = T.nnet.relu(h) * srng.binomial(size=h.shape, p=0.5, dtype="float32") * 2
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(h), y))
    grads = theta.grad(cost, params)
    f = theta.function([x, y], cost, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)], backend=backend)
    return f, params, (rng.random((20, 64)).astype("float32"), rng.integers(0, 10, 20).astype("int32"))


# The count stated in the README: the plain MLP step's 14 kernels, plus one that advances the
# random state; each mask is recomputed inside the gemm kernels that apply it (forward and
# backward), none is written to memory.
DROPOUT_STEP_KERNELS = 15


def test_dropout_step_fuses_masks_into_their_consumers_and_matches_reference():
    f, params, args = _dropout_step("emu")
    g, ref_params, _ = _dropout_step("reference")
    for _ in range(3):
        np.testing.assert_allclose(f(*args), g(*args), rtol=1e-5)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-4, atol=1e-6)
    kernels = f.kernels
    assert len(kernels) == DROPOUT_STEP_KERNELS, [k.family for k in kernels]
    drawing = [k for k in kernels if "theta_rand_uniform<" in k.source.split("extern \"C\"")[-1]]
    assert len(drawing) == 4 and all(k.family == "gemm" for k in drawing)   # 2 forward, 2 backward
    assert [k.family for k in kernels].count("elemwise") == 1                 # the state's advance


def test_a_mask_used_twice_in_one_kernel_family_is_recomputed_not_stored():
    srng = RandomStreams(4)
    x = T.matrix("x")
    m = srng.binomial(size=x.shape, p=0.7, dtype="float32")
    out = [T.exp(x) * m, T.sum(x * m, axis=1), T.dot(x, x.T) + 0]
    f = theta.function([x], out, backend="emu")
    g = theta.function([x], out, backend="reference")
    v = np.random.default_rng(1).random((5, 5)).astype("float32")
    got = f(v)
    srng.seed(4)   # the reference draws from the same state
    for a, b in zip(got, g(v)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # the two consumers draw the mask themselves, each reading x: no kernel computes it alone
    drawing = [k for k in f.kernels if "theta_rand_uniform<float>(p" in k.source]
    assert len(drawing) == 2
    assert all(len([p for p in k.params if p.ctype.startswith("const float")]) >= 1 for k in drawing)


# --------------------------------------------------------------------- categorical draws

@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_permutation_choice_multinomial(backend):
    srng = RandomStreams(21)
    mrg = MRG_RandomStreams(21)
    pv = T.dmatrix("pv")
    outs = [srng.permutation(n=10), srng.permutation(size=(3,), n=5),
            srng.choice(size=(4,), a=8, replace=False), srng.choice(size=(2000,), a=3, p=[0.2, 0.5, 0.3]),
            srng.choice(size=(5,), a=np.array([10, 20, 30])), srng.multinomial(size=(4,), n=6, pvals=[0.1, 0.9]),
            mrg.multinomial(pvals=pv), mrg.choice(size=2, p=pv), mrg.uniform((3,))]
    f = theta.function([pv], outs, backend=backend)
    pvals = np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.25]])
    perm, perms, wo, cat, vals, counts, onehot, mchoice, _ = f(pvals)
    assert sorted(perm) == list(range(10)) and all(sorted(p) == list(range(5)) for p in perms)
    assert len(set(wo)) == 4 and wo.min() >= 0 and wo.max() < 8
    freq = np.bincount(cat, minlength=3) / len(cat)
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.05)
    assert set(vals) <= {10, 20, 30}
    assert counts.shape == (4, 2) and (counts.sum(axis=1) == 6).all()
    assert onehot.shape == (2, 3) and (onehot.sum(axis=1) == 1).all() and onehot[0, 1] == 1
    assert mchoice.shape == (2, 2) and mchoice[1, 0] != mchoice[1, 1] and 1 in mchoice[0]
    if backend == "emu":
        srng.seed(21), mrg.seed(21)
        ref = theta.function([pv], outs, backend="reference")(pvals)
        srng.seed(21), mrg.seed(21)
        again = f(pvals)
        for k, (a, b) in enumerate(zip(ref, again)):
            np.testing.assert_array_equal(a, b, err_msg=f"output {k}")


# ---------------------------------------------------------------------------- bad input

def test_bad_random_arguments_are_typed_errors():
    srng = RandomStreams(0)
    with pytest.raises(GraphError, match=r"\[0, 1\]"):
        srng.binomial((3,), p=1.5)
    with pytest.raises(GraphError, match=r"\[0, 1\]"):
        srng.multinomial(pvals=[-0.1, 1.1])
    with pytest.raises(ShapeError, match="negative"):
        srng.uniform((3, -1))
    with pytest.raises(GraphError, match="seed"):
        RandomStreams("abc")
    with pytest.raises(GraphError, match="float32 or float64"):
        srng.uniform((2,), dtype="int32")
    n = T.lscalar("n")
    f = theta.function([n], srng.uniform((n,)))
    with pytest.raises(ShapeError, match="negative"):
        f(-2)
    with pytest.raises(ShapeError, match="ndim"):
        srng.normal((2, 3), ndim=3)
