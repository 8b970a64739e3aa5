"""The public API is documented: every name in ``__all__`` of the public modules has a docstring
(numpydoc style, with a Parameters section where it takes parameters), and ``help()`` lists them."""
from __future__ import annotations

import importlib
import inspect
import pydoc
import types

import pytest

MODULES = [
    "theta",
    "theta.tensor",
    "theta.tensor.nnet",
    "theta.tensor.nnet.bn",
    "theta.tensor.signal.pool",
    "theta.tensor.shared_randomstreams",
    "theta.sandbox.rng_mrg",
    "theta.gradient",
    "theta.printing",
    "theta.sparse",
    "theta.distributed",
    "theta.compat",
    "theta.models.layers",
    "theta.models.classifiers",
    "theta.models.optim",
    "theta.models.train",
    "theta.models.jobs",
    "theta.models.zoo",
    "theta.models.autoencoders",
    "theta.models.rbm",
    "theta.models.recurrent",
    "theta.models.data",
    "theta.models.checkpoint",
    "theta.models.search",
    "theta.models.plots",
    "theta.models.record",
    "theta.models.schema",
    "theta.models.paths",
]


def _module(name: str):
    if name == "theta.tensor.nnet.bn":
        import theta.tensor  # noqa: F401  (registers theta.tensor.nnet.bn)
    return importlib.import_module(name)


def _documented_parameters(obj) -> list[str]:
    """The parameters a caller passes (not self, not a bare ``*args``/``**kwargs``)."""
    target = obj
    if inspect.isclass(obj):
        if issubclass(obj, BaseException) and "__init__" not in vars(obj):
            return []
        target = obj.__init__
        if target is object.__init__:
            return []
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _public(name: str):
    mod = _module(name)
    assert isinstance(getattr(mod, "__all__", None), (list, tuple)), f"{name} has no __all__"
    assert mod.__doc__ and mod.__doc__.strip(), f"{name} has no module docstring"
    for attr in mod.__all__:
        yield attr, getattr(mod, attr)


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_documented(name):
    problems = []
    for attr, obj in _public(name):
        if isinstance(obj, types.ModuleType) or not callable(obj):
            continue
        doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
        if inspect.isclass(obj) and not (doc and doc.strip()):
            doc = None
        if not (doc and doc.strip()):
            problems.append(f"{attr}: no docstring")
            continue
        params = _documented_parameters(obj)
        if params:
            init_doc = inspect.getdoc(obj.__init__) if inspect.isclass(obj) else ""
            if "Parameters" not in doc and "Parameters" not in (init_doc or ""):
                problems.append(f"{attr}{tuple(params)}: no Parameters section")
    assert not problems, f"{name}: " + "; ".join(problems)


def test_all_names_exist():
    for name in MODULES:
        mod = _module(name)
        missing = [a for a in mod.__all__ if not hasattr(mod, a)]
        assert not missing, f"{name}.__all__ lists missing names {missing}"


def test_help_lists_tensor_functions():
    import theta.tensor as T
    text = pydoc.render_doc(T, renderer=pydoc.plaintext)
    for word in ("dot", "matrix", "fmatrix", "sigmoid", "sum", "Parameters"):
        assert word in text, word
    # generated declarations carry their own documentation
    assert "float32" in (T.fmatrix.__doc__ or "")
    assert "Parameters" in (T.exp.__doc__ or "")


def test_help_lists_theta_functions():
    import theta
    for name in ("function", "grad", "shared", "scan", "load", "In"):
        assert name in theta.__all__
        assert getattr(theta, name).__doc__
