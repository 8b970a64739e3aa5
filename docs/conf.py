"""Sphinx configuration for theta's documentation (build: python -m sphinx -W -b html docs docs/_build/html)."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "theta"
author = "theta developers"
copyright = "2026, theta developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"          # the numpydoc sections say the types
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
add_module_names = False
# docstrings cross-reference loosely (``T.dot``, numpydoc type names): not every name is a target
nitpicky = False
suppress_warnings = ["ref.python"]   # an ambiguous short name in a docstring is not an error

templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
html_title = "theta"
