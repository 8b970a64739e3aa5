"""theta.compat on plausible wrong (or old) usage (issue 29, compat): every refusal is a typed
ThetaError naming what was wrong, and what Theano accepted is accepted."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import theta
from theta.compat import install_theano, uninstall_theano
from theta.compiler.errors import NotSupportedError, OptionError, ShapeError, ThetaError


@pytest.fixture
def theano():
    install_theano()
    try:
        import theano
        yield theano
    finally:
        uninstall_theano()


def _set_device(theano, value):
    theano.config.device = value


# (what the user did, the action, the error: a ThetaError subclass and also this builtin, words of the message)
REFUSED = {
    "config.blas": (lambda th: th.config.blas, NotSupportedError, AttributeError,
                    "theta does not support theano.config.blas"),
    "config.openmp": (lambda th: th.config.openmp, NotSupportedError, AttributeError,
                      "theta does not support theano.config.openmp"),
    "config.blas.ldflags": (lambda th: th.config.blas.ldflags, NotSupportedError, AttributeError, "config.blas"),
    "native theta.config.blas": (lambda th: theta.config.blas, NotSupportedError, AttributeError,
                                 "theta.config has no option 'blas'; known options: floatX"),
    "device opencl0:0": (lambda th: _set_device(th, "opencl0:0"), OptionError, ValueError, "'opencl0:0'"),
    "device tpu": (lambda th: _set_device(th, "tpu"), OptionError, ValueError, "theano.config.device"),
    "unknown tensor function": (lambda th: th.tensor.no_such_function, NotSupportedError, AttributeError,
                                "theta does not support theano.tensor.no_such_function"),
    "unknown theano name": (lambda th: th.no_such_name, NotSupportedError, AttributeError,
                            "theta does not support theano.no_such_name"),
    "input_shape and image_shape": (
        lambda th: th.tensor.nnet.conv2d(th.tensor.tensor4("x"), th.tensor.tensor4("w"), input_shape=(1, 1, 4, 4),
                                         image_shape=(1, 1, 4, 4)), OptionError, ValueError, "image_shape"),
    "image_shape that disagrees": (
        lambda th: th.tensor.nnet.conv2d(th.tensor.tensor4("x", shape=(1, 2, 4, 4)), th.tensor.tensor4("w"),
                                         image_shape=(1, 3, 4, 4)), ShapeError, ValueError, "input_shape"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_compat_refuses_with_a_typed_error(theano, case):
    action, kind, builtin, words = REFUSED[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(kind) as info:
            action(theano)
    assert isinstance(info.value, ThetaError) and isinstance(info.value, builtin)
    assert words in str(info.value)


def test_unknown_config_names_keep_hasattr_and_getattr_default_working(theano):
    assert not hasattr(theano.config, "openmp") and not hasattr(theta.config, "openmp")
    assert getattr(theano.config, "blas", "none") == "none"
    assert getattr(theta.config, "cxx_flags", 7) == 7
    assert theano.config.floatX == theta.config.floatX            # known names still forward
    assert theano.config.exception_verbosity == "low"             # names theta ignores still answer


def test_config_device_accepts_theanos_spellings(theano):
    for value, backend in (("cpu", "reference"), ("cuda", "cuda"), ("cuda0", "cuda"), ("gpu", "cuda"),
                           ("gpu1", "cuda")):
        theano.config.device = value
        assert theta.config.backend == backend, value


def _conv_inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))


@pytest.mark.parametrize("module", ["theano.tensor.nnet", "theano.tensor.nnet.conv"])
def test_conv2d_accepts_theanos_image_shape_keyword(theano, module):
    import importlib
    conv_module = importlib.import_module(module)
    T = theano.tensor
    x, w = T.dtensor4("x"), T.dtensor4("w")
    xv, wv = _conv_inputs()
    with pytest.warns(DeprecationWarning, match="image_shape"):
        old = conv_module.conv2d(x, w, image_shape=xv.shape, filter_shape=wv.shape)
    new = T.nnet.conv2d(x, w, input_shape=xv.shape, filter_shape=wv.shape)
    assert old is new          # the same op: image_shape is input_shape, nothing else
    f = theano.function([x, w], old)
    assert f(xv, wv).shape == (2, 4, 4, 4)
    # the declared shape is checked, as input_shape's is, when called with other shapes
    with pytest.raises(ShapeError):
        f(np.zeros((2, 3, 7, 5)), wv)


def test_conv2d_image_shape_positionally_where_theano_has_it():
    import theta.tensor as T
    x, w = T.dtensor4("x"), T.dtensor4("w")
    with pytest.warns(DeprecationWarning):
        # Theano's order: input, filters, input_shape, filter_shape, border_mode, subsample, filter_flip, image_shape
        a = T.nnet.conv2d(x, w, None, None, "valid", (1, 1), True, (2, 3, 6, 5))
    assert a is T.nnet.conv2d(x, w, input_shape=(2, 3, 6, 5))


def test_scan_module_until_under_compat(theano):
    import theano.scan_module as sm
    assert sm.until is theta.scan_module.until
