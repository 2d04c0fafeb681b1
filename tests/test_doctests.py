"""The docstring examples of every fastcorr module run, and pass, in the plain pytest run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fastcorr

# The modules the documentation promises examples for, plus every other module of
# the package that imports here (backend modules included; CUDA modules need a GPU
# and the CLI entry point needs nothing but is harmless).
LISTED = ["fastcorr", "fastcorr.signal", "fastcorr.conv", "fastcorr._shapes",
          "fastcorr._dispatch"]
DISCOVERED = sorted(
    info.name for info in pkgutil.walk_packages(fastcorr.__path__, "fastcorr.")
    if "cuda" not in info.name
)
MODULES = LISTED + [name for name in DISCOVERED if name not in LISTED]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"


@pytest.mark.parametrize("name", [m for m in LISTED if m != "fastcorr"])
def test_listed_modules_have_examples(name):
    """The public modules document themselves with at least one runnable example.

    (The package's own namespace re-exports; its examples live in the modules.)
    """
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for test in finder.find(module))
    assert examples > 0, f"{name} has no doctest examples"
