"""Regressions of theta's face on first use (issue 19, items 1 and 3).

Each check runs in a fresh interpreter, because the bugs were in what a fresh ``import theta``
had not loaded yet: the operators of Variable (installed by theta.tensor on import) and the
lazily imported modules (``theta.scan_module.until``).
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.errors import ThetaError


def _fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter; fail the test with its stderr if it fails."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# -- item 1: the operators exist from `import theta` on -----------------------------------------

# Each snippet touches one entry point first. The prologue checks that the tensor API is not
# loaded yet (else the snippet would not test a fresh process).
_PROLOGUE = """
import sys
import numpy as np
def fresh():
    assert "theta.compiler.tensor" not in sys.modules, "the snippet must start before theta.tensor is imported"
"""
ENTRY_POINTS = {
    "shared + 1": "import theta; W = theta.shared(1.0); fresh(); y = W + 1; assert float(y.eval()) == 2.0",
    "reflected ops": ("import theta; W = theta.shared(np.float64(2.0)); fresh()\n"
                      "vals = [(3 - W).eval(), (3 * W).eval(), (3 / W).eval(), (7 // W).eval(), (7 % W).eval(),"
                      " (3 ** W).eval()]\n"
                      "assert [float(v) for v in vals] == [1.0, 6.0, 1.5, 3.0, 1.0, 9.0], vals"),
    "MRG_RandomStreams(seed)": ("from theta.sandbox.rng_mrg import MRG_RandomStreams; fresh()\n"
                                "u = MRG_RandomStreams(1234).uniform((5,)).eval()\n"
                                "assert u.shape == (5,) and ((0 <= u) & (u < 1)).all()"),
    "compat theano.shared * 2": ("import theta.compat; theta.compat.install_theano(); import theano\n"
                                 "W = theano.shared(np.arange(3.0)); fresh(); y = W * 2\n"
                                 "assert y.eval().tolist() == [0.0, 2.0, 4.0]"),
    "comparisons": ("import theta; W = theta.shared(np.arange(3.0)); fresh()\n"
                    "got = [(W < 1).eval(), (W <= 1).eval(), (W > 1).eval(), (W >= 1).eval()]\n"
                    "assert [g.tolist() for g in got] == [[True, False, False], [True, True, False],"
                    " [False, False, True], [False, True, True]]"),
    "unary and logical ops": ("import theta; W = theta.shared(np.array([1, -2, 3])); fresh()\n"
                              "assert (-W).eval().tolist() == [-1, 2, -3] and abs(W).eval().tolist() == [1, 2, 3]\n"
                              "B = theta.shared(np.array([True, False]))\n"
                              "got = [(~B).eval(), (B & True).eval(), (B | False).eval(), (B ^ True).eval(),"
                              " (True & B).eval()]\n"
                              "assert [g.tolist() for g in got] == [[False, True], [True, False], [True, False],"
                              " [False, True], [True, False]], got"),
    "indexing": ("import theta; W = theta.shared(np.arange(6.0).reshape(2, 3)); fresh()\n"
                 "assert W[1].eval().tolist() == [3.0, 4.0, 5.0] and W[:, 1:].eval().tolist() == [[1, 2], [4, 5]]"),
    ".T and .shape": ("import theta; W = theta.shared(np.arange(6.0).reshape(2, 3)); fresh()\n"
                      "assert W.T.eval().shape == (3, 2) and W.shape.eval().tolist() == [2, 3]"),
    "reductions and methods": (
        "import theta; W = theta.shared(np.arange(6.0).reshape(2, 3)); fresh()\n"
        "assert float(W.sum().eval()) == 15.0 and W.mean(axis=0).eval().tolist() == [1.5, 2.5, 3.5]\n"
        "assert W.reshape((3, 2)).eval().shape == (3, 2) and W.flatten().eval().shape == (6,)\n"
        "assert W.dimshuffle(1, 0).eval().shape == (3, 2) and W.astype('int32').dtype == 'int32'\n"
        "assert W.transpose(1, 0).eval().shape == (3, 2) and W.transpose((1, 0)).eval().shape == (3, 2)\n"
        "assert W.dot(W.T).eval().shape == (2, 2) and (W @ W.T).eval().shape == (2, 2)\n"
        "assert int(W.argmax().eval()) == 5 and float(W.max().eval()) == 5.0"),
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_an_operator_works_as_the_first_thing_a_fresh_process_does(name):
    _fresh(_PROLOGUE + ENTRY_POINTS[name])


def test_variable_has_every_method_before_theta_tensor_is_imported():
    """The class of the bug: nothing the tensor module imports may add to Variable later (a
    method installed on import exists only after something imported it)."""
    code = """
        import json, sys, theta
        before = sorted(theta.Variable.__dict__) + sorted(theta.SharedVariable.__dict__)
        assert "theta.compiler.tensor" not in sys.modules
        import theta.tensor, theta.sandbox.rng_mrg, theta.compat, theta.sparse
        after = sorted(theta.Variable.__dict__) + sorted(theta.SharedVariable.__dict__)
        print(json.dumps([sorted(set(after) - set(before)), "theta.compiler.tensor" in sys.modules]))
    """
    added, loaded = json.loads(_fresh(code).stdout)
    assert loaded and added == []


def test_theta_load_still_imports_neither_sympy_nor_jinja2_with_operators_defined():
    code = """
        import sys, theta
        from theta.compiler.graph import Variable
        assert hasattr(Variable, "__add__") and hasattr(Variable, "sum")
        theta.load
        heavy = [m for m in ("sympy", "jinja2", "theta.compiler.tensor") if m in sys.modules]
        assert heavy == [], heavy
    """
    _fresh(code)


# -- item 1: truthiness, as Theano --------------------------------------------------------------

def test_every_variable_is_true_but_comparison_results():
    W = theta.shared(np.zeros(3), name="W")
    x = T.matrix("x")
    for v in (W, x, x + 1, T.eq(x, 0), T.neq(x, 0), x.sum(), T.constant(0.0), T.constant(False)):
        assert bool(v) is True, v
        assert not (not v)


@pytest.mark.parametrize("make", [lambda a, b: a < b, lambda a, b: a <= b, lambda a, b: a > b,
                                  lambda a, b: a >= b, T.lt, T.le, T.gt, T.ge,
                                  lambda a, b: a < 0.5, lambda a, b: 0.5 > b])
def test_the_truth_of_a_comparison_is_a_typed_error(make):
    a, b = T.vector("a"), T.vector("b")
    c = make(a, b)
    with pytest.raises(ThetaError) as info:
        bool(c)
    assert isinstance(info.value, TypeError)          # Theano raises a TypeError here
    assert "T.switch" in str(info.value) and __file__.split(os.sep)[-1] in str(info.value)


def test_a_chained_comparison_raises_instead_of_dropping_a_term():
    a, b, c = T.scalar("a"), T.scalar("b"), T.scalar("c")
    with pytest.raises(ThetaError, match="comparison"):
        a < b < c  # noqa: B015  (Python evaluates (a < b) and (b < c))
    with pytest.raises(ThetaError):
        if a > 0:
            pass


def test_truth_is_decided_by_the_node_so_a_hash_consed_comparison_raises_either_way():
    a = T.vector("a")
    assert T.lt(a, 1.0) is (a < 1.0)          # one node: the op decides, not how it was made
    with pytest.raises(ThetaError):
        bool(T.lt(a, 1.0))


_TUTORIAL_INIT = """
    import numpy as np
    import theta.compat; theta.compat.install_theano()
    import theano, theano.tensor as T

    class RBM:   # the Deep Learning Tutorials' rbm.py / SdA.py / DBN.py constructors
        def __init__(self, n_visible=4, n_hidden=3, W=None, hbias=None, vbias=None):
            if not W:
                W = theano.shared(np.zeros((n_visible, n_hidden)), name="W", borrow=True)
            if not hbias:
                hbias = theano.shared(np.zeros(n_hidden), name="hbias", borrow=True)
            if vbias is None:
                vbias = theano.shared(np.zeros(n_visible), name="vbias", borrow=True)
            self.W, self.hbias, self.vbias = W, hbias, vbias

    from theano.tensor.shared_randomstreams import RandomStreams
    from theano.sandbox.rng_mrg import MRG_RandomStreams
    for given in (RandomStreams(1), MRG_RandomStreams(1)):   # SdA/DBN: `if not theano_rng: theano_rng = ...`
        theano_rng = given
        if not theano_rng:
            theano_rng = None
        assert theano_rng is given

    first = RBM()
    second = RBM(W=first.W, hbias=first.hbias)     # shares the first one's parameters
    assert second.W is first.W and second.hbias is first.hbias
    assert second.vbias is not first.vbias
    x = T.matrix("x")
    if not x:
        raise AssertionError("a symbolic input is true")
    try:
        bool(x < 1)
    except TypeError as e:
        assert "comparison" in str(e), e
    else:
        raise AssertionError("the truth of a comparison passed")
"""


def test_tutorial_if_not_W_pattern_under_compat():
    _fresh(_TUTORIAL_INIT)


# -- item 3: every public name resolves from a fresh interpreter ---------------------------------

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(theta.__file__)))


def _has_all(path: str) -> bool:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return any(isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in (node.targets if isinstance(node, ast.Assign)
                                                               else [node.target]))
               for node in tree.body)


def _walk(package: str) -> list[tuple[str, str]]:
    """(module name, source path) of ``package`` and every module below it, without importing
    the modules (only the packages, to list them)."""
    pkg = importlib.import_module(package)
    found = [(package, pkg.__file__)]
    for info in pkgutil.walk_packages(pkg.__path__, package + ".", onerror=lambda _: None):
        spec = info.module_finder.find_spec(info.name, None)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            found.append((info.name, spec.origin))
    return found


def _private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def _public_modules() -> dict[str, str]:
    """module name -> how the fresh process reaches it: 'attr' (theta's face: the Theano module
    names, reached by attribute access from ``import theta`` alone, as in
    ``theta.scan_module.until``) or 'import' (the implementation packages, by importing them)."""
    mods: dict[str, str] = {}
    face = {name: importlib.import_module for name, _ in _walk("theta") if name != "theta.__main__"}
    face.update({"theta.tensor" + name[len("theta.compiler.tensor"):]: importlib.import_module
                 for name, _ in _walk("theta.compiler.tensor")})
    # theta's lazily resolved module aliases (theta.scan_module, ...) are face modules too
    face.update({f"theta.{name}": (lambda full: getattr(theta, full.split(".")[1])) for name in vars(theta)["_LAZY"]
                 if isinstance(getattr(theta, name), types.ModuleType)})
    covered = set()   # the source files of the face modules
    for name, get in face.items():
        # the face modules are light: import them here to read __all__ (theta.gradient & co.
        # replace themselves by the compiler module they stand for)
        module = get(name)
        if not _private(name) and hasattr(module, "__all__"):
            mods[name] = "attr"
            covered.add(os.path.realpath(module.__file__))
    for package in ("theta.compiler", "theta.runtime", "theta.models", "theta.kernels"):
        for name, path in _walk(package):
            if os.path.realpath(path) not in covered and not _private(name) and _has_all(path):
                mods[name] = "import"
    return mods


PUBLIC_MODULES = _public_modules()

_TOUCH = """
import importlib, sys
name, how = sys.argv[1], sys.argv[2]
import theta
if how == "attr":
    module = theta
    for part in name.split(".")[1:]:
        module = getattr(module, part)
else:
    module = importlib.import_module(name)
missing = []
for public in module.__all__:
    try:
        getattr(module, public)
    except Exception as e:
        missing.append(f"{public}: {type(e).__name__}: {e}")
assert not missing, f"{name}: " + "; ".join(missing)
"""


def test_the_public_modules_are_discovered():
    # the discovery itself must find the modules the issue names, or the test below proves little
    for name in ("theta", "theta.scan_module", "theta.tensor", "theta.tensor.nnet", "theta.tensor.nnet",
                 "theta.gradient", "theta.printing", "theta.sparse", "theta.compat", "theta.sandbox.rng_mrg",
                 "theta.compile", "theta.tensor.signal.pool", "theta.tensor.shared_randomstreams"):
        assert PUBLIC_MODULES.get(name) == "attr", (name, sorted(PUBLIC_MODULES))
    assert any(how == "import" for how in PUBLIC_MODULES.values())


@pytest.mark.parametrize("name", sorted(PUBLIC_MODULES))
def test_every_public_name_resolves_in_a_fresh_interpreter(name):
    proc = subprocess.run([sys.executable, "-c", _TOUCH, name, PUBLIC_MODULES[name]], capture_output=True,
                          text=True, timeout=300, cwd=_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_scan_module_until_in_a_fresh_interpreter():
    _fresh("import theta; u = theta.scan_module.until; assert callable(u)")


def test_a_vector_of_known_length_unpacks_and_anything_else_is_a_typed_error():
    """Theano's iteration rule: ``rows, cols = x.shape`` (and a stack of known pieces) unpacks;
    iterating a tensor of unknown length, or len() of any, is a TypeError naming the variable."""
    x, v = T.matrix("x"), T.vector("v")
    rows, cols = x.shape
    p, q = T.stack([v.sum(), v.max()])
    f = theta.function([x, v], [rows, cols, p, q], backend="reference")
    out = f(np.zeros((3, 5), theta.config.floatX), np.arange(4, dtype=theta.config.floatX))
    assert [int(o) for o in out] == [3, 5, 6, 3]
    for bad, name in ((lambda: list(x), "'x'"), (lambda: len(v), "'v'"), (lambda: sum(v), "'v'")):
        with pytest.raises(theta.errors.NotIterableError, match=name) as info:
            bad()
        assert isinstance(info.value, TypeError)
        assert "test_face_regressions.py" in str(info.value)   # the line that created it
