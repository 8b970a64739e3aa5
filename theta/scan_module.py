"""``theta.scan_module``: Theano's module name for scan and its stopping condition
(``theano.scan_module.until``); the functions live in theta.compiler.scan."""
from .compiler.scan import foldl, foldr, map, reduce, scan, until  # noqa: F401,A004

__all__ = ["scan", "until", "map", "reduce", "foldl", "foldr"]
