"""The examples run, at reduced size: they show the library working together."""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_digits_cnn_loss_decreases(backend, monkeypatch):
    monkeypatch.setenv("FASTCORR_BACKEND", backend)
    digits_cnn = _load("digits_cnn")
    losses, accuracy = digits_cnn.train(epochs=1, max_steps=30)
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert accuracy > 0.5  # after 30 steps of SGD; the full run reaches > 95%
