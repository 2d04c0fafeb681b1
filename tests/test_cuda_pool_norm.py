"""The cuda backend's pooling and normalisation kernels against the naive reference.

Runs wherever ``numba.cuda`` is available: on a GPU, or under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``), which runs every thread as a Python
thread, so the shapes are tiny.  Launch sizes are shrunk (8 threads per
block, 8-thread reductions) so that even these shapes span several blocks
and every level of the reduction trees.

Grids: pooling in 1-D, 2-D and 3-D with stride, padding (windows hanging
over the edge), dilation, ceil_mode, average divisors (count_include_pad,
divisor_override), adaptive bins, NaN in a window and windows of padding
only; the norms on slices longer than a block, a constant slice and the
float32 mean-1e4 / std-1e-2 stability case.  float32 and float64 throughout;
maxima and indices must match exactly.  Device inputs give device results,
and no input is modified.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, random_array, shrink_cuda_launches
from numba import cuda

if not cuda.is_available():
    pytest.skip("numba.cuda is not available (no GPU; NUMBA_ENABLE_CUDASIM=1 runs the simulator)",
                allow_module_level=True)

from fastcorr import pool as pool_front  # noqa: E402
from fastcorr.kernels import naive  # noqa: E402
from fastcorr.kernels.cuda import _device  # noqa: E402
from fastcorr.kernels.cuda import norm as cuda_norm  # noqa: E402
from fastcorr.kernels.cuda import pool as cuda_pool  # noqa: E402

FLOATS = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _small_launches(monkeypatch):
    shrink_cuda_launches(monkeypatch)


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _lifted(x):
    """``(N, C, *spatial)`` as the kernels take it: ``(N, C, D, H, W)``, unit dimensions first."""
    return x.reshape(x.shape[:2] + (1,) * (5 - x.ndim) + x.shape[2:])


def _call(kernel, *args):
    """``kernel(*args)``, checking that it leaves its array arguments as they were."""
    saved = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    result = kernel(*args)
    for before, after in zip(saved, args):
        if before is not None:
            np.testing.assert_array_equal(after, before, err_msg=f"{kernel.__name__} modified "
                                                                 f"an input")
    return result


def _check_max_pool(x, windows, rng):
    """Values and indices exactly as naive; the backward through those indices too."""
    dtype = x.dtype
    values, indices = _call(cuda_pool.max_pool, x, windows)
    ref_values, ref_indices = naive.max_pool(x, windows)
    assert_close(values, ref_values, dtype=dtype, rtol=0.0, context="max_pool values")
    assert_close(indices, ref_indices, dtype=np.int64, context="max_pool indices")
    grad = random_array(rng, values.shape, dtype)
    got = _call(cuda_pool.max_pool_backward, grad, indices, x.shape[2:])
    ref = naive.max_pool_backward(grad, ref_indices, x.shape[2:])
    assert_close(got, ref, dtype=dtype, terms=8, context="max_pool_backward")
    return values, indices


def _check_avg_pool(x, windows, rng):
    dtype = x.dtype
    terms = int(np.prod([max(1, w.taps.max()) for w in windows]))
    out = _call(cuda_pool.avg_pool, x, windows)
    assert_close(out, naive.avg_pool(x, windows), dtype=dtype, terms=terms, context="avg_pool")
    grad = random_array(rng, out.shape, dtype)
    got = _call(cuda_pool.avg_pool_backward, grad, windows, x.shape[2:])
    assert_close(got, naive.avg_pool_backward(grad, windows, x.shape[2:]), dtype=dtype,
                 terms=terms, context="avg_pool_backward")


# (shape (N, C, *spatial), kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((2, 2, 9), 3, 2, 1, 1, True),
    ((1, 2, 8), 3, 1, 1, 2, False),
    ((1, 2, 5, 6), (3, 2), (2, 1), 1, 1, True),
    ((2, 1, 6, 5), 2, 2, 1, (2, 1), True),
    ((1, 1, 5, 6), 3, 1, 1, 1, False),            # stride 1: overlapping windows
    ((1, 2, 4, 5, 3), (2, 3, 2), (2, 2, 1), (1, 1, 0), 1, True),
    ((1, 1, 5, 4, 4), 2, 1, 1, (2, 1, 2), False),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,ceil_mode", MAX_CASES, ids=_ids)
def test_max_pool(shape, kernel, stride, padding, dilation, ceil_mode, dtype, rng):
    x = _lifted(random_array(rng, shape, dtype))
    windows = pool_front._max_windows("max_pool", x, len(shape) - 2, kernel, stride, padding,
                                      dilation, ceil_mode)
    _check_max_pool(x, windows, rng)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_max_pool_ties_and_shared_maxima(dtype, rng):
    """Few distinct values: torch's index among ties; many outputs share one maximum."""
    x = _lifted(rng.integers(0, 3, size=(1, 2, 6, 5)).astype(dtype))
    windows = pool_front._max_windows("max_pool", x, 2, 3, 1, 1, 1, False)
    _check_max_pool(x, windows, rng)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_max_pool_nan_wins(dtype, rng):
    """A window holding NaN gives NaN at the last NaN's index, as in torch; inf and -inf kept."""
    x = random_array(rng, (1, 2, 5, 6), dtype)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan           # two NaNs in one window
    x[0, 0, 4, 4] = np.inf
    x[0, 1, 4, :] = -np.inf
    x = _lifted(x)
    windows = pool_front._max_windows("max_pool", x, 2, 3, 2, 1, 1, True)
    values, _ = _check_max_pool(x, windows, rng)
    assert np.isnan(values).any() and np.isposinf(values).any()


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_max_pool_padding_only_windows(dtype, rng):
    """Dilated windows whose taps all land in the padding: -inf at index -1, no gradient."""
    x = _lifted(random_array(rng, (2, 3, 1, 2), dtype))
    windows = pool_front._max_windows("max_pool", x, 2, (1, 2), (1, 3), (0, 1), (1, 3), False)
    values, indices = _check_max_pool(x, windows, rng)
    assert (indices == -1).any() and np.isneginf(values[indices == -1]).all()


# (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((2, 2, 9), 3, 2, 1, True, True, None),
    ((1, 2, 5, 6), (3, 2), (2, 1), 1, True, False, None),
    ((1, 2, 5, 6), 3, 2, 1, False, True, 5),
    ((1, 1, 5, 6), 3, 1, 1, False, True, None),      # stride 1: every input in 9 windows
    ((1, 2, 4, 5, 3), (2, 3, 2), (2, 2, 1), (1, 1, 0), True, False, None),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode,include_pad,divisor", AVG_CASES,
                         ids=_ids)
def test_avg_pool(shape, kernel, stride, padding, ceil_mode, include_pad, divisor, dtype, rng):
    x = _lifted(random_array(rng, shape, dtype))
    windows = pool_front._avg_windows("avg_pool", x, len(shape) - 2, kernel, stride, padding,
                                      ceil_mode, include_pad, divisor)
    _check_avg_pool(x, windows, rng)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_adaptive_windows(dtype, rng):
    """Adaptive bins (uneven, overlapping) through both pools and their gradients."""
    x = _lifted(random_array(rng, (1, 2, 5, 7), dtype))
    windows = pool_front._adaptive_windows_of("adaptive", x, (3, 4))
    _check_max_pool(x, windows, rng)
    _check_avg_pool(x, windows, rng)


def test_pool_device_arrays_stay_on_the_device(rng):
    """Device inputs give device results (the same values), and are left as they were."""
    host = _lifted(random_array(rng, (1, 2, 5, 6), np.float32))
    windows = pool_front._max_windows("max_pool", host, 2, 3, 2, 1, 1, True)
    x = cuda.to_device(host)
    values, indices = cuda_pool.max_pool(x, windows)
    assert _device.is_device_array(values) and _device.is_device_array(indices)
    ref_values, ref_indices = naive.max_pool(host, windows)
    assert_close(values.copy_to_host(), ref_values, rtol=0.0)
    assert_close(indices.copy_to_host(), ref_indices)
    grad = cuda.to_device(random_array(rng, ref_values.shape, np.float32))
    back = cuda_pool.max_pool_backward(grad, indices, host.shape[2:])
    assert _device.is_device_array(back)
    assert_close(back.copy_to_host(),
                 naive.max_pool_backward(grad.copy_to_host(), ref_indices, host.shape[2:]))
    out = cuda_pool.avg_pool(x, windows)
    assert _device.is_device_array(out)
    assert_close(out.copy_to_host(), naive.avg_pool(host, windows), terms=9)
    back = cuda_pool.avg_pool_backward(grad, windows, host.shape[2:])
    assert _device.is_device_array(back)
    assert_close(back.copy_to_host(),
                 naive.avg_pool_backward(grad.copy_to_host(), windows, host.shape[2:]), terms=9)
    np.testing.assert_array_equal(x.copy_to_host(), host)


def test_plane_threads_must_be_a_power_of_two(monkeypatch, rng):
    monkeypatch.setattr(cuda_pool, "PLANE_THREADS", 6)
    grad = random_array(rng, (1, 1, 1, 1, 2), np.float64)
    with pytest.raises(ValueError, match="PLANE_THREADS"):
        cuda_pool.max_pool_backward(grad, np.zeros(grad.shape, np.int64), (1, 1, 4))


# --------------------------------------------------------------------------------------
# normalisation

# (P, Q, S): slices of P * S elements, most longer than a block of 8
NORM_SHAPES = [(3, 4, 7), (1, 2, 29), (5, 1, 1)]


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=_ids)
def test_moments(shape, dtype, rng):
    x = random_array(rng, shape, dtype) + 0.5
    mean, m2 = _call(cuda_norm.moments, x)
    ref_mean, ref_m2 = naive.moments(x)
    terms = shape[0] * shape[2]
    assert_close(mean, ref_mean, terms=terms, context="mean")
    assert_close(m2, ref_m2, terms=terms, context="m2")


@pytest.mark.parametrize("threads", [1, 2, 4, 8])
def test_moments_any_power_of_two_block(threads, monkeypatch, rng):
    """Trees of 0 to 3 levels give the same sums (to rounding)."""
    monkeypatch.setattr(cuda_norm, "REDUCE_THREADS", threads)
    x = random_array(rng, (2, 3, 9), np.float64)
    for got, ref in zip(cuda_norm.moments(x), naive.moments(x)):
        assert_close(got, ref, terms=18)


def test_reduce_threads_must_be_a_power_of_two(monkeypatch, rng):
    monkeypatch.setattr(cuda_norm, "REDUCE_THREADS", 12)
    with pytest.raises(ValueError, match="REDUCE_THREADS"):
        cuda_norm.moments(random_array(rng, (1, 2, 3), np.float64))


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_moments_constant_slice(dtype):
    """A constant slice: its mean exactly, and no spread at all."""
    x = np.full((3, 2, 5), 0.1, dtype=dtype)
    x[:, 1] = -7.0
    mean, m2 = cuda_norm.moments(x)
    np.testing.assert_array_equal(mean, np.array([float(dtype(0.1)), -7.0]))
    np.testing.assert_array_equal(m2, np.zeros(2))


def test_moments_float32_stability():
    """SPEC: float32 with mean 1e4 and standard deviation 1e-2 keeps its variance (1e-3 rel)."""
    x = (1e4 + 1e-2 * np.random.default_rng(7).standard_normal((2, 2, 150))).astype(np.float32)
    mean, m2 = cuda_norm.moments(x)
    wide = x.astype(np.float64)
    reference = wide.var(axis=(0, 2))
    assert np.all(np.abs(m2 / 300 / reference - 1) < 1e-3), (m2 / 300, reference)
    assert np.all(np.abs(mean / wide.mean(axis=(0, 2)) - 1) < 1e-9)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape", NORM_SHAPES[:2], ids=_ids)
def test_dot_moments(shape, dtype, rng):
    dy = random_array(rng, shape, dtype)
    x = random_array(rng, shape, dtype)
    mean = x.astype(np.float64).mean(axis=(0, 2)) + 0.25
    got = _call(cuda_norm.dot_moments, dy, x, mean)
    terms = shape[0] * shape[2]
    for name, g, ref in zip(("sum_dy", "sum_dy_centred"), got, naive.dot_moments(dy, x, mean)):
        assert_close(g, ref, dtype=np.float64, terms=terms, context=name)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_scale_shift_and_axpby(dtype, rng):
    shape = (2, 3, 5)
    x = random_array(rng, shape, dtype)
    dy = random_array(rng, shape, dtype)
    a, b, c = (random_array(rng, (3,), dtype) for _ in range(3))
    assert_close(_call(cuda_norm.scale_shift, x, a, b), naive.scale_shift(x, a, b), dtype=dtype,
                 context="scale_shift")
    assert_close(_call(cuda_norm.axpby, dy, x, a, b, c), naive.axpby(dy, x, a, b, c),
                 dtype=dtype, context="axpby")


def _layer_inputs(rng, dtype, rows=4, width=11):
    x = random_array(rng, (rows, width), dtype) * 2 + 0.3
    wide = x.astype(np.float64)
    mean = wide.mean(axis=1)
    rstd = 1.0 / np.sqrt(wide.var(axis=1) + 1e-5)
    return x, mean, rstd


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("with_weight,with_bias", [(False, False), (True, False), (False, True),
                                                   (True, True)])
def test_layer_normalize(with_weight, with_bias, dtype, rng):
    x, mean, rstd = _layer_inputs(rng, dtype)
    weight = (1 + 0.5 * random_array(rng, (x.shape[1],), dtype)) if with_weight else None
    bias = random_array(rng, (x.shape[1],), dtype) if with_bias else None
    got = _call(cuda_norm.layer_normalize, x, mean, rstd, weight, bias)
    assert_close(got, naive.layer_normalize(x, mean, rstd, weight, bias), dtype=dtype)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("rows,width", [(6, 11), (1, 3), (9, 1)], ids=_ids)
def test_layer_norm_backward(rows, width, with_weight, dtype, rng):
    """Rows wider than a block, columns spread over several column blocks and row groups."""
    x, mean, rstd = _layer_inputs(rng, dtype, rows, width)
    dy = random_array(rng, x.shape, dtype)
    weight = (1 + 0.5 * random_array(rng, (width,), dtype)) if with_weight else None
    got = _call(cuda_norm.layer_norm_backward, dy, x, mean, rstd, weight)
    ref = naive.layer_norm_backward(dy, x, mean, rstd, weight)
    for name, g, r, expected in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                                    (dtype, np.float64, np.float64)):
        assert_close(g, r, dtype=expected, terms=max(rows, width), context=name)


def test_norm_device_arrays_stay_on_the_device(rng):
    x = random_array(rng, (2, 3, 5), np.float32)
    dy = random_array(rng, x.shape, np.float32)
    scale, shift = random_array(rng, (3,), np.float32), random_array(rng, (3,), np.float32)
    x_device, dy_device = cuda.to_device(x), cuda.to_device(dy)
    mean, m2 = cuda_norm.moments(x_device)
    assert _device.is_device_array(mean) and _device.is_device_array(m2)
    for got, ref in zip((mean, m2), naive.moments(x)):
        assert_close(got.copy_to_host(), ref, terms=10)
    sums = cuda_norm.dot_moments(dy_device, x_device, mean)
    for got, ref in zip(sums, naive.dot_moments(dy, x, mean.copy_to_host())):
        assert _device.is_device_array(got)
        assert_close(got.copy_to_host(), ref, terms=10)
    out = cuda_norm.scale_shift(x_device, scale, shift)
    assert _device.is_device_array(out)
    assert_close(out.copy_to_host(), naive.scale_shift(x, scale, shift))
    out = cuda_norm.axpby(dy_device, x_device, scale, shift, scale)
    assert _device.is_device_array(out)
    assert_close(out.copy_to_host(), naive.axpby(dy, x, scale, shift, scale))
    rows = x.reshape(6, 5)
    row_mean, rstd = rows.astype(np.float64).mean(1), 1.0 / (1.0 + rows.std(1))
    bias = random_array(rng, (5,), np.float32)
    out = cuda_norm.layer_normalize(cuda.to_device(rows), row_mean, rstd, None, bias)
    assert _device.is_device_array(out)
    assert_close(out.copy_to_host(), naive.layer_normalize(rows, row_mean, rstd, None, bias))
    grads = cuda_norm.layer_norm_backward(cuda.to_device(dy.reshape(6, 5)), cuda.to_device(rows),
                                          row_mean, rstd, None)
    for got, ref in zip(grads, naive.layer_norm_backward(dy.reshape(6, 5), rows, row_mean, rstd,
                                                          None)):
        assert _device.is_device_array(got)
        assert_close(got.copy_to_host(), ref, terms=6)
    np.testing.assert_array_equal(x_device.copy_to_host(), x)
    np.testing.assert_array_equal(dy_device.copy_to_host(), dy)


@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_conv_bias_grad(dtype, rng):
    """The per-channel sums of a gradient, as the front end's float64 sum gives them."""
    grad = random_array(rng, (2, 3, 1, 5, 4), dtype)
    got = _call(cuda_norm.conv_bias_grad, grad)
    assert got.dtype == dtype and got.shape == (3,)
    reference = grad.astype(np.float64).sum(axis=(0, 2, 3, 4))
    assert_close(got, reference, dtype=dtype, terms=40, context="conv_bias_grad")
    device = cuda_norm.conv_bias_grad(cuda.to_device(grad)[:, :, :, ::2])  # a strided view
    assert _device.is_device_array(device)
    assert_close(device.copy_to_host(), grad[:, :, :, ::2].astype(np.float64).sum((0, 2, 3, 4)),
                 dtype=dtype, terms=24, context="conv_bias_grad of a device view")
