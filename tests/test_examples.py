"""The examples run, at reduced size (``--small``): each draws its picture and its numbers hold.

The full-size runs (``python examples/NAME.py``) write the pictures in docs/img/ that the
documentation embeds; these smoke runs write into a temporary directory instead.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def load(monkeypatch):
    """Import ``examples/NAME.py`` as a module (its helper ``_figure`` beside it)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))

    def _load(name):
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return _load


def assert_png(path):
    path = pathlib.Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_digits_cnn_loss_decreases(backend, monkeypatch, load):
    monkeypatch.setenv("FASTCORR_BACKEND", backend)
    digits_cnn = load("digits_cnn")
    losses, accuracy = digits_cnn.train(epochs=1, max_steps=30)
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert accuracy > 0.5  # after 30 steps of SGD; the full run reaches > 95%


def test_digits_cnn_draws_its_loss_curve(tmp_path, load):
    numbers = load("digits_cnn").main(["--small", "--out", str(tmp_path)])
    assert numbers["steps"] == 30
    assert numbers["png"] == tmp_path / "digits_cnn.png"
    assert_png(numbers["png"])


def test_sobel_matches_scipy_inside_the_border(tmp_path, load):
    sobel = load("sobel")
    numbers = sobel.main(["--small", "--out", str(tmp_path)])
    assert numbers["shape"] == (128, 128)
    # With the same boundary fastcorr and SciPy agree to rounding; against SciPy's
    # boundary='symm' they differ on the one-pixel border only.
    tolerance = 1e-12 * numbers["max_magnitude"]
    assert numbers["max_difference_same_boundary"] <= tolerance
    assert numbers["max_difference_interior"] <= tolerance
    assert numbers["max_difference_border"] > 0.01 * numbers["max_magnitude"]
    assert_png(tmp_path / "sobel.png")


def test_sobel_magnitude_of_a_step(load):
    """sqrt(G1² + G2²) of a vertical step edge is 3 + 10 + 3 = 16 times the step beside it."""
    image = np.zeros((8, 8))
    image[:, 4:] = 1.0
    magnitude = load("sobel").gradient_magnitude(image, boundary="symm")
    np.testing.assert_allclose(magnitude[:, 3:5], 16.0)
    np.testing.assert_allclose(magnitude[:, :3], 0.0)
    np.testing.assert_allclose(magnitude[:, 5:], 0.0)


def test_template_matching_finds_the_cut_out(tmp_path, load):
    numbers = load("template_matching").main(["--small", "--out", str(tmp_path)])
    assert numbers["best"] == numbers["cut"]
    assert 0.5 < numbers["best_score"] <= 1.0        # noisy scene, clean template
    assert numbers["plain_best"] != numbers["cut"]   # the unnormalised peak is elsewhere
    assert_png(tmp_path / "template_matching.png")


def test_norm_zoo_slices(tmp_path, load):
    norm_zoo = load("norm_zoo")
    numbers = norm_zoo.main(["--small", "--out", str(tmp_path)])
    n, c, h, w, groups = norm_zoo.N, norm_zoo.C, norm_zoo.H, norm_zoo.W, norm_zoo.GROUPS
    sizes = list(numbers["sizes"].values())
    assert sizes == [n * h * w, c * h * w, h * w, c // groups * h * w]
    assert all(numbers["standardised"].values())
    chosen_n, chosen_c = norm_zoo.CHOSEN[:2]
    batch, layer, instance, group = numbers["masks"].values()
    assert batch[:, chosen_c].all() and batch.sum() == batch[:, chosen_c].size
    assert layer[chosen_n].all() and layer.sum() == layer[chosen_n].size
    assert instance[chosen_n, chosen_c].all() and instance.sum() == h * w
    first = chosen_c // (c // groups) * (c // groups)
    assert group[chosen_n, first:first + c // groups].all()
    assert_png(tmp_path / "norm_zoo.png")


@pytest.mark.parametrize("name", ["sobel", "template_matching", "norm_zoo", "digits_cnn"])
def test_the_docs_have_each_picture(name):
    """The full-size pictures are in docs/img, small enough to commit, and embedded."""
    picture = ROOT / "docs" / "img" / f"{name}.png"
    assert_png(picture)
    assert picture.stat().st_size < 150_000
    pages = [page.read_text(encoding="utf-8") for page in (ROOT / "docs").glob("*.md")]
    assert any(f"](img/{name}.png)" in page for page in pages), f"no page shows {name}.png"
