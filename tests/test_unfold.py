"""unfold (im2col) and fold (col2im) against torch, and fold as unfold's adjoint.

The scipy backend has no im2col: it must raise NotImplementedError naming the
function, the backend and the parameter; every other backend must agree with torch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch_reference as tref
from helpers import ALL_BACKENDS, assert_close, message_names, random_array

import fastcorr

FLOATS = [np.float32, np.float64]

GEOMETRY = list(itertools.product(
    [2, (2, 3), 3],          # kernel_size
    [1, 2, (2, 1)],          # dilation
    [0, 1, (1, 0)],          # padding
    [1, 2, (1, 2)],          # stride
))


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _unsupported(backend):
    return backend == "scipy"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("kernel_size,dilation,padding,stride", GEOMETRY, ids=_ids)
def test_unfold_vs_torch(kernel_size, dilation, padding, stride, dtype, backend, rng):
    x = random_array(rng, (2, 3, 7, 6), dtype)
    kwargs = dict(dilation=dilation, padding=padding, stride=stride)
    if _unsupported(backend):
        with pytest.raises(NotImplementedError) as excinfo:
            fastcorr.unfold(x, kernel_size, backend=backend, **kwargs)
        message_names(excinfo, "unfold", "scipy", "backend")
        return
    ref = tref.unfold(x, kernel_size, **kwargs)
    got = fastcorr.unfold(x, kernel_size, backend=backend, **kwargs)
    assert_close(got, ref, dtype=dtype)
    # unbatched (C, H, W) in, (C * kh * kw, L) out
    got1 = fastcorr.unfold(x[1], kernel_size, backend=backend, **kwargs)
    assert_close(got1, ref[1], dtype=dtype)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("kernel_size,dilation,padding,stride", GEOMETRY, ids=_ids)
def test_fold_vs_torch(kernel_size, dilation, padding, stride, dtype, backend, rng):
    output_size = (7, 6)
    kwargs = dict(dilation=dilation, padding=padding, stride=stride)
    kernel = tref.as_tuple(kernel_size, 2)
    blocks = tref.unfold(np.zeros((1, 1) + output_size), kernel_size, **kwargs).shape[2]
    cols = random_array(rng, (2, 3 * kernel[0] * kernel[1], blocks), dtype)
    if _unsupported(backend):
        with pytest.raises(NotImplementedError) as excinfo:
            fastcorr.fold(cols, output_size, kernel_size, backend=backend, **kwargs)
        message_names(excinfo, "fold", "scipy", "backend")
        return
    ref = tref.fold(cols, output_size, kernel_size, **kwargs)
    got = fastcorr.fold(cols, output_size, kernel_size, backend=backend, **kwargs)
    # each output pixel sums at most kh * kw overlapping entries
    assert_close(got, ref, dtype=dtype, terms=kernel[0] * kernel[1])
    got1 = fastcorr.fold(cols[0], output_size, kernel_size, backend=backend, **kwargs)
    assert_close(got1, ref[0], dtype=dtype, terms=kernel[0] * kernel[1])


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "scipy"])
@pytest.mark.parametrize("kernel_size,dilation,padding,stride", GEOMETRY[::3], ids=_ids)
def test_fold_is_the_adjoint_of_unfold(kernel_size, dilation, padding, stride, backend, rng):
    """<unfold(x), c> == <x, fold(c)> for every x and c."""
    kwargs = dict(dilation=dilation, padding=padding, stride=stride)
    x = random_array(rng, (2, 3, 7, 6), np.float64)
    cols_shape = fastcorr.unfold(x, kernel_size, backend=backend, **kwargs).shape
    c = random_array(rng, cols_shape, np.float64)
    left = np.vdot(fastcorr.unfold(x, kernel_size, backend=backend, **kwargs), c)
    right = np.vdot(x, fastcorr.fold(c, (7, 6), kernel_size, backend=backend, **kwargs))
    assert abs(left - right) <= 1e-12 * max(1.0, abs(left)) * np.sqrt(c.size)


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "scipy"])
def test_unfold_matmul_is_conv2d(backend, rng):
    """The im2col identity: weight.reshape(F, -1) @ unfold(x) == conv2d(x, weight)."""
    x = random_array(rng, (2, 3, 8, 7), np.float64)
    weight = random_array(rng, (4, 3, 3, 2), np.float64)
    cols = fastcorr.unfold(x, (3, 2), padding=1, stride=(2, 1), backend=backend)
    out = fastcorr.conv2d(x, weight, padding=1, stride=(2, 1), backend=backend)
    product = (weight.reshape(4, -1) @ cols).reshape(out.shape)
    assert_close(product, out, terms=18)


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "scipy"])
def test_seed_003_unfold_example(backend):
    """Seed 003: the 3x3 A with a 2x2 kernel unfolds to A' (windows as columns)."""
    a = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # A11..A33 = 1..9
    expected = np.array([[1, 2, 4, 5],    # A11 A12 A21 A22
                         [2, 3, 5, 6],    # A12 A13 A22 A23
                         [4, 5, 7, 8],    # A21 A22 A31 A32
                         [5, 6, 8, 9]],   # A22 A23 A32 A33
                        dtype=np.float64)
    # torch's layout: one column per window; the seed writes A' with one row per window,
    # the transpose (this A' happens to be symmetric, so both read the same)
    got = fastcorr.unfold(a, 2, backend=backend)
    assert_close(got, expected[None])
    # seed eq. (1.1): the outputs are A' M' (rows of A' are windows, M' the flattened kernel)
    m = np.array([[1.0, -2.0], [3.0, 0.5]])
    conv = fastcorr.conv2d(a, m[None, None], backend=backend)
    assert_close(conv.ravel(), got[0].T @ m.ravel(), terms=4)
    # fold counts the windows covering each pixel
    counts = fastcorr.fold(np.ones_like(got), (3, 3), 2, backend=backend)
    assert_close(counts, np.array([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]], dtype=np.float64))


def test_aliases():
    assert fastcorr.im2col is fastcorr.unfold
    assert fastcorr.col2im is fastcorr.fold


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "scipy"])
def test_unfold_views_and_dtypes(backend, rng):
    base = random_array(rng, (4, 6, 12, 10), np.float64)
    for x in (base[::2, ::2, ::2, ::-1], base[1, :3].transpose(0, 2, 1), base[::-1, :2, ::3]):
        ref = tref.unfold(x, (2, 3), padding=1, stride=(1, 2))
        got = fastcorr.unfold(x, (2, 3), padding=1, stride=(1, 2), backend=backend)
        assert_close(got, ref)
    # non-float inputs become float64 (the network family's rule)
    ints = np.arange(2 * 5 * 4).reshape(1, 2, 5, 4)
    got = fastcorr.unfold(ints, 2, backend=backend)
    assert_close(got, tref.unfold(ints, 2), dtype=np.float64)
    cols = fastcorr.fold(got.astype(np.int64), (5, 4), 2, backend=backend)
    assert_close(cols, tref.fold(got, (5, 4), 2), dtype=np.float64)


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b not in ("scipy", "naive")])
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("kernel_size,dilation,padding,stride", [
    (3, 1, 1, 1), ((2, 5), (2, 1), (1, 2), (2, 3)), (4, 1, 0, 4),
], ids=_ids)
def test_unfold_fold_medium(kernel_size, dilation, padding, stride, dtype, backend, rng):
    """Sizes with many columns (panels and task splits of the compiled kernels)."""
    x = random_array(rng, (2, 3, 41, 57), dtype)
    kwargs = dict(dilation=dilation, padding=padding, stride=stride)
    ref = tref.unfold(x, kernel_size, **kwargs)
    cols = fastcorr.unfold(x, kernel_size, backend=backend, **kwargs)
    assert_close(cols, ref, dtype=dtype)
    c = random_array(rng, ref.shape, dtype)
    kernel = tref.as_tuple(kernel_size, 2)
    assert_close(fastcorr.fold(c, (41, 57), kernel_size, backend=backend, **kwargs),
                 tref.fold(c, (41, 57), kernel_size, **kwargs), dtype=dtype,
                 terms=kernel[0] * kernel[1])
