"""The CUDA correlation and convolution kernels against the naive backend, on tiny shapes.

Runs wherever ``numba.cuda`` is available: on a GPU, or on the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, as CI sets it), which runs every thread as a
Python thread; hence the tiny shapes, and launch sizes shrunk (8 threads per
block, 4 x 4 tiles) so that they still span several blocks, with outputs that
are not multiples of a block.  Kernel paths forced by shrinking the shared
memory budget: whole-kernel tiles, kernels cut into chunks of taps, and the
direct kernel.  References are the naive loops in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, random_array, shrink_cuda_launches
from numba import cuda

if not cuda.is_available():
    pytest.skip("numba.cuda is not available (no GPU; set NUMBA_ENABLE_CUDASIM=1 to simulate)",
                allow_module_level=True)

from fastcorr._dispatch import Unsupported  # noqa: E402
from fastcorr.kernels import naive  # noqa: E402
from fastcorr.kernels.cuda import _device  # noqa: E402
from fastcorr.kernels.cuda import correlate as kernels  # noqa: E402

FLOATS = [np.float32, np.float64]
# SHARED_BYTES per path: a whole kernel per tile; chunks of taps (the 6 x 5 and
# 5 x 6 kernels below need 2 or more per tile); no tile at all (direct kernel).
PATHS = {"tiles": 48 * 1024, "chunks": 200, "direct": 0}


@pytest.fixture(autouse=True)
def _small_launches(monkeypatch):
    shrink_cuda_launches(monkeypatch)


def _wide(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


# ---------------------------------------------------------------- correlate_valid

CORRELATE_CASES = {  # x shape, kernel shape
    "1d": ((21,), (4,)),
    "2d": ((8, 9), (3, 4)),
    "2d-kernel-wider-than-a-tile": ((10, 11), (6, 5)),
    "2d-one-column": ((9, 3), (3, 3)),
    "3d": ((4, 6, 7), (2, 3, 3)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CORRELATE_CASES)
def test_correlate_valid(case, dtype, rng):
    x_shape, kernel_shape = CORRELATE_CASES[case]
    x, kernel = random_array(rng, x_shape, dtype), random_array(rng, kernel_shape, dtype)
    got = kernels.correlate_valid(x, kernel)
    assert_close(got, naive.correlate_valid(*_wide(x, kernel)), dtype=dtype,
                 terms=kernel.size, context=f"correlate_valid {case}")


@pytest.mark.parametrize("path", ["chunks", "direct"])
@pytest.mark.parametrize("case", ["2d-kernel-wider-than-a-tile", "3d"])
def test_correlate_valid_paths(case, path, rng, monkeypatch):
    monkeypatch.setattr(kernels, "SHARED_BYTES", PATHS[path])
    x_shape, kernel_shape = CORRELATE_CASES[case]
    x, kernel = random_array(rng, x_shape, np.float64), random_array(rng, kernel_shape, np.float64)
    assert_close(kernels.correlate_valid(x, kernel), naive.correlate_valid(x, kernel),
                 terms=kernel.size, context=f"correlate_valid {case} {path}")


def test_tile_plan(monkeypatch):
    """The budgets of PATHS do select the three paths."""
    block, kernel, ones = (4, 4), (6, 5), (1, 1)
    chunk, size = kernels._tile_plan(block, kernel, ones, ones, 8)
    assert chunk == kernel and size == (4 + 5) * (4 + 4) * 8
    monkeypatch.setattr(kernels, "SHARED_BYTES", PATHS["chunks"])
    chunk, size = kernels._tile_plan(block, kernel, ones, ones, 8)
    assert chunk[0] < kernel[0] or chunk[1] < kernel[1]
    assert size <= PATHS["chunks"]
    monkeypatch.setattr(kernels, "SHARED_BYTES", PATHS["direct"])
    assert kernels._tile_plan(block, kernel, ones, ones, 8) is None


@pytest.mark.parametrize("dtype", [np.int64, np.complex128])
def test_correlate_valid_other_dtypes(dtype, rng):
    x, kernel = random_array(rng, (6, 7), dtype), random_array(rng, (2, 3), dtype)
    assert_close(kernels.correlate_valid(x, kernel), naive.correlate_valid(x, kernel),
                 terms=kernel.size, context=f"correlate_valid {np.dtype(dtype)}")


def test_correlate_valid_rejects_four_dimensions():
    with pytest.raises(Unsupported) as excinfo:
        kernels.correlate_valid(np.ones((2, 2, 2, 2)), np.ones((1, 1, 1, 1)))
    assert excinfo.value.parameter == "ndim"
    assert isinstance(excinfo.value, NotImplementedError)


@pytest.mark.parametrize("shape", [(21,), (8, 9)], ids=["1d", "2d"])
def test_correlate_valid_device_views(shape, rng):
    """A device input gives a device result; a strided device view is read as it is."""
    x = random_array(rng, shape[:-1] + (2 * shape[-1],), np.float64)
    kernel = random_array(rng, (3,) * len(shape), np.float64)
    got = kernels.correlate_valid(cuda.to_device(x)[..., ::2], cuda.to_device(kernel))
    assert _device.is_device_array(got) and not isinstance(got, np.ndarray)
    assert_close(got.copy_to_host(), naive.correlate_valid(x[..., ::2], kernel),
                 terms=kernel.size, context="correlate_valid of a device view")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, template", [((7, 9), (3, 4)), ((3, 5, 6), (2, 2, 3))],
                         ids=["2d", "3d"])
def test_template_response(shape, template, dtype, rng):
    """match_template's normalisation against the front end's NumPy (cumulative sums) form."""
    from fastcorr.kernels.cuda import template as template_kernels
    from fastcorr.signal import _template_response

    image = random_array(rng, shape, dtype)
    image[..., :5, :5] = 0.5  # windows of no variance: 0
    kernel = random_array(rng, template, dtype)
    xcorr = naive.correlate_valid(image.astype(np.float64), kernel.astype(np.float64))
    got = template_kernels.template_response(image, kernel, xcorr)
    reference = _template_response(image, kernel, xcorr)
    assert got.dtype == dtype and got.shape == xcorr.shape
    assert_close(got, reference, dtype=dtype, terms=kernel.size, context="template_response")
    device = template_kernels.template_response(cuda.to_device(image), cuda.to_device(kernel),
                                                cuda.to_device(xcorr))
    assert _device.is_device_array(device)
    np.testing.assert_array_equal(device.copy_to_host(), got)


# ---------------------------------------------------------------- convolution

CONV_CASES = {  # x shape (padded), weight shape, stride, dilation, groups, bias
    "2d-groups-bias": ((2, 4, 1, 7, 7), (4, 2, 1, 3, 2), (1, 1, 1), (1, 1, 1), 2, True),
    "2d-stride-dilation": ((1, 2, 1, 9, 10), (3, 2, 1, 2, 3), (1, 2, 1), (1, 1, 2), 1, False),
    "2d-kernel-wider-than-a-tile": ((1, 1, 1, 9, 10), (2, 1, 1, 5, 6), (1, 1, 1), (1, 1, 1),
                                    1, True),
    "3d": ((1, 2, 4, 5, 6), (2, 2, 2, 2, 3), (2, 1, 1), (1, 2, 1), 1, False),
    "1d": ((2, 3, 1, 1, 14), (2, 3, 1, 1, 4), (1, 1, 2), (1, 1, 1), 1, True),
}


def _conv_inputs(case, dtype, rng):
    x_shape, weight_shape, stride, dilation, groups, has_bias = CONV_CASES[case]
    x = random_array(rng, x_shape, dtype)
    weight = random_array(rng, weight_shape, dtype)
    bias = random_array(rng, weight_shape[:1], dtype) if has_bias else None
    return x, weight, bias, stride, dilation, groups


def _conv_terms(weight):
    return int(np.prod(weight.shape[1:]))


def _out_spatial(case):
    x_shape, weight_shape, stride, dilation, *_ = CONV_CASES[case]
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, s, d in zip(x_shape[2:], weight_shape[2:], stride, dilation))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward(case, dtype, rng):
    x, weight, bias, stride, dilation, groups = _conv_inputs(case, dtype, rng)
    got = kernels.conv_forward(x, weight, bias, stride, dilation, groups)
    ref = naive.conv_forward(*_wide(x, weight, bias), stride, dilation, groups)
    assert_close(got, ref, dtype=dtype, terms=_conv_terms(weight), context=f"conv {case}")


@pytest.mark.parametrize("path", ["chunks", "direct"])
@pytest.mark.parametrize("case", ["2d-stride-dilation", "2d-kernel-wider-than-a-tile", "3d"])
def test_conv_forward_paths(case, path, rng, monkeypatch):
    monkeypatch.setattr(kernels, "SHARED_BYTES", PATHS[path])
    x, weight, bias, stride, dilation, groups = _conv_inputs(case, np.float64, rng)
    got = kernels.conv_forward(x, weight, bias, stride, dilation, groups)
    ref = naive.conv_forward(x, weight, bias, stride, dilation, groups)
    assert_close(got, ref, terms=_conv_terms(weight), context=f"conv {case} {path}")


def test_conv_forward_more_planes_than_the_grid(rng, monkeypatch):
    """Blocks loop over the (n, f, z) planes beyond gridDim.z."""
    monkeypatch.setattr(kernels, "MAX_GRID_PLANES", 2)
    x, weight, bias, stride, dilation, groups = _conv_inputs("2d-groups-bias", np.float64, rng)
    got = kernels.conv_forward(x, weight, bias, stride, dilation, groups)
    ref = naive.conv_forward(x, weight, bias, stride, dilation, groups)
    assert_close(got, ref, terms=_conv_terms(weight), context="conv, 2 grid planes")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", ["2d-groups-bias", "2d-stride-dilation", "3d", "1d"])
def test_conv_transpose(case, dtype, rng):
    x, weight, _, stride, dilation, groups = _conv_inputs(case, dtype, rng)
    grad = random_array(rng, (x.shape[0], weight.shape[0]) + _out_spatial(case), dtype)
    size = x.shape[2:]
    got = kernels.conv_transpose(grad, weight, stride, dilation, groups, size)
    ref = naive.conv_transpose(*_wide(grad, weight), stride, dilation, groups, size)
    terms = weight.shape[0] // groups * int(np.prod(weight.shape[2:]))
    assert_close(got, ref, dtype=dtype, terms=terms, context=f"conv_transpose {case}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", ["2d-groups-bias", "2d-stride-dilation", "3d", "1d"])
def test_conv_weight_grad(case, dtype, rng):
    x, weight, _, stride, dilation, groups = _conv_inputs(case, dtype, rng)
    grad = random_array(rng, (x.shape[0], weight.shape[0]) + _out_spatial(case), dtype)
    kernel_size = weight.shape[2:]
    got = kernels.conv_weight_grad(x, grad, kernel_size, stride, dilation, groups)
    ref = naive.conv_weight_grad(*_wide(x, grad), kernel_size, stride, dilation, groups)
    terms = grad.shape[0] * int(np.prod(grad.shape[2:]))
    assert_close(got, ref, dtype=dtype, terms=terms, context=f"conv_weight_grad {case}")
    if case == "1d" and dtype == np.float32:
        again = kernels.conv_weight_grad(x, grad, kernel_size, stride, dilation, groups)
        np.testing.assert_array_equal(again, got, err_msg="not deterministic")


def test_conv_weight_grad_few_terms_and_none(rng):
    """Fewer terms than threads per block (a smaller block); no terms at all (zeros)."""
    x = random_array(rng, (1, 2, 1, 3, 5), np.float64)
    grad = random_array(rng, (1, 3, 1, 1, 3), np.float64)  # 3 terms: 3 threads, an odd tree
    args = ((1, 3, 3), (1, 1, 1), (1, 1, 1), 1)
    assert_close(kernels.conv_weight_grad(x, grad, *args),
                 naive.conv_weight_grad(x, grad, *args), context="3 terms")
    got = kernels.conv_weight_grad(x[:0], grad[:0], *args)
    assert_close(got, np.zeros((3, 2, 1, 3, 3)), context="empty batch")


# ---------------------------------------------------------------- im2col

UNFOLD_CASES = {  # x shape (padded), kernel_size, dilation, stride
    "2d": ((2, 3, 1, 6, 7), (1, 3, 2), (1, 1, 2), (1, 2, 1)),
    "3d": ((1, 2, 4, 5, 4), (2, 2, 2), (1, 1, 1), (2, 1, 2)),
    "1d": ((1, 2, 1, 1, 11), (1, 1, 3), (1, 1, 2), (1, 1, 1)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", UNFOLD_CASES)
def test_unfold_and_fold(case, dtype, rng):
    x_shape, kernel_size, dilation, stride = UNFOLD_CASES[case]
    x = random_array(rng, x_shape, dtype)
    cols = kernels.unfold(x, kernel_size, dilation, stride)
    assert_close(cols, naive.unfold(x, kernel_size, dilation, stride), context=f"unfold {case}")
    cols = random_array(rng, cols.shape, dtype)
    got = kernels.fold(cols, x_shape[2:], kernel_size, dilation, stride)
    ref = naive.fold(cols.astype(np.float64), x_shape[2:], kernel_size, dilation, stride)
    assert_close(got, ref, dtype=dtype, terms=int(np.prod(kernel_size)),
                 context=f"fold {case}")


# ---------------------------------------------------------------- every entry point


def _entry_calls(rng):
    """``(name, args)`` of one call of each entry point, float64, main input first."""
    x, weight, _, stride, dilation, groups = _conv_inputs("2d-stride-dilation", np.float64, rng)
    bias = random_array(rng, weight.shape[:1], np.float64)
    grad = random_array(rng, (x.shape[0], weight.shape[0]) + _out_spatial("2d-stride-dilation"),
                        np.float64)
    x_shape, kernel_size, unfold_dilation, unfold_stride = UNFOLD_CASES["2d"]
    unfold_x = random_array(rng, x_shape, np.float64)
    cols = random_array(rng, naive.unfold(unfold_x, kernel_size, unfold_dilation,
                                          unfold_stride).shape, np.float64)
    signal, taps = random_array(rng, (8, 9), np.float64), random_array(rng, (3, 4), np.float64)
    return [
        ("correlate_valid", (signal, taps)),
        ("conv_forward", (x, weight, bias, stride, dilation, groups)),
        ("unfold", (unfold_x, kernel_size, unfold_dilation, unfold_stride)),
        ("fold", (cols, x_shape[2:], kernel_size, unfold_dilation, unfold_stride)),
        ("conv_transpose", (grad, weight, stride, dilation, groups, x.shape[2:])),
        ("conv_weight_grad", (x, grad, weight.shape[2:], stride, dilation, groups)),
    ]


def test_inputs_not_modified_and_device_inputs(rng):
    """Host inputs stay as they were; device inputs give device results with the same values."""
    for name, args in _entry_calls(rng):
        func = getattr(kernels, name)
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        host = func(*args)
        for arg, copy in zip(args, copies):
            if isinstance(arg, np.ndarray):
                np.testing.assert_array_equal(arg, copy, err_msg=f"{name} modified an input")
        on_device = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        got = func(*on_device)
        assert _device.is_device_array(got) and not isinstance(got, np.ndarray), name
        np.testing.assert_array_equal(got.copy_to_host(), host, err_msg=name)
        assert_close(host, getattr(naive, name)(*args), terms=64, context=name)


def test_correlate_fft_without_cupy_is_direct(rng):
    """No CuPy here (or the simulator): method='fft' runs the direct kernel."""
    from fastcorr.kernels.cuda import fft

    x, kernel = random_array(rng, (9, 8), np.float64), random_array(rng, (3, 2), np.float64)
    if fft._cupy() is None:
        np.testing.assert_array_equal(fft.correlate_fft(x, kernel),
                                      kernels.correlate_valid(x, kernel))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_correlate_fft_through_cupy(dtype, rng, monkeypatch):
    """The CuPy path's glue: zero-copy in, the kernel conjugated once, the dtype kept.

    CuPy itself is replaced by a stand-in that computes on the host with
    SciPy (whose ``correlate`` also conjugates its second operand).
    """
    import types

    import scipy.signal

    from fastcorr.kernels.cuda import fft

    def host(array):
        return array.copy_to_host() if hasattr(array, "copy_to_host") else np.asarray(array)

    stand_in = types.SimpleNamespace(asarray=host, conj=np.conj)
    signal = types.SimpleNamespace(correlate=lambda a, b, mode, method: scipy.signal.correlate(
        a, b, mode=mode, method=method))
    monkeypatch.setattr(fft, "_cupy", lambda: (stand_in, signal))
    x = random_array(rng, (9, 8), dtype)
    kernel = random_array(rng, (3, 2), dtype)
    if dtype == np.complex128:
        x, kernel = x + 1j * x[::-1], kernel - 2j * kernel[::-1]
    got = fft.correlate_fft(x, kernel)
    assert isinstance(got, np.ndarray) and got.dtype == x.dtype
    assert_close(got, naive.correlate_valid(x, kernel), dtype=dtype, terms=6)
    device_got = fft.correlate_fft(cuda.to_device(x), cuda.to_device(kernel))
    assert _device.is_device_array(device_got)
    assert_close(device_got.copy_to_host(), got, dtype=dtype, terms=6)
