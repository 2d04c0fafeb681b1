"""Pooling against torch on every backend that has it: values, indices, gradients, errors.

Grids: window geometry (kernel x stride x padding x dilation x ceil_mode, odd and even
sizes, windows hanging over the edge), average options (count_include_pad,
divisor_override), adaptive output sizes (int, pair, None entries, larger than the
input), dtypes (float32 / float64 natively, integers to float64), views (transposed,
sliced, negative strides), unbatched inputs and a batch of one.  References are torch
in float64; maxima and indices must match exactly, averages to the dtype's tolerance.
The 'scipy' backend has no pooling and must say so.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CPU_BACKENDS, assert_close, expected_net_dtype, message_names, random_array
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastcorr


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """torch's references are tiny: its thread pool only costs time (a lot on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Backends with pooling kernels ('scipy' has none), plus 'auto'.
POOL_BACKENDS = [b for b in CPU_BACKENDS if b != "scipy"] + ["auto"]
FLOATS = [np.float32, np.float64]


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _t(x) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float64)))


def _pair(value):
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def _torch_accepts(size, kernel, stride, padding, dilation=1):
    """torch's own limits: padding <= kernel // 2 and at least one window per dimension."""
    for n, k, p, d in zip(size, _pair(kernel), _pair(padding), _pair(dilation)):
        if p > k // 2 or d * (k - 1) + 1 > n + 2 * p:
            return False
    return True


# --------------------------------------------------------------------------------------
# max_pool2d


KERNELS = [2, 3, (3, 2)]
STRIDES = [None, 1, (2, 3)]
PADDINGS = [0, 1, (1, 0)]
DILATIONS = [1, (2, 1)]
MAX_SHAPE = (2, 3, 7, 8)          # odd height, even width


def _max_geometries(kernel):
    """(stride, padding, dilation) combinations torch accepts for ``kernel`` on MAX_SHAPE."""
    return [g for g in itertools.product(STRIDES, PADDINGS, DILATIONS)
            if _torch_accepts(MAX_SHAPE[2:], kernel, *g)]


def torch_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    values, indices = F.max_pool2d(_t(x), kernel_size, stride, padding, dilation,
                                   ceil_mode=ceil_mode, return_indices=True)
    return values.numpy(), indices.numpy()


def check_max_pool2d(x, backend, plain=True, **kwargs):
    """Values and indices against torch; ``plain``: also the call without indices (the
    numba backend's values-only kernel)."""
    got, got_indices = fastcorr.max_pool2d(x, return_indices=True, backend=backend, **kwargs)
    ref, ref_indices = torch_max_pool2d(x, **kwargs)
    context = f"max_pool2d {x.shape} {kwargs} backend={backend}"
    # a maximum is one of the inputs: exact, whatever the dtype
    assert_close(got, ref, dtype=expected_net_dtype(x), rtol=0.0, context=context)
    assert_close(got_indices, ref_indices, dtype=np.int64, context=context + " indices")
    if plain:
        values = fastcorr.max_pool2d(x, backend=backend, **kwargs)
        assert_close(values, ref, dtype=expected_net_dtype(x), rtol=0.0, context=context)
    return got, got_indices


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kernel", KERNELS, ids=_ids)
def test_max_pool2d_geometry(kernel, ceil_mode, backend, rng):
    """Every stride x padding x dilation torch accepts (loop: one test would be too many)."""
    x = random_array(rng, MAX_SHAPE, np.float64)
    for stride, padding, dilation in _max_geometries(kernel):
        check_max_pool2d(x, backend, kernel_size=kernel, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int64, np.bool_], ids=_ids)
@pytest.mark.parametrize("shape", [(2, 3, 6, 5), (1, 1, 5, 5), (3, 6, 7)], ids=_ids)
def test_max_pool2d_dtypes_and_batches(shape, dtype, backend, rng):
    """float32/float64 stay, everything else becomes float64; unbatched stays unbatched."""
    x = random_array(rng, shape, dtype)
    got, indices = check_max_pool2d(x, backend, kernel_size=3, stride=2, padding=1,
                                    ceil_mode=True)
    assert got.shape == indices.shape
    assert got.ndim == len(shape)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
def test_max_pool2d_all_negative_pads_with_minus_infinity(backend, rng):
    """Padding is -inf, never 0: an all-negative input's border maxima stay negative."""
    x = -1.0 - rng.random((1, 2, 5, 6))
    got, _ = check_max_pool2d(x, backend, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    assert (got < -1.0).all()


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_max_pool2d_ties_take_torch_index(dtype, backend, rng):
    """Many equal values: the index is the one torch picks (the first maximum met)."""
    x = rng.integers(0, 3, size=(2, 3, 7, 8)).astype(dtype)
    for kwargs in (dict(kernel_size=3, stride=1, padding=1),
                   dict(kernel_size=2, stride=2, dilation=2, ceil_mode=True),
                   dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)):
        check_max_pool2d(x, backend, **kwargs)


def _views(base):
    """Non-contiguous views of a (N, C, H, W) base: transposed, sliced, negative strides."""
    return {
        "transposed": base.transpose(1, 0, 3, 2),
        "sliced": base[:, 1:, ::2, 1:],
        "reversed": base[::-1, :, ::-1, :],
        "reversed-w": base[..., ::-1],
        "fortran": np.asfortranarray(base),
    }


VIEW_NAMES = list(_views(np.zeros((1, 1, 1, 1))))


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("view", VIEW_NAMES)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_max_pool2d_views(view, dtype, backend, rng):
    base = random_array(rng, (3, 2, 8, 8), dtype)
    before = base.copy()
    x = _views(base)[view]
    check_max_pool2d(x, backend, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    np.testing.assert_array_equal(base, before)


# --------------------------------------------------------------------------------------
# padding beyond kernel // 2: torch refuses it even where dilation widens the window, and
# so does fastcorr.


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("kernel,dilation,padding", [(3, 2, 2), (2, 3, 2), ((3, 2), 2, (2, 1))],
                         ids=_ids)
def test_max_pool2d_padding_over_half_kernel_refused_like_torch(kernel, dilation, padding,
                                                                backend, rng):
    x = random_array(rng, (1, 2, 7, 8), np.float64)
    with pytest.raises(RuntimeError):
        F.max_pool2d(_t(x), kernel, 1, padding, dilation)
    with pytest.raises(ValueError, match=r"max_pool2d.*padding"):
        fastcorr.max_pool2d(x, kernel, 1, padding, dilation, backend=backend)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("shape,kwargs", [
    pytest.param((1, 1, 1, 1), dict(kernel_size=(1, 2), stride=1, padding=(0, 1),
                                    dilation=(1, 2)), id="1x1-only-window"),
    pytest.param((2, 3, 1, 2), dict(kernel_size=(1, 2), stride=(1, 3), padding=(0, 1),
                                    dilation=(1, 3)), id="1x2-only-window"),
    pytest.param((1, 2, 2, 5), dict(kernel_size=2, stride=(1, 2), padding=1, dilation=3),
                 id="2x5-some-windows"),
])
def test_max_pool2d_window_wholly_in_dilated_padding(shape, kwargs, backend, rng):
    """A dilated window whose taps all land in the padding (torch accepts these paddings):
    its maximum is -inf, as in torch, and it passes no gradient to x.

    torch's index for such a window points outside the plane (and its backward then writes
    out of bounds), so the gradient's reference is an explicit -inf pad, an unpadded pool
    and the pad's adjoint (a crop): the empty windows' gradient lands in the padding."""
    x = random_array(rng, shape, np.float64)
    torch_values, _ = torch_max_pool2d(x, **kwargs)
    assert np.isneginf(torch_values).any()            # the case under test occurs
    got = fastcorr.max_pool2d(x, backend=backend, **kwargs)
    assert_close(got, torch_values, rtol=0.0)
    grad_output = random_array(rng, torch_values.shape, np.float64)
    grad = fastcorr.max_pool2d_backward(grad_output, x, backend=backend, **kwargs)
    ph, pw = _pair(kwargs["padding"])
    xt = _t(x).requires_grad_(True)
    padded = F.pad(xt, (pw, pw, ph, ph), value=float("-inf"))
    pooled = F.max_pool2d(padded, kwargs["kernel_size"], kwargs["stride"], 0,
                          kwargs["dilation"])
    assert_close(pooled.detach().numpy(), torch_values, rtol=0.0)
    pooled.backward(_t(grad_output))
    assert_close(grad, xt.grad.numpy(), terms=4)


# --------------------------------------------------------------------------------------
# NaN and Inf


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_max_pool2d_nan_and_inf_as_torch(dtype, backend, rng):
    """A window holding NaN gives NaN with torch's index (the last NaN); Inf wins; -inf kept."""
    x = random_array(rng, (1, 2, 6, 7), dtype)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan           # two NaNs in one window
    x[0, 0, 4, 4] = np.inf
    x[0, 1, 2, 3] = np.nan
    x[0, 1, 5, :] = -np.inf           # a row of -inf: windows over it and the padding
    for kwargs in (dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                   dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
                   dict(kernel_size=(1, 3), stride=(1, 2), padding=(0, 1))):
        check_max_pool2d(x, backend, **kwargs)
        # the gradient goes where torch's index points, NaN or not
        grad_output = random_array(rng, fastcorr.max_pool2d(x, **kwargs).shape, dtype)
        got = fastcorr.max_pool2d_backward(grad_output, x, backend=backend, **kwargs)
        assert_close(got, torch_pool_grad(F.max_pool2d, x, grad_output, **kwargs), dtype=dtype,
                     terms=9, context=f"max_pool2d_backward {kwargs}")


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("width", [9, 10, 11])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
def test_max_pool2d_stride_two_rows_with_nan(kernel, dilation, width, backend, rng):
    """Stride 2 along rows (the numba values-only kernel splits even and odd columns):
    every kernel, dilation and padding, odd and even widths, NaN and inf in the rows."""
    x = random_array(rng, (2, 2, 3, width), np.float32)
    x[0, 0, 1, 2] = np.nan
    x[0, 1, 0, width - 1] = np.nan
    x[1, 0, 2, 0] = np.inf
    x[1, 1, :, 1::3] = -np.inf
    for padding in range(kernel // 2 + 1):
        for ceil_mode in (False, True):
            kwargs = dict(kernel_size=(1, kernel), stride=(1, 2), padding=(0, padding),
                          dilation=(1, dilation), ceil_mode=ceil_mode)
            if _torch_accepts(x.shape[2:], kwargs["kernel_size"], (1, 2), (0, padding),
                              (1, dilation)):
                check_max_pool2d(x, backend, **kwargs)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
def test_max_pool2d_all_minus_inf_window_index(backend):
    """Every window -inf: value -inf, index of the window's first in-bounds tap (torch)."""
    x = np.full((1, 1, 3, 4), -np.inf)
    check_max_pool2d(x, backend, kernel_size=2, stride=2, padding=1)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
def test_avg_pool2d_nan_and_inf_propagate(backend, rng):
    x = random_array(rng, (1, 1, 6, 6), np.float64)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 3, 3] = np.inf
    x[0, 0, 5, 5] = -np.inf
    got = fastcorr.avg_pool2d(x, 2, backend=backend)
    ref = F.avg_pool2d(_t(x), 2).numpy()
    assert_close(got, ref, terms=4)


# --------------------------------------------------------------------------------------
# max_pool1d


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 9), (3, 8)], ids=_ids)
def test_max_pool1d(shape, kernel, ceil_mode, backend, rng):
    """(N, C, L) and unbatched (C, L); every stride x padding x dilation in a loop."""
    x = random_array(rng, shape, np.float64)
    for stride, padding, dilation in itertools.product([None, 1, 2], range(kernel // 2 + 1),
                                                       [1, 2]):
        context = f"max_pool1d {shape} k={kernel} s={stride} p={padding} d={dilation}"
        got, indices = fastcorr.max_pool1d(x, kernel, stride, padding, dilation, ceil_mode, True,
                                           backend=backend)
        ref, ref_indices = F.max_pool1d(_t(x), kernel, stride, padding, dilation, ceil_mode,
                                        True)
        assert_close(got, ref.numpy(), rtol=0.0, context=context)
        assert_close(indices, ref_indices.numpy(), dtype=np.int64, context=context)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
def test_max_pool1d_float32(backend, rng):
    x = random_array(rng, (2, 3, 10), np.float32)
    got = fastcorr.max_pool1d(x, 3, 2, 1, backend=backend)
    assert_close(got, F.max_pool1d(_t(x), 3, 2, 1).numpy(), dtype=np.float32, rtol=0.0)


# --------------------------------------------------------------------------------------
# avg_pool2d / avg_pool1d

AVG_SHAPE = (2, 3, 7, 8)


def _avg_geometries(kernel):
    """(stride, padding) combinations torch accepts for ``kernel`` on AVG_SHAPE."""
    return [g for g in itertools.product(STRIDES, PADDINGS)
            if _torch_accepts(AVG_SHAPE[2:], kernel, *g)]


def torch_avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                     count_include_pad=True, divisor_override=None):
    return F.avg_pool2d(_t(x), kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override).numpy()


def check_avg_pool2d(x, backend, **kwargs):
    got = fastcorr.avg_pool2d(x, backend=backend, **kwargs)
    ref = torch_avg_pool2d(x, **kwargs)
    terms = int(np.prod(_pair(kwargs["kernel_size"])))
    assert_close(got, ref, dtype=expected_net_dtype(x), terms=terms,
                 context=f"avg_pool2d {x.shape} {kwargs} backend={backend}")
    return got


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kernel", KERNELS, ids=_ids)
def test_avg_pool2d_geometry(kernel, ceil_mode, count_include_pad, backend, rng):
    """Every stride x padding torch accepts, in a loop."""
    x = random_array(rng, AVG_SHAPE, np.float64)
    for stride, padding in _avg_geometries(kernel):
        check_avg_pool2d(x, backend, kernel_size=kernel, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("divisor_override", [1, 5, -3])
@pytest.mark.parametrize("ceil_mode,count_include_pad", list(itertools.product([False, True],
                                                                               [True, False])))
def test_avg_pool2d_divisor_override(ceil_mode, count_include_pad, divisor_override, backend, rng):
    x = random_array(rng, (2, 2, 7, 6), np.float64)
    check_avg_pool2d(x, backend, kernel_size=3, stride=2, padding=1, ceil_mode=ceil_mode,
                     count_include_pad=count_include_pad, divisor_override=divisor_override)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int32], ids=_ids)
@pytest.mark.parametrize("shape", [(2, 3, 6, 5), (1, 1, 5, 5), (3, 6, 7)], ids=_ids)
def test_avg_pool2d_dtypes_and_batches(shape, dtype, backend, rng):
    x = random_array(rng, shape, dtype)
    got = check_avg_pool2d(x, backend, kernel_size=3, stride=2, padding=1, ceil_mode=True,
                           count_include_pad=False)
    assert got.ndim == len(shape)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("view", VIEW_NAMES)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_avg_pool2d_views(view, dtype, backend, rng):
    base = random_array(rng, (3, 2, 8, 8), dtype)
    before = base.copy()
    check_avg_pool2d(_views(base)[view], backend, kernel_size=(3, 2), stride=2, padding=1,
                     ceil_mode=True)
    np.testing.assert_array_equal(base, before)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 9), (3, 8)], ids=_ids)
def test_avg_pool1d(shape, kernel, ceil_mode, count_include_pad, backend, rng):
    x = random_array(rng, shape, np.float64)
    for stride, padding in itertools.product([None, 1, 2], range(kernel // 2 + 1)):
        got = fastcorr.avg_pool1d(x, kernel, stride, padding, ceil_mode, count_include_pad,
                                  backend=backend)
        ref = F.avg_pool1d(_t(x), kernel, stride, padding, ceil_mode, count_include_pad).numpy()
        assert_close(got, ref, terms=kernel,
                     context=f"avg_pool1d {shape} k={kernel} s={stride} p={padding}")


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("divisor_override", [None, 4])
def test_avg_pool1d_float32_and_divisor(divisor_override, backend, rng):
    x = random_array(rng, (2, 3, 10), np.float32)
    got = fastcorr.avg_pool1d(x, 3, 2, 1, True, False, divisor_override, backend=backend)
    if divisor_override is None:
        ref = F.avg_pool1d(_t(x), 3, 2, 1, True, False).numpy()
    else:  # torch's avg_pool1d has no divisor_override: the 2-D pool over a unit height
        ref = F.avg_pool2d(_t(x)[:, :, None], (1, 3), (1, 2), (0, 1), True, False,
                           divisor_override).numpy()[:, :, 0]
    assert_close(got, ref, dtype=np.float32, terms=3)


# --------------------------------------------------------------------------------------
# adaptive and global pools

ADAPTIVE_SIZES = [1, 2, 3, (2, 4), (None, 3), (4, None), (7, 5), (9, 6), (None, None)]


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES, ids=_ids)
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (3, 6, 4)], ids=_ids)
def test_adaptive_pools(shape, output_size, backend, rng):
    x = random_array(rng, shape, np.float64)
    got = fastcorr.adaptive_avg_pool2d(x, output_size, backend=backend)
    ref = F.adaptive_avg_pool2d(_t(x), output_size).numpy()
    assert_close(got, ref, terms=x.shape[-1] * x.shape[-2])
    got, indices = fastcorr.adaptive_max_pool2d(x, output_size, return_indices=True,
                                                backend=backend)
    ref, ref_indices = F.adaptive_max_pool2d(_t(x), output_size, return_indices=True)
    assert_close(got, ref.numpy(), rtol=0.0)
    assert_close(indices, ref_indices.numpy(), dtype=np.int64)
    plain = fastcorr.adaptive_max_pool2d(x, output_size, backend=backend)
    assert_close(plain, ref.numpy(), rtol=0.0)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int64], ids=_ids)
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_adaptive_pools_views_and_dtypes(view, dtype, backend, rng):
    base = random_array(rng, (2, 3, 8, 7), dtype)
    x = _views(base)[view]
    got = fastcorr.adaptive_avg_pool2d(x, (3, 2), backend=backend)
    assert_close(got, F.adaptive_avg_pool2d(_t(x), (3, 2)).numpy(),
                 dtype=expected_net_dtype(x), terms=24)
    got, indices = fastcorr.adaptive_max_pool2d(x, (3, 2), True, backend=backend)
    ref, ref_indices = F.adaptive_max_pool2d(_t(x), (3, 2), True)
    assert_close(got, ref.numpy(), dtype=expected_net_dtype(x), rtol=0.0)
    assert_close(indices, ref_indices.numpy(), dtype=np.int64)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int32], ids=_ids)
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 1), (1, 4, 3, 8)], ids=_ids)
def test_global_pools(shape, dtype, backend, rng):
    """Seed 003, Q11: global max / mean pool == x.amax((2, 3)) / x.mean((2, 3)), (N, C)."""
    x = random_array(rng, shape, dtype)
    expected_dtype = expected_net_dtype(x)
    got = fastcorr.global_max_pool2d(x, backend=backend)
    assert_close(got, _t(x).amax((2, 3)).numpy(), dtype=expected_dtype, rtol=0.0)
    got = fastcorr.global_avg_pool2d(x, backend=backend)
    assert_close(got, _t(x).mean((2, 3)).numpy(), dtype=expected_dtype,
                 terms=shape[2] * shape[3])


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_global_pools_long_planes_with_nan_and_inf(dtype, backend, rng):
    """Planes longer than the numba kernels' lanes and chunks; NaN wins, inf is a value."""
    x = random_array(rng, (2, 4, 70, 91), dtype)
    x[0, 1, 60, 5] = np.nan
    x[0, 2, 3, 4] = np.inf
    x[0, 2, 50, 90] = -np.inf
    x[1, 0] = -np.inf
    x[1, 3, 69, 90] = np.nan  # the very last element
    view = x[:, ::-1, :, ::-1]  # negative strides too
    for sample in (x, view, x[1]):  # batched, non-contiguous, unbatched
        got = fastcorr.global_max_pool2d(sample, backend=backend)
        np.testing.assert_array_equal(got, np.max(sample, axis=(-2, -1)))
        got = fastcorr.global_avg_pool2d(sample, backend=backend)
        assert_close(got, np.mean(sample.astype(np.float64), axis=(-2, -1)), dtype=dtype,
                     terms=70 * 91)


# --------------------------------------------------------------------------------------
# gradients: torch autograd in float64


def torch_pool_grad(pool, x, grad_output, **kwargs):
    xt = _t(x).requires_grad_(True)
    out = pool(xt, **kwargs)
    out.backward(_t(grad_output))
    return xt.grad.numpy()


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kernel", KERNELS, ids=_ids)
def test_max_pool2d_backward(kernel, ceil_mode, backend, rng):
    x = random_array(rng, MAX_SHAPE, np.float64)
    for stride, padding, dilation in _max_geometries(kernel):
        kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
        out_shape = F.max_pool2d(_t(x), **kwargs).shape
        grad_output = random_array(rng, tuple(out_shape), np.float64)
        got = fastcorr.max_pool2d_backward(grad_output, x, backend=backend, **kwargs)
        ref = torch_pool_grad(F.max_pool2d, x, grad_output, **kwargs)
        # an input can collect from several overlapping windows
        assert_close(got, ref, terms=int(np.prod(_pair(kernel))),
                     context=f"max_pool2d_backward {kwargs}")


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kernel", KERNELS, ids=_ids)
def test_avg_pool2d_backward(kernel, ceil_mode, count_include_pad, backend, rng):
    x = random_array(rng, AVG_SHAPE, np.float64)
    for stride, padding in _avg_geometries(kernel):
        kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                      count_include_pad=count_include_pad)
        out_shape = F.avg_pool2d(_t(x), **kwargs).shape
        grad_output = random_array(rng, tuple(out_shape), np.float64)
        got = fastcorr.avg_pool2d_backward(grad_output, x, backend=backend, **kwargs)
        ref = torch_pool_grad(F.avg_pool2d, x, grad_output, **kwargs)
        assert_close(got, ref, terms=int(np.prod(_pair(kernel))),
                     context=f"avg_pool2d_backward {kwargs}")


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape,divisor_override", [((1, 1, 5, 5), None), ((3, 7, 6), 3)],
                         ids=_ids)
def test_pool2d_backward_dtypes_batches_divisor(shape, divisor_override, dtype, backend, rng):
    x = random_array(rng, shape, dtype)
    kwargs = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    grad_output = random_array(rng, tuple(F.max_pool2d(_t(x), **kwargs).shape), dtype)
    got = fastcorr.max_pool2d_backward(grad_output, x, backend=backend, **kwargs)
    assert_close(got, torch_pool_grad(F.max_pool2d, x, grad_output, **kwargs), dtype=dtype,
                 terms=9)
    kwargs["divisor_override"] = divisor_override
    got = fastcorr.avg_pool2d_backward(grad_output, x, backend=backend, **kwargs)
    assert_close(got, torch_pool_grad(F.avg_pool2d, x, grad_output, **kwargs), dtype=dtype,
                 terms=9)


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_pool2d_backward_views(view, backend, rng):
    """Non-contiguous x and grad_output; neither is modified."""
    base = random_array(rng, (3, 2, 8, 8), np.float64)
    x = _views(base)[view]
    kwargs = dict(kernel_size=3, stride=2, padding=1)
    out_shape = tuple(F.max_pool2d(_t(x), **kwargs).shape)
    grad_base = random_array(rng, out_shape[::-1], np.float64)
    grad_output = grad_base.transpose(3, 2, 1, 0)[..., ::-1]
    saved = base.copy(), grad_base.copy()
    got = fastcorr.max_pool2d_backward(grad_output, x, backend=backend, **kwargs)
    assert_close(got, torch_pool_grad(F.max_pool2d, x, grad_output, **kwargs), terms=9)
    got = fastcorr.avg_pool2d_backward(grad_output, x, backend=backend, **kwargs)
    assert_close(got, torch_pool_grad(F.avg_pool2d, x, grad_output, **kwargs), terms=9)
    np.testing.assert_array_equal(base, saved[0])
    np.testing.assert_array_equal(grad_base, saved[1])


@pytest.mark.parametrize("backend", POOL_BACKENDS)
def test_max_pool2d_backward_ties_follow_torch(backend, rng):
    """With ties the gradient goes where torch's index points (the first maximum)."""
    x = rng.integers(0, 2, size=(2, 2, 6, 7)).astype(np.float64)
    kwargs = dict(kernel_size=3, stride=1, padding=1)
    grad_output = random_array(rng, tuple(F.max_pool2d(_t(x), **kwargs).shape), np.float64)
    got = fastcorr.max_pool2d_backward(grad_output, x, backend=backend, **kwargs)
    assert_close(got, torch_pool_grad(F.max_pool2d, x, grad_output, **kwargs), terms=9)


# --------------------------------------------------------------------------------------
# finite differences of the naive backend (float64, central differences)


def _central_difference(f, x, grad_output, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        grad[index] = np.sum(grad_output * (f(plus) - f(minus))) / (2 * h)
    return grad


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=1, padding=(1, 1), dilation=(2, 1)),
], ids=_ids)
def test_max_pool2d_backward_finite_differences(kwargs, rng):
    # distinct values far apart compared with h: the argmax does not move
    x = rng.permutation(50)[:2 * 5 * 5].reshape(1, 2, 5, 5) / 7.0
    grad_output = random_array(rng, fastcorr.max_pool2d(x, backend="naive", **kwargs).shape,
                               np.float64)
    got = fastcorr.max_pool2d_backward(grad_output, x, backend="naive", **kwargs)
    numeric = _central_difference(lambda v: fastcorr.max_pool2d(v, backend="naive", **kwargs),
                                  x, grad_output)
    assert_close(got, numeric, rtol=1e-7)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, divisor_override=2),
], ids=_ids)
def test_avg_pool2d_backward_finite_differences(kwargs, rng):
    x = random_array(rng, (1, 2, 5, 5), np.float64)
    grad_output = random_array(rng, fastcorr.avg_pool2d(x, backend="naive", **kwargs).shape,
                               np.float64)
    got = fastcorr.avg_pool2d_backward(grad_output, x, backend="naive", **kwargs)
    numeric = _central_difference(lambda v: fastcorr.avg_pool2d(v, backend="naive", **kwargs),
                                  x, grad_output)
    assert_close(got, numeric, rtol=1e-7)


# --------------------------------------------------------------------------------------
# hypothesis: every backend against naive and torch on small random problems


@st.composite
def pool_problems(draw, dilated: bool):
    batch = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    assume(all(d * (k - 1) + 1 <= n + 2 * p
               for n, k, p, d in zip((height, width), kernel, padding, dilation)))
    ceil_mode = draw(st.booleans())
    ties = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(seed)
    shape = (batch, channels, height, width)
    x = (rng.integers(-2, 3, size=shape) if ties else rng.uniform(-1, 1, shape)).astype(dtype)
    return x, dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode), \
        dilation


HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.filter_too_much])


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@HYPOTHESIS
@given(problem=pool_problems(dilated=True))
def test_hypothesis_max_pool2d_vs_naive_and_torch(backend, problem):
    x, kwargs, dilation = problem
    kwargs["dilation"] = dilation
    torch_values, torch_indices = torch_max_pool2d(x, **kwargs)
    # x is finite: -inf marks a dilated window wholly in the padding, whose torch index
    # points outside the plane; test_max_pool2d_window_wholly_in_dilated_padding has those
    assume(not np.isneginf(torch_values).any())
    got, indices = fastcorr.max_pool2d(x, return_indices=True, backend=backend, **kwargs)
    assert_close(got, torch_values, dtype=x.dtype, rtol=0.0, context=f"{backend} {kwargs}")
    assert_close(indices, torch_indices, dtype=np.int64, context=f"{backend} {kwargs}")
    values = fastcorr.max_pool2d(x, backend=backend, **kwargs)  # numba: values-only kernel
    assert_close(values, torch_values, dtype=x.dtype, rtol=0.0, context=f"{backend} {kwargs}")
    if backend != "naive":
        ref, ref_indices = fastcorr.max_pool2d(x, return_indices=True, backend="naive",
                                               **kwargs)
        assert_close(got, ref, rtol=0.0, context=f"{backend} vs naive {kwargs}")
        assert_close(indices, ref_indices, context=f"{backend} vs naive {kwargs}")


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@HYPOTHESIS
@given(problem=pool_problems(dilated=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3]))
def test_hypothesis_avg_pool2d_vs_naive_and_torch(backend, problem, count_include_pad,
                                                   divisor_override):
    x, kwargs, _ = problem
    kwargs.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    terms = int(np.prod(kwargs["kernel_size"]))
    got = fastcorr.avg_pool2d(x, backend=backend, **kwargs)
    assert_close(got, torch_avg_pool2d(x, **kwargs), dtype=x.dtype, terms=terms,
                 context=f"{backend} {kwargs}")
    if backend != "naive":
        ref = fastcorr.avg_pool2d(x, backend="naive", **kwargs)
        assert_close(got, ref, terms=terms, context=f"{backend} vs naive {kwargs}")


# --------------------------------------------------------------------------------------
# errors: ValueError / TypeError naming the function and the parameter

X = np.ones((2, 3, 6, 6))
G = np.ones((2, 3, 3, 3))  # grad_output of a 2x2 stride-2 pool of X

ERROR_CASES = {
    "max-padding-over-half": (lambda b: fastcorr.max_pool2d(X, 3, padding=2, backend=b),
                              ValueError, ["max_pool2d", "padding"]),
    "max-padding-over-half-one-dim": (
        lambda b: fastcorr.max_pool2d(X, (3, 2), padding=(1, 2), backend=b),
        ValueError, ["max_pool2d", "padding"]),
    "avg-padding-over-half": (lambda b: fastcorr.avg_pool2d(X, 2, padding=2, backend=b),
                              ValueError, ["avg_pool2d", "padding"]),
    "max1d-padding-over-half": (lambda b: fastcorr.max_pool1d(X[0], 2, padding=2, backend=b),
                                ValueError, ["max_pool1d", "padding"]),
    "avg1d-padding-over-half": (lambda b: fastcorr.avg_pool1d(X[0], 3, padding=2, backend=b),
                                ValueError, ["avg_pool1d", "padding"]),
    "padding-negative": (lambda b: fastcorr.max_pool2d(X, 3, padding=-1, backend=b),
                         ValueError, ["max_pool2d", "padding"]),
    "max-kernel-zero": (lambda b: fastcorr.max_pool2d(X, 0, backend=b), ValueError,
                        ["max_pool2d", "kernel_size"]),
    "avg-kernel-zero": (lambda b: fastcorr.avg_pool2d(X, (2, 0), backend=b), ValueError,
                        ["avg_pool2d", "kernel_size"]),
    "max1d-kernel-zero": (lambda b: fastcorr.max_pool1d(X[0], 0, backend=b), ValueError,
                          ["max_pool1d", "kernel_size"]),
    "kernel-float": (lambda b: fastcorr.max_pool2d(X, 2.0, backend=b), TypeError,
                     ["max_pool2d", "kernel_size"]),
    "kernel-bool": (lambda b: fastcorr.avg_pool2d(X, True, backend=b), TypeError,
                    ["avg_pool2d", "kernel_size"]),
    "kernel-three-values": (lambda b: fastcorr.max_pool2d(X, (2, 2, 2), backend=b), ValueError,
                            ["max_pool2d", "kernel_size"]),
    "kernel-too-large": (lambda b: fastcorr.max_pool2d(X, 7, backend=b), ValueError,
                         ["max_pool2d", "kernel"]),
    "max-stride-zero": (lambda b: fastcorr.max_pool2d(X, 2, stride=0, backend=b), ValueError,
                        ["max_pool2d", "stride"]),
    "avg-stride-zero": (lambda b: fastcorr.avg_pool2d(X, 2, stride=(1, 0), backend=b),
                        ValueError, ["avg_pool2d", "stride"]),
    "avg1d-stride-zero": (lambda b: fastcorr.avg_pool1d(X[0], 2, stride=0, backend=b),
                          ValueError, ["avg_pool1d", "stride"]),
    "dilation-zero": (lambda b: fastcorr.max_pool2d(X, 2, dilation=0, backend=b), ValueError,
                      ["max_pool2d", "dilation"]),
    "divisor-zero": (lambda b: fastcorr.avg_pool2d(X, 2, divisor_override=0, backend=b),
                     ValueError, ["avg_pool2d", "divisor_override"]),
    "divisor-float": (lambda b: fastcorr.avg_pool2d(X, 2, divisor_override=1.5, backend=b),
                      TypeError, ["avg_pool2d", "divisor_override"]),
    "max-x-2d": (lambda b: fastcorr.max_pool2d(X[0, 0], 2, backend=b), ValueError,
                 ["max_pool2d", "x"]),
    "max-x-5d": (lambda b: fastcorr.max_pool2d(X[None], 2, backend=b), ValueError,
                 ["max_pool2d", "x"]),
    "avg-x-1d": (lambda b: fastcorr.avg_pool2d(X[0, 0, 0], 2, backend=b), ValueError,
                 ["avg_pool2d", "x"]),
    "max1d-x-4d": (lambda b: fastcorr.max_pool1d(X, 2, backend=b), ValueError,
                   ["max_pool1d", "x"]),
    "avg1d-x-1d": (lambda b: fastcorr.avg_pool1d(X[0, 0, 0], 2, backend=b), ValueError,
                   ["avg_pool1d", "x"]),
    "adaptive-x-2d": (lambda b: fastcorr.adaptive_avg_pool2d(X[0, 0], 2, backend=b), ValueError,
                      ["adaptive_avg_pool2d", "x"]),
    "global-max-x-2d": (lambda b: fastcorr.global_max_pool2d(X[0, 0], backend=b), ValueError,
                        ["global_max_pool2d", "x"]),
    "global-avg-x-5d": (lambda b: fastcorr.global_avg_pool2d(X[None], backend=b), ValueError,
                        ["global_avg_pool2d", "x"]),
    "max-empty": (lambda b: fastcorr.max_pool2d(np.ones((0, 3, 4, 4)), 2, backend=b),
                  ValueError, ["max_pool2d", "x"]),
    "avg-empty-spatial": (lambda b: fastcorr.avg_pool2d(np.ones((1, 3, 0, 4)), 1, backend=b),
                          ValueError, ["avg_pool2d", "x"]),
    "adaptive-max-empty": (lambda b: fastcorr.adaptive_max_pool2d(np.ones((1, 0, 4, 4)), 2,
                                                                  backend=b),
                           ValueError, ["adaptive_max_pool2d", "x"]),
    "global-avg-empty": (lambda b: fastcorr.global_avg_pool2d(np.ones((2, 3, 4, 0)), backend=b),
                         ValueError, ["global_avg_pool2d", "x"]),
    "max-complex": (lambda b: fastcorr.max_pool2d(X + 1j, 2, backend=b), TypeError,
                    ["max_pool2d"]),
    "avg-strings": (lambda b: fastcorr.avg_pool2d(np.full((1, 1, 2, 2), "a"), 2, backend=b),
                    TypeError, ["avg_pool2d", "x"]),
    "adaptive-output-zero": (lambda b: fastcorr.adaptive_avg_pool2d(X, 0, backend=b),
                             ValueError, ["adaptive_avg_pool2d", "output_size"]),
    "adaptive-output-three": (lambda b: fastcorr.adaptive_max_pool2d(X, (1, 2, 3), backend=b),
                              ValueError, ["adaptive_max_pool2d", "output_size"]),
    "adaptive-output-negative": (lambda b: fastcorr.adaptive_max_pool2d(X, (2, -1), backend=b),
                                 ValueError, ["adaptive_max_pool2d", "output_size"]),
    "adaptive-output-float": (lambda b: fastcorr.adaptive_avg_pool2d(X, 2.5, backend=b),
                              (TypeError, ValueError), ["adaptive_avg_pool2d", "output_size"]),
    "max-backward-grad-shape": (
        lambda b: fastcorr.max_pool2d_backward(np.ones((2, 3, 3, 2)), X, 2, backend=b),
        ValueError, ["max_pool2d_backward", "grad_output"]),
    "max-backward-grad-unbatched": (
        lambda b: fastcorr.max_pool2d_backward(G[0], X, 2, backend=b),
        ValueError, ["max_pool2d_backward", "grad_output"]),
    "avg-backward-grad-shape": (
        lambda b: fastcorr.avg_pool2d_backward(G, X, 2, stride=1, backend=b),
        ValueError, ["avg_pool2d_backward", "grad_output"]),
    "avg-backward-grad-empty": (
        lambda b: fastcorr.avg_pool2d_backward(np.ones((0,)), X, 2, backend=b),
        ValueError, ["avg_pool2d_backward", "grad_output"]),
    "max-backward-padding": (
        lambda b: fastcorr.max_pool2d_backward(G, X, 2, padding=2, backend=b),
        ValueError, ["max_pool2d_backward", "padding"]),
    "avg-backward-kernel-zero": (
        lambda b: fastcorr.avg_pool2d_backward(G, X, 0, backend=b),
        ValueError, ["avg_pool2d_backward", "kernel_size"]),
    "max-backward-x-2d": (
        lambda b: fastcorr.max_pool2d_backward(G[0, 0], X[0, 0], 2, backend=b),
        ValueError, ["max_pool2d_backward", "x"]),
}


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_input(case, backend):
    call, exception, words = ERROR_CASES[case]
    with pytest.raises(exception) as excinfo:
        call(backend)
    message_names(excinfo, *words)


POOL_CALLS = {
    "max_pool1d": lambda x, g, b: fastcorr.max_pool1d(x[0], 2, return_indices=True, backend=b),
    "max_pool2d": lambda x, g, b: fastcorr.max_pool2d(x, 3, 2, 1, 1, True, True, backend=b),
    "avg_pool1d": lambda x, g, b: fastcorr.avg_pool1d(x[0], 3, 1, 1, backend=b),
    "avg_pool2d": lambda x, g, b: fastcorr.avg_pool2d(x, 2, 1, 1, True, False, backend=b),
    "adaptive_avg_pool2d": lambda x, g, b: fastcorr.adaptive_avg_pool2d(x, (2, 3), backend=b),
    "adaptive_max_pool2d": lambda x, g, b: fastcorr.adaptive_max_pool2d(x, 2, True, backend=b),
    "global_avg_pool2d": lambda x, g, b: fastcorr.global_avg_pool2d(x, backend=b),
    "global_max_pool2d": lambda x, g, b: fastcorr.global_max_pool2d(x, backend=b),
    "max_pool2d_backward": lambda x, g, b: fastcorr.max_pool2d_backward(g, x, 2, backend=b),
    "avg_pool2d_backward": lambda x, g, b: fastcorr.avg_pool2d_backward(g, x, 2, backend=b),
}


@pytest.mark.parametrize("backend", POOL_BACKENDS)
@pytest.mark.parametrize("func", list(POOL_CALLS))
def test_inputs_never_modified(func, backend, rng):
    """Contiguous and non-contiguous inputs (and grad_output) are left as they were."""
    for layout in ("contiguous", "view"):
        base = random_array(rng, (2, 3, 6, 6), np.float64)
        grad_base = random_array(rng, (2, 3, 3, 3), np.float64)
        if layout == "view":
            base = np.ascontiguousarray(base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)[..., ::-1]
        saved = base.copy(), grad_base.copy()
        POOL_CALLS[func](base, grad_base, backend)
        np.testing.assert_array_equal(base, saved[0])
        np.testing.assert_array_equal(grad_base, saved[1])


@pytest.mark.parametrize("func", list(POOL_CALLS))
def test_scipy_backend_has_no_pooling(func, rng):
    x = random_array(rng, (2, 3, 6, 6), np.float64)
    g = random_array(rng, (2, 3, 3, 3), np.float64)
    with pytest.raises(NotImplementedError) as excinfo:
        POOL_CALLS[func](x, g, "scipy")
    message_names(excinfo, func, "scipy")
