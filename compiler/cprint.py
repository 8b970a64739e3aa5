"""Printing elementwise sympy expressions as CUDA C.

Each elementwise node becomes C statements: common subexpressions are named once (sympy.cse),
float32 code uses float literals (``0.5f``) and float math (``expf``), small integer powers
are multiplications, and theta's own scalar functions (sigmoid, softplus, switch, the
comparisons) print as the ``theta_*`` device functions of kernels/prelude.cuh.j2.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter


CTYPES = {
    "bool": "bool", "int8": "signed char", "int16": "short", "int32": "int", "int64": "long long",
    "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int",
    "uint64": "unsigned long long", "float32": "float", "float64": "double",
}

# sympy function -> C function for (float32, float64)
_MATH = {
    "exp": ("expf", "exp"), "log": ("logf", "log"), "tanh": ("tanhf", "tanh"), "sin": ("sinf", "sin"),
    "cos": ("cosf", "cos"), "erf": ("erff", "erf"), "log1p": ("log1pf", "log1p"), "expm1": ("expm1f", "expm1"),
    "sqrt": ("sqrtf", "sqrt"),
}
_THETA_FUNCS = {
    "sigmoid": "theta_sigmoid", "softplus": "theta_softplus", "relu": "theta_relu", "abs_": "theta_abs",
    "sgn": "theta_sgn", "round_half_even": "theta_rint", "floor_": "theta_floor", "ceil_": "theta_ceil",
    "maximum": "theta_max", "minimum": "theta_min", "intdiv": "theta_intdiv", "mod": "theta_mod",
}
_OPERATORS = {"lt": "<", "gt": ">", "le": "<=", "ge": ">=", "eq": "==", "neq": "!=", "and_": "&&", "or_": "||"}


class ThetaCPrinter(C99CodePrinter):
    """C99 printer specialised to one compute dtype (the dtype float literals and math take)."""

    def __init__(self, dtype: str) -> None:
        super().__init__({"strict": False})
        self.dtype = dtype
        self.single = dtype == "float32"

    # literals ----------------------------------------------------------------------------------
    def _print_Float(self, e):
        text = repr(float(e))
        if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
            text += ".0"
        if text in ("inf", "-inf"):
            return ("-" if text[0] == "-" else "") + ("INFINITY" if self.single else "HUGE_VAL")
        if text == "nan":
            return "NAN"
        return text + ("f" if self.single else "")

    def _print_Rational(self, e):
        if e.q == 1:
            return self._print_Integer(e)
        return self._print_Float(sp.Float(e))

    def _print_Integer(self, e):
        if self.dtype.startswith("float"):
            return f"{int(e)}.0" + ("f" if self.single else "")
        return str(int(e)) + ("LL" if abs(int(e)) >= 2 ** 31 else "")

    def _print_Half(self, e):
        return self._print_Rational(e)

    def _print_NegativeOne(self, e):
        return self._print_Integer(e)

    def _print_One(self, e):
        return self._print_Integer(e)

    def _print_Zero(self, e):
        return self._print_Integer(e)

    # sympy's special values, should a fold produce one (theta keeps them out where it can)
    def _print_Infinity(self, e):
        return "INFINITY" if self.single else "HUGE_VAL"

    def _print_NegativeInfinity(self, e):
        return "(-" + self._print_Infinity(e) + ")"

    def _print_ComplexInfinity(self, e):   # unsigned: as +inf, so zoo*x is NumPy's x/0
        return self._print_Infinity(e)

    def _print_NaN(self, e):
        return "NAN"

    def _print_Exp1(self, e):
        return self._print_Float(sp.Float(sp.E))

    def _print_Pi(self, e):
        return self._print_Float(sp.Float(sp.pi))

    # integer arithmetic wraps (theta_wadd/theta_wmul in kernels/prelude.cuh.j2: a signed
    # overflow is undefined in C, and compilers fold x + 1 > x to true) -------------------------
    @property
    def integer(self) -> bool:
        return not self.dtype.startswith("float")

    def _print_Add(self, e, order=None):
        if not self.integer:
            return super()._print_Add(e, order)
        return self._fold("theta_wadd", self._as_ordered_terms(e, order=order))

    def _print_Mul(self, e):
        if not self.integer:
            return super()._print_Mul(e)
        return self._fold("theta_wmul", e.as_ordered_factors())

    def _fold(self, fn: str, args) -> str:
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{fn}({text}, {self._print(a)})"
        return text

    # powers ------------------------------------------------------------------------------------
    def _print_Pow(self, e):
        base, exp = e.base, e.exp
        b = self.parenthesize(base, 1000)
        if exp.is_Integer and 1 <= int(exp) <= 4 and self.integer:
            return self._fold("theta_wmul", [base] * int(exp))
        if exp.is_Integer and 1 <= int(exp) <= 4:
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and -4 <= int(exp) <= -1:
            one = self._print_Integer(sp.Integer(1)) if self.dtype.startswith("float") else "1.0"
            return f"({one}/(" + "*".join([b] * -int(exp)) + "))"
        if exp == sp.Rational(1, 2):
            return f"{'sqrtf' if self.single else 'sqrt'}({self._print(base)})"
        if exp == -sp.Rational(1, 2):
            return f"{'rsqrtf' if self.single else 'rsqrt'}({self._print(base)})"
        return f"{'powf' if self.single else 'pow'}({self._print(base)}, {self._print(exp)})"

    # functions ---------------------------------------------------------------------------------
    def _print_Function(self, e):
        name = type(e).__name__
        args = [self._print(a) for a in e.args]
        if name in _MATH:
            return f"{_MATH[name][0 if self.single else 1]}({', '.join(args)})"
        if name in _OPERATORS:
            return f"({args[0]} {_OPERATORS[name]} {args[1]})"
        if name == "invert":
            return f"(!{args[0]})"
        if name == "xor":  # logical xor of truth values (numbers count as true when nonzero)
            return f"((!({args[0]})) != (!({args[1]})))"
        if name == "switch":
            return f"(({args[0]}) ? ({args[1]}) : ({args[2]}))"
        if name in ("intdiv", "mod") and self.dtype.startswith("float"):
            ct = CTYPES[self.dtype]
            a, b = f"(({ct})({args[0]}))", f"(({ct})({args[1]}))"
            if name == "intdiv":
                return f"{'floorf' if self.single else 'floor'}({a} / {b})"
            return f"theta_mod({a}, {b})"
        if name in _THETA_FUNCS:
            return f"{_THETA_FUNCS[name]}({', '.join(args)})"
        dtype = getattr(type(e), "dtype", None)
        if dtype is not None and dtype != "bool" and not dtype.startswith("float"):
            # to an integer: theta_cast defines what C leaves undefined (NaN, inf, out of range)
            return f"theta_cast<{CTYPES[dtype]}>({args[0]})"
        if dtype is not None:
            return f"(({CTYPES[dtype]})({args[0]}))"
        raise NotImplementedError(f"no C translation for the function {name}")

    _print_exp = _print_log = _print_tanh = _print_sin = _print_cos = _print_erf = _print_Function

    def _print_Symbol(self, e):
        return e.name

    def _print_Abs(self, e):
        return f"theta_abs({self._print(e.args[0])})"


def compute_dtype(out_dtype: str, input_dtypes) -> str:
    """The dtype literals and math of an expression take: the output's if it is a float, else the
    widest float input (a comparison of float32 values compares in float32), else the output's."""
    if out_dtype.startswith("float"):
        return out_dtype
    floats = [d for d in input_dtypes if d.startswith("float")]
    if floats:
        return "float64" if "float64" in floats else "float32"
    return out_dtype


def print_statements(expr: sp.Expr, names: dict, out: str, dtype: str, tmp_prefix: str,
                     input_dtypes=()) -> list[str]:
    """C statements computing ``expr`` (over symbols x0.. named by ``names``) into ``out`` of
    ``dtype``. Subexpressions used more than once are computed once into temporaries (sympy.cse).
    """
    lines, names = _promoted_inputs(names, list(input_dtypes), tmp_prefix)
    expr = expr.xreplace({s: sp.Symbol(n, real=True) for s, n in names.items()})
    printer = ThetaCPrinter(compute_dtype(dtype, input_dtypes))
    ctype = CTYPES[dtype]
    temps, (body,) = sp.cse([expr], symbols=sp.numbered_symbols(tmp_prefix, real=True), optimizations=None)
    lines += [f"const auto {sym} = {printer.doprint(val)};" for sym, val in temps]
    value = printer.doprint(body)
    if dtype == "bool" or dtype.startswith("float"):
        lines.append(f"const {ctype} {out} = ({ctype})({value});")
    else:   # a float expression stored as an integer meets the same undefined cases as a cast
        lines.append(f"const {ctype} {out} = theta_cast<{ctype}>({value});")
    return lines


def _promoted_inputs(names: dict, input_dtypes: list, tmp_prefix: str) -> tuple[list[str], dict]:
    """Integer inputs of mixed signedness converted to NumPy's common dtype of the integers
    first. C's usual conversions compute int32 - uint32 in unsigned (and compare -1 < 1u as
    false), where NumPy computes in int64 (and int64 with uint64 in float64)."""
    ints = [d for d in input_dtypes if np.dtype(d).kind in "iu"]
    if len(input_dtypes) != len(names) or {np.dtype(d).kind for d in ints} != {"i", "u"}:
        return [], names
    common = np.result_type(*ints).name
    lines, out = [], {}
    for k, ((sym, name), d) in enumerate(zip(names.items(), input_dtypes)):
        if d in ints and d != common:
            name, conv = f"{tmp_prefix}_in{k}", name
            lines.append(f"const {CTYPES[common]} {name} = ({CTYPES[common]})({conv});")
        out[sym] = name
    return lines, out
