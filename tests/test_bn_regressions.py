"""Batch normalization met with plausible wrong usage (issue 29): every bad argument is a
typed error (OptionError, ShapeError, DTypeError, GraphError: each still the ValueError or
TypeError Theano raised) that names the argument and the user's line, instead of a plain
ValueError, a NumPy TypeError (epsilon=None) or a failure inside sympy (a symbolic epsilon)."""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import DTypeError, GraphError, OptionError, ShapeError, ThetaError
from theta.tensor.nnet import bn

HERE = "test_bn_regressions.py"


def _x():
    return T.dmatrix("x")


def _g():
    return T.dvector("gamma")


CASES = [
    ("mode", lambda: bn.batch_normalization(_x(), _g(), _g(), _g(), _g(), mode="fast"),
     OptionError, r"mode must be 'low_mem' or 'high_mem', got 'fast'"),
    ("mode None", lambda: bn.batch_normalization(_x(), _g(), _g(), _g(), _g(), mode=None),
     OptionError, r"mode must be"),
    ("axes string", lambda: bn.batch_normalization_train(_x(), _g(), _g(), axes="channel"),
     OptionError, r"invalid axes 'channel'"),
    ("axes int", lambda: bn.batch_normalization_train(_x(), _g(), _g(), axes=0),
     OptionError, r"invalid axes 0"),
    ("axes of floats", lambda: bn.batch_normalization_train(_x(), _g(), _g(), axes=(0.5,)),
     OptionError, r"invalid axes \(0\.5,\)"),
    ("axes empty", lambda: bn.batch_normalization_train(_x(), _g(), _g(), axes=()),
     ShapeError, r"at least one normalization axis"),
    ("axes out of range", lambda: bn.batch_normalization_test(_x(), _g(), _g(), _g(), _g(), axes=(0, 2)),
     ShapeError, r"axes should be less than ndim \(<2\)"),
    ("axes repeated", lambda: bn.batch_normalization_train(_x(), _g(), _g(), axes=(0, 0)),
     ShapeError, r"repeated axes"),
    ("epsilon None", lambda: bn.batch_normalization_train(_x(), _g(), _g(), epsilon=None),
     DTypeError, r"epsilon must be a number, got None"),
    ("epsilon string", lambda: bn.batch_normalization_test(_x(), _g(), _g(), _g(), _g(), epsilon="1e-3"),
     DTypeError, r"epsilon must be a number, got '1e-3'"),
    ("epsilon symbolic", lambda: bn.batch_normalization_train(_x(), _g(), _g(), epsilon=T.dscalar("eps")),
     DTypeError, r"epsilon must be a number known when the graph is built.*'eps'"),
    ("epsilon symbolic (test)", lambda: bn.batch_normalization_test(_x(), _g(), _g(), _g(), _g(),
                                                                    epsilon=T.dscalar("eps")),
     DTypeError, r"epsilon must be a number known"),
    ("epsilon too small", lambda: bn.batch_normalization_train(_x(), _g(), _g(), epsilon=1e-6),
     GraphError, r"epsilon must be at least 1e-5"),
    ("epsilon nan", lambda: bn.batch_normalization_train(_x(), _g(), _g(), epsilon=float("nan")),
     GraphError, r"epsilon must be finite"),
    ("factor symbolic", lambda: bn.batch_normalization_train(_x(), _g(), _g(), running_average_factor=T.dscalar("f"),
                                                             running_mean=_g(), running_var=_g()),
     DTypeError, r"running_average_factor must be a number known"),
    ("factor None", lambda: bn.batch_normalization_train(_x(), _g(), _g(), running_average_factor=None),
     DTypeError, r"running_average_factor must be a number"),
    ("running mean alone", lambda: bn.batch_normalization_train(_x(), _g(), _g(), running_mean=_g()),
     GraphError, r"both be given or both be None"),
    ("gamma rank", lambda: bn.batch_normalization_train(_x(), T.dtensor3("gamma"), _g()),
     ShapeError, r"'gamma'.*rank"),
]


@pytest.mark.parametrize("name, make, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_batch_norm_arguments_are_typed_errors(name, make, error, match):
    with pytest.raises(error, match=match) as info:
        make()
    assert isinstance(info.value, ThetaError) and HERE in str(info.value)


def test_a_constant_epsilon_variable_is_its_value():
    """T.constant(1e-3) is a number known when the graph is built: the same as 1e-3."""
    x, g = _x(), _g()
    a = bn.batch_normalization_train(x, g, g, epsilon=T.constant(1e-3))[0]
    b = bn.batch_normalization_train(x, g, g, epsilon=1e-3)[0]
    f = theta.function([x, g], [a, b], backend="reference")
    xv, gv = np.random.default_rng(0).standard_normal((4, 3)), np.ones(3)
    out_a, out_b = f(xv, gv)
    np.testing.assert_allclose(out_a, out_b, rtol=1e-6)   # T.constant rounds 1e-3 to floatX
