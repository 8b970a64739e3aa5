"""The suite itself: every test function checks something.

A test that calls code and asserts nothing passes whatever the code does. This reads every test
module under tests/ (with ast, importing nothing) and lists the test functions in which nothing
can fail: no ``assert``, no ``pytest.raises``/``warns``/``fail``, no ``np.testing.assert_*``, and
no call of a helper or fixture (defined anywhere under tests/) that does one of these.
"""
from __future__ import annotations

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent

# callables from outside tests/ that fail when what they check does not hold
CHECKING_CALLS = {"verify_grad"}
CHECKING_ATTRIBUTES = {"raises", "warns", "deprecated_call", "fail"}


def _called_names(node: ast.AST) -> set:
    """Names called bare (``helper(x)``, not ``obj.method(x)``: a method is not the helper)."""
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _checks_directly(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Assert):
            return True
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name.startswith("assert_") or name in CHECKING_CALLS or (
                    isinstance(f, ast.Attribute) and name in CHECKING_ATTRIBUTES):
                return True
    return False


def _functions(root: pathlib.Path) -> list:
    """(path, FunctionDef) for every function under ``root``, nested ones included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if "standin" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((path, node))
    return found


def unchecked_tests(root: pathlib.Path = TESTS) -> list:
    functions = _functions(root)
    # Helpers (and fixtures, by their name) that check, to a fixed point as helpers call helpers.
    # A name counts where the test can see it: its own module, or a shared one (conftest.py,
    # fuzz.py: any module under tests/ that is not itself a test module).
    def shared(path: pathlib.Path) -> bool:
        return not path.name.startswith("test_")

    checking = {(path, fn.name) for path, fn in functions if _checks_directly(fn)}
    while True:
        visible = {}
        for path, name in checking:
            visible.setdefault(None if shared(path) else path, set()).add(name)
        more = {(path, fn.name) for path, fn in functions
                if (path, fn.name) not in checking
                and _called_names(fn) & (visible.get(path, set()) | visible.get(None, set()))}
        if not more:
            break
        checking |= more
    nothing = []
    for path, fn in functions:
        if not (fn.name.startswith("test") and path.name.startswith("test_")) or (path, fn.name) in checking:
            continue
        seen = visible.get(path, set()) | visible.get(None, set())
        if (_called_names(fn) | {a.arg for a in fn.args.args}) & seen:
            continue
        nothing.append(f"{path.relative_to(root)}:{fn.lineno} {fn.name}")
    return nothing


def test_every_test_function_can_fail():
    assert unchecked_tests() == []


def test_the_check_finds_a_test_that_checks_nothing(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def same():\n"
        "    def check(a, b):\n"
        "        assert a == b\n"
        "    return check\n")
    (tmp_path / "test_x.py").write_text(
        "import numpy as np, pytest\n"
        "def helper(x):\n"
        "    np.testing.assert_allclose(x, 1)\n"
        "def indirect(x):\n"
        "    helper(x)\n"
        "def test_calls_only(f):\n"
        "    f(1)\n"
        "def test_asserts(f):\n"
        "    assert f(1) == 2\n"
        "def test_raises(f):\n"
        "    with pytest.raises(ValueError):\n"
        "        f(1)\n"
        "def test_through_helpers(f):\n"
        "    indirect(f(1))\n"
        "def test_through_a_fixture(f, same):\n"
        "    same(f(1), 2)\n"
        "def test_computes_and_drops(f):\n"
        "    d = f(1)\n")
    assert unchecked_tests(tmp_path) == ["test_x.py:6 test_calls_only", "test_x.py:17 test_computes_and_drops"]
