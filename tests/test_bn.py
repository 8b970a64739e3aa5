"""T.nnet.bn (Theano's batch normalization): batch_normalization_train / _test and
batch_normalization against a NumPy reference written out here, for 'per-activation',
'spatial' and explicit axes, parameters in reduced or full-rank layout; gradients (verify_grad
and the R-op on the reference, the gradient kernels on emu); the running averages used as
theta.function updates over several steps; how few kernels the forward pass takes; and the
argument checks.
"""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.tensor.nnet import bn

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)


def np_axes(axes, ndim):
    return (0,) if axes == "per-activation" else (0,) + tuple(range(2, ndim)) if axes == "spatial" else tuple(axes)


def np_train(x, gamma, beta, axes, eps=1e-4, rm=None, rv=None, factor=0.1):
    """Theano's AbstractBatchNormTrain.perform, on full-rank (keepdims) parameters."""
    ax = np_axes(axes, x.ndim)
    mean = x.mean(ax, keepdims=True)
    var = x.var(ax, keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    out = (x - mean) * (gamma * invstd) + beta
    res = [out, mean, invstd]
    if rm is not None:
        m = float(np.prod([x.shape[a] for a in ax]))
        res += [rm * (1 - factor) + mean * factor, rv * (1 - factor) + (m / (m - 1)) * var * factor]
    return res


def kept(shape, axes):
    """The parameter shape with the normalized axes left out, and with them as length 1."""
    ax = np_axes(axes, len(shape))
    return (tuple(d for a, d in enumerate(shape) if a not in ax),
            tuple(1 if a in ax else d for a, d in enumerate(shape)))


CASES = [((6, 5), "per-activation"), ((3, 4, 2, 3), "spatial"), ((4, 3, 5), (0, 2)), ((2, 3, 4), [2, 0, 1])]


@pytest.mark.parametrize("full_rank", [False, True], ids=["reduced_params", "full_rank_params"])
@pytest.mark.parametrize("shape,axes", CASES, ids=["per_activation", "spatial", "axes_0_2", "all_axes"])
def test_train_forward(run, rng, shape, axes, full_rank):
    small, keep = kept(shape, axes)
    pshape = keep if full_rank else small
    x = rng.standard_normal(shape) * 3 + 1
    g, b, rm, rv = (rng.standard_normal(pshape) for _ in range(4))
    rv = np.abs(rv)
    got = run(lambda *v: list(bn.batch_normalization_train(v[0], v[1], v[2], axes=axes, epsilon=1e-3,
                                                            running_average_factor=0.3,
                                                            running_mean=v[3], running_var=v[4])),
              x, g, b, rm, rv)
    want = np_train(x, g.reshape(keep), b.reshape(keep), axes, 1e-3, rm.reshape(keep), rv.reshape(keep), 0.3)
    assert got[0].shape == shape
    for k, (gv, wv) in enumerate(zip(got, want)):
        assert gv.shape == (shape if k == 0 else pshape), (k, gv.shape)
        np.testing.assert_allclose(gv, wv.reshape(gv.shape), rtol=1e-10, atol=1e-12, err_msg=f"result {k}")
    # without running averages: three results
    three = run(lambda *v: list(bn.batch_normalization_train(*v, axes=axes)), x, g, b)
    assert len(three) == 3
    np.testing.assert_allclose(three[0], np_train(x, g.reshape(keep), b.reshape(keep), axes)[0], rtol=1e-10)


def test_train_float32(run, rng, float32):
    x = rng.standard_normal((16, 7)).astype("float32")
    g, b = rng.standard_normal(7).astype("float32"), rng.standard_normal(7).astype("float32")
    out, mean, invstd = run(lambda *v: list(bn.batch_normalization_train(*v)), x, g, b)
    assert out.dtype == mean.dtype == invstd.dtype == "float32"
    want = np_train(x.astype("float64"), g, b, "per-activation")
    np.testing.assert_allclose(out, want[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,axes", CASES[:3], ids=["per_activation", "spatial", "axes_0_2"])
def test_test_mode_and_batch_normalization(run, rng, shape, axes):
    small, keep = kept(shape, axes)
    x = rng.standard_normal(shape)
    g, b, m = (rng.standard_normal(small) for _ in range(3))
    v = np.abs(rng.standard_normal(small)) + 0.1
    full = [a.reshape(keep) for a in (g, b, m, v)]
    want = (x - full[2]) * (full[0] / np.sqrt(full[3] + 1e-4)) + full[1]
    got = run(lambda *a: [bn.batch_normalization_test(*a, axes=axes),
                          bn.batch_normalization_test(a[0], *(t.reshape(keep) for t in a[1:]), axes=axes)],
              x, g, b, m, v)
    for k in range(2):
        np.testing.assert_allclose(got[k], want, rtol=1e-12, err_msg=f"layout {k}")
    std = np.sqrt(full[3])
    got = run(lambda xx, gg, bb, mm, ss: [bn.batch_normalization(xx, gg, bb, mm, ss, mode="low_mem"),
                                          bn.batch_normalization(xx, gg, bb, mm, ss, mode="high_mem")],
              x, full[0], full[1], full[2], std)
    for k in range(2):
        np.testing.assert_allclose(got[k], (x - full[2]) / std * full[0] + full[1], rtol=1e-12)


def test_train_grad(vgrad, rng):
    x = rng.standard_normal((5, 4))
    g, b = rng.standard_normal(4), rng.standard_normal(4)

    def flat(*v):
        out, mean, invstd = bn.batch_normalization_train(*v)
        return T.concatenate([T.flatten(out), mean, invstd])
    vgrad(flat, x, g, b)


def test_train_grad_spatial(vgrad, rng):
    x = rng.standard_normal((2, 3, 2, 3))
    g, b = rng.standard_normal((1, 3, 1, 1)), rng.standard_normal((1, 3, 1, 1))
    vgrad(lambda *v: bn.batch_normalization_train(*v, axes="spatial", epsilon=1e-2)[0], x, g, b)


def test_test_mode_grad(vgrad, rng):
    x = rng.standard_normal((4, 3))
    g, b, m = (rng.standard_normal(3) for _ in range(3))
    v = np.abs(rng.standard_normal(3)) + 0.5
    vgrad(lambda *a: bn.batch_normalization_test(*a), x, g, b, m, v)
    vgrad(lambda *a: bn.batch_normalization(*a), x, g, b, m, v + 1)


@pytest.mark.parametrize("backend_name", ["reference", "emu"])
def test_running_averages_as_updates(float64, rng, backend_name):
    """The new running averages as updates of shared variables, over several steps; on emu the
    forward pass is three kernels (the mean with the running mean in its epilogue, the
    variance with invstd and the running variance in its epilogue, the normalization)."""
    x = T.dmatrix("x")
    gamma = theta.shared(np.ones(5), name="gamma")
    beta = theta.shared(np.zeros(5), name="beta")
    rm = theta.shared(np.zeros(5), name="running_mean")
    rv = theta.shared(np.ones(5), name="running_var")
    out, mean, invstd, new_rm, new_rv = bn.batch_normalization_train(x, gamma, beta, running_mean=rm,
                                                                      running_var=rv)
    step = theta.function([x], out, updates=[(rm, new_rm), (rv, new_rv)], backend=backend_name)
    want_m, want_v = np.zeros(5), np.ones(5)
    for _ in range(3):
        xv = rng.standard_normal((8, 5)) * 2 + 3
        got = step(xv)
        want_m = 0.9 * want_m + 0.1 * xv.mean(0)
        want_v = 0.9 * want_v + 0.1 * xv.var(0, ddof=1)      # the unbiased estimate m / (m - 1)
        np.testing.assert_allclose(got, (xv - xv.mean(0)) / np.sqrt(xv.var(0) + 1e-4), rtol=1e-10)
    np.testing.assert_allclose(rm.get_value(), want_m, rtol=1e-12)
    np.testing.assert_allclose(rv.get_value(), want_v, rtol=1e-12)
    # the running averages then normalize at test time
    infer = theta.function([x], bn.batch_normalization_test(x, gamma, beta, rm, rv), backend=backend_name)
    xv = rng.standard_normal((3, 5))
    np.testing.assert_allclose(infer(xv), (xv - want_m) / np.sqrt(want_v + 1e-4), rtol=1e-12)
    if backend_name == "emu":
        assert [k.family for k in step.kernels] == ["reduce", "reduce", "elemwise"]


def test_argument_checks(float64):
    x, v = T.dmatrix("x"), T.dvector("v")
    with pytest.raises(ValueError, match="invalid axes"):
        bn.batch_normalization_train(x, v, v, axes="channels")
    with pytest.raises(ValueError, match="at least one normalization axis"):
        bn.batch_normalization_train(x, v, v, axes=())
    with pytest.raises(ValueError, match="less than ndim"):
        bn.batch_normalization_train(x, v, v, axes=(0, 2))
    with pytest.raises(ValueError, match="both be given or both be None"):
        bn.batch_normalization_train(x, v, v, running_mean=v)
    with pytest.raises(ValueError, match="epsilon must be at least 1e-5"):
        bn.batch_normalization_train(x, v, v, epsilon=1e-6)
    with pytest.raises(ValueError, match=r"'gamma'.*rank"):
        bn.batch_normalization_train(x, T.dtensor3("gamma"), v)
    with pytest.raises(ValueError, match=r"running_var.*rank 1"):
        bn.batch_normalization_train(x, v, v, running_mean=v, running_var=x)
    with pytest.raises(ValueError, match="rank"):
        bn.batch_normalization_test(x, v, v, v, x)
    with pytest.raises(ValueError, match="low_mem"):
        bn.batch_normalization(x, v, v, v, v, mode="fast")
