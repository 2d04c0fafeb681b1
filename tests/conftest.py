"""pytest configuration: make the checkout importable, seeded generators, shared fixtures.

The helpers themselves (backend list, tolerance rule, comparisons) live in
``tests/helpers.py`` so that test modules can import them by name.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:  # the package is normally installed editable; fall back to the checkout
    import fastcorr  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "fastcorr":  # a broken package must fail loudly, not be shadowed
        raise
    sys.path.insert(0, _ROOT)

from helpers import ALL_BACKENDS, CPU_BACKENDS, SEED  # noqa: E402


def pytest_report_header(config):
    import fastcorr

    return [f"fastcorr backends under test: {ALL_BACKENDS} (CPU: {CPU_BACKENDS}); "
            f"threads {fastcorr.get_num_threads()}"]


@pytest.fixture
def rng():
    """A generator with a fixed seed: every test sees reproducible random data."""
    return np.random.default_rng(SEED)


@pytest.fixture(autouse=True)
def _clean_backend_environment(monkeypatch):
    """Tests run with no FASTCORR_BACKEND unless they set it themselves."""
    monkeypatch.delenv("FASTCORR_BACKEND", raising=False)


@pytest.fixture
def restore_threads():
    import fastcorr

    previous = fastcorr.get_num_threads()
    yield
    fastcorr.set_num_threads(previous)
