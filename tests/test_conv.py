"""conv1d / conv2d / conv3d against torch on every backend.

Grids: geometry (stride x padding x dilation x odd/even kernel), channels
(groups incl. depthwise x bias x batch / unbatched), padding_mode x padding,
dtypes (float32 / float64 natively, everything else to float64) and views.
References are torch in float64; expected dtypes follow the contract.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch_reference as tref
from helpers import (
    ALL_BACKENDS,
    FAST_BACKENDS,
    assert_close,
    expected_net_dtype,
    random_array,
)

import fastcorr

FLOATS = [np.float32, np.float64]
PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _check(dims, x, weight, bias=None, *, backend, **kwargs):
    got = getattr(fastcorr, f"conv{dims}d")(x, weight, bias, backend=backend, **kwargs)
    ref = tref.conv(dims, x, weight, bias, **kwargs)
    groups = kwargs.get("groups", 1)
    terms = weight.shape[1] * int(np.prod(weight.shape[2:]))
    assert_close(got, ref, dtype=expected_net_dtype(x, weight, bias), terms=terms,
                 context=f"conv{dims}d {x.shape} {weight.shape} groups={groups} {kwargs}")
    return got


# --------------------------------------------------------------------------------------
# conv2d


PADDINGS_2D = [0, 1, (2, 1), "valid", "same", "full", ((1, 0), (0, 2))]
STRIDES_2D = [1, 2, (2, 1)]
DILATIONS_2D = [1, 2, (1, 2)]
KERNELS_2D = [(3, 3), (2, 3)]

GEOMETRY_2D = [
    (padding, stride, dilation, kernel)
    for padding, stride, dilation, kernel in itertools.product(
        PADDINGS_2D, STRIDES_2D, DILATIONS_2D, KERNELS_2D)
    if not (padding == "same" and stride != 1)  # torch refuses; tested in test_errors.py
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("padding,stride,dilation,kernel", GEOMETRY_2D, ids=_ids)
def test_conv2d_geometry(padding, stride, dilation, kernel, dtype, backend, rng):
    # 5 filters: more than the numba backend's one-filter 'direct' limit, and one full
    # plus one partial 4-filter micro-tile for its GEMM paths
    x = random_array(rng, (2, 3, 7, 6), dtype)
    weight = random_array(rng, (5, 3) + kernel, dtype)
    bias = random_array(rng, (5,), dtype)
    _check(2, x, weight, bias, backend=backend, stride=stride, padding=padding,
           dilation=dilation)


# (in channels, out channels, groups): plain, grouped, depthwise, depthwise multiplier 2,
# and more filters per group than one 4-filter micro-tile holds
CHANNELS = [(4, 2, 1), (4, 4, 2), (4, 4, 4), (4, 8, 4), (3, 6, 3), (4, 12, 2), (2, 5, 1)]
BATCHES = [None, 1, 3]  # None: unbatched (C, H, W)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: "unbatched" if b is None else f"N{b}")
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("stride", [1, (1, 2)], ids=_ids)
@pytest.mark.parametrize("channels,filters,groups", CHANNELS, ids=_ids)
def test_conv2d_channels(channels, filters, groups, stride, with_bias, batch, dtype, backend,
                         rng):
    shape = (channels, 6, 5) if batch is None else (batch, channels, 6, 5)
    x = random_array(rng, shape, dtype)
    weight = random_array(rng, (filters, channels // groups, 3, 2), dtype)
    bias = random_array(rng, (filters,), dtype) if with_bias else None
    got = _check(2, x, weight, bias, backend=backend, stride=stride, padding=1, groups=groups)
    assert got.ndim == x.ndim


PADDINGS_MODE_2D = [0, 1, (1, 2), "same", "full", ((0, 2), (1, 1))]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4)], ids=_ids)
@pytest.mark.parametrize("padding", PADDINGS_MODE_2D, ids=_ids)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv2d_padding_mode(padding_mode, padding, kernel, dtype, backend, rng):
    x = random_array(rng, (1, 2, 7, 6), dtype)
    weight = random_array(rng, (3, 2) + kernel, dtype)
    _check(2, x, weight, backend=backend, padding=padding, padding_mode=padding_mode)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv2d_padding_mode_with_stride_dilation_groups(padding_mode, backend, rng):
    x = random_array(rng, (2, 4, 8, 7), np.float64)
    weight = random_array(rng, (4, 2, 3, 2), np.float64)
    bias = random_array(rng, (4,), np.float64)
    _check(2, x, weight, bias, backend=backend, stride=(2, 1), padding=(2, 1),
           dilation=(1, 2), groups=2, padding_mode=padding_mode)
    # unbatched too
    _check(2, x[0], weight, bias, backend=backend, stride=(2, 1), padding=(2, 1),
           dilation=(1, 2), groups=2, padding_mode=padding_mode)


# dtype rule: np.result_type of x, weight, bias if it is float32 / float64, else float64
DTYPE_CASES = [
    (np.float32, np.float32, None),
    (np.float32, np.float32, np.float32),
    (np.float32, np.float32, np.float64),
    (np.float32, np.float64, None),
    (np.float64, np.float32, np.float32),
    (np.int64, np.float32, None),
    (np.int32, np.int32, None),
    (np.uint8, np.float32, None),
    (np.int8, np.int16, np.int8),
    (np.float16, np.float16, None),
    (np.float16, np.float32, None),
    (np.bool_, np.float64, None),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtypes", DTYPE_CASES, ids=lambda d: "-".join(
    "none" if t is None else np.dtype(t).name for t in d))
def test_conv2d_dtype_rule(dtypes, backend, rng):
    x_dtype, w_dtype, b_dtype = dtypes
    x = random_array(rng, (1, 2, 5, 5), x_dtype)
    weight = random_array(rng, (2, 2, 2, 3), w_dtype)
    bias = None if b_dtype is None else random_array(rng, (2,), b_dtype)
    got = _check(2, x, weight, bias, backend=backend, padding=1)
    expected = np.result_type(*[a for a in (x, weight, bias) if a is not None])
    if expected not in (np.float32, np.float64):
        expected = np.dtype(np.float64)
    assert got.dtype == expected


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv2d_list_inputs(backend):
    x = [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]  # (C=1, H=2, W=3) unbatched
    w = [[[[1.0, -1.0]]]]
    got = fastcorr.conv2d(x, w, backend=backend)
    assert_close(got, np.array([[[-1.0, -1.0], [-1.0, -1.0]]]))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv2d_views(backend, rng):
    """Non-contiguous and negative-stride x, weight and bias give torch's values."""
    base_x = random_array(rng, (3, 8, 14, 12), np.float64)
    base_w = random_array(rng, (6, 4, 3, 4), np.float64)
    base_b = random_array(rng, (8,), np.float64)
    cases = [
        (base_x[::2, ::2, ::2, ::-1], base_w[::2, :, :, 1:], base_b[::-3]),
        (base_x[0, :4].transpose(0, 2, 1), base_w[:3, :4, ::-1, ::-2], base_b[:3]),
        (base_x[::-1, 1:5, 3:10, ::-2], base_w[::-1, ::-1, :2, :3].copy(order="F"), None),
        (np.asfortranarray(base_x[:, :4]), np.swapaxes(base_w[:4, :4, :3, :3], 2, 3), None),
    ]
    for x, w, b in cases:
        _check(2, x, w, b, backend=backend, padding=1, stride=(1, 2))
    float32_x = base_x.astype(np.float32)[:, :4, ::-1, ::3]
    _check(2, float32_x, base_w[:2, :4].astype(np.float32), None, backend=backend,
           padding="same")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv2d_non_native_byte_order(backend, rng):
    """Big-endian float32 computes as float32 (native order out), float64 likewise."""
    for dtype, expected in ((">f4", np.float32), (">f8", np.float64)):
        x = random_array(rng, (2, 3, 6, 5), np.float64).astype(dtype)
        w = random_array(rng, (4, 3, 3, 2), np.float64).astype(dtype)
        b = random_array(rng, (4,), np.float64).astype(dtype)
        got = fastcorr.conv2d(x, w, b, padding=1, backend=backend)
        assert got.dtype == expected
        assert_close(got, tref.conv(2, x, w, b, padding=1), dtype=expected, terms=18)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv2d_list_parameters(backend, rng):
    """Lists are accepted wherever tuples are (torch takes both)."""
    x = random_array(rng, (1, 2, 7, 6), np.float64)
    w = random_array(rng, (3, 2, 3, 2), np.float64)
    got = fastcorr.conv2d(x, w, stride=[2, 1], padding=[1, 0], dilation=[1, 2], backend=backend)
    assert_close(got, tref.conv(2, x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                 terms=12)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_conv2d_1x1_and_whole_image_kernels(dtype, backend, rng):
    x = random_array(rng, (2, 3, 5, 4), dtype)
    _check(2, x, random_array(rng, (4, 3, 1, 1), dtype), backend=backend)
    _check(2, x, random_array(rng, (2, 3, 5, 4), dtype), backend=backend)  # 1x1 output
    _check(2, x, random_array(rng, (2, 3, 5, 4), dtype), backend=backend, padding="full")


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_conv2d_larger_channels(backend, rng):
    """Enough channels and pixels for GEMM / tiled paths, float32 tolerance from the terms."""
    for dtype in FLOATS:
        x = random_array(rng, (2, 16, 20, 18), dtype)
        weight = random_array(rng, (12, 16, 3, 3), dtype)
        bias = random_array(rng, (12,), dtype)
        _check(2, x, weight, bias, backend=backend, padding=1)
        _check(2, x, weight[:, :8], bias, backend=backend, stride=2, groups=2, dilation=2)


# --------------------------------------------------------------------------------------
# conv1d


# (kernel, groups, filters): odd kernel ungrouped with a partial micro-tile, even kernel
# grouped with few filters per group
GEOMETRY_1D = [
    (padding, stride, dilation, kernel_groups)
    for padding, stride, dilation, kernel_groups in itertools.product(
        [0, 2, (1,), "valid", "same", "full", ((2, 1),)], [1, 2, (3,)], [1, 2],
        [(3, 1, 5), (4, 2, 4)])
    if not (padding == "same" and stride != 1)
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("padding,stride,dilation,kernel_groups", GEOMETRY_1D, ids=_ids)
def test_conv1d_geometry(padding, stride, dilation, kernel_groups, dtype, backend, rng):
    kernel, groups, filters = kernel_groups
    x = random_array(rng, (2, 4, 11), dtype)
    weight = random_array(rng, (filters, 4 // groups, kernel), dtype)
    bias = random_array(rng, (filters,), dtype)
    _check(1, x, weight, bias, backend=backend, stride=stride, padding=padding,
           dilation=dilation, groups=groups)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("padding", [2, "same", "full", ((3, 1),), "valid"], ids=_ids)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv1d_padding_mode(padding_mode, padding, dtype, backend, rng):
    x = random_array(rng, (2, 2, 9), dtype)
    weight = random_array(rng, (3, 2, 4), dtype)
    _check(1, x, weight, backend=backend, padding=padding, padding_mode=padding_mode)
    _check(1, x[1], weight, backend=backend, padding=padding, padding_mode=padding_mode)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv1d_views_and_unbatched(backend, rng):
    base_x = random_array(rng, (4, 6, 20), np.float64)
    base_w = random_array(rng, (4, 6, 5), np.float64)
    _check(1, base_x[::2, ::2, ::-2], base_w[:, ::2, ::-1], backend=backend, padding=1)
    got = _check(1, base_x[0, :3], base_w[:, :3], base_w[0, 0, :4], backend=backend)
    assert got.shape == (4, 16)


# --------------------------------------------------------------------------------------
# conv3d


GEOMETRY_3D = [
    (padding, stride, dilation)
    for padding, stride, dilation in itertools.product(
        [0, 1, (1, 0, 2), "same", "full", ((1, 0), (0, 1), (2, 1))], [1, (1, 2, 1), 2],
        [1, (1, 1, 2)])
    if not (padding == "same" and stride != 1)
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("padding,stride,dilation", GEOMETRY_3D, ids=_ids)
def test_conv3d_geometry(padding, stride, dilation, dtype, backend, rng):
    x = random_array(rng, (1, 2, 4, 5, 5), dtype)
    weight = random_array(rng, (3, 2, 2, 3, 2), dtype)
    bias = random_array(rng, (3,), dtype)
    _check(3, x, weight, bias, backend=backend, stride=stride, padding=padding,
           dilation=dilation)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("padding", [1, "same", ((0, 1), (1, 1), (2, 0))], ids=_ids)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv3d_padding_mode(padding_mode, padding, backend, rng):
    x = random_array(rng, (1, 2, 4, 4, 5), np.float64)
    weight = random_array(rng, (2, 1, 2, 3, 3), np.float64)
    _check(3, x, weight, backend=backend, padding=padding, padding_mode=padding_mode, groups=2)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_conv3d_unbatched_and_views(backend, rng):
    base = random_array(rng, (4, 8, 6, 10), np.float32)
    weight = random_array(rng, (3, 2, 2, 2, 3), np.float32)
    got = _check(3, base[::2, ::2, :, ::-2], weight, random_array(rng, (3,), np.float32),
                 backend=backend, padding=(0, 1, 1))
    assert got.ndim == 4


# --------------------------------------------------------------------------------------
# medium sizes: enough output positions for the compiled kernels' tiles, panels and
# several tasks per thread (the tiny grids above never leave their edge cases)


# (x shape, weight shape, kwargs): chosen to reach each algorithm of the numba backend
# (see fastcorr._tuning.choose_conv_algorithm): 'direct' (<= 2 filters per group),
# 'implicit_gemm' (stride 1, more filters), 'gemm' (strided, 1x1), with remainders
MEDIUM_2D = [
    pytest.param((2, 3, 40, 33), (2, 3, 3, 3), dict(padding=1), id="direct"),
    pytest.param((2, 3, 40, 33), (5, 3, 3, 3), dict(padding=1), id="implicit-gemm"),
    pytest.param((1, 4, 37, 45), (6, 2, 3, 4), dict(padding="same", groups=2, dilation=2),
                 id="implicit-gemm-groups-dilation"),
    pytest.param((2, 3, 40, 33), (7, 3, 5, 3), dict(stride=2, padding=(2, 1)), id="gemm-stride"),
    pytest.param((2, 6, 30, 29), (9, 6, 1, 1), {}, id="gemm-1x1"),
    pytest.param((1, 8, 25, 31), (8, 1, 3, 3), dict(groups=8, padding=1), id="depthwise"),
    pytest.param((1, 3, 64, 70), (4, 3, 3, 3), dict(stride=(1, 3), padding="full"),
                 id="gemm-full"),
    pytest.param((3, 2, 20, 130), (5, 2, 2, 7), dict(padding=((0, 1), (3, 3)),
                                                     padding_mode="circular"), id="wide-rows"),
]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("x_shape,w_shape,kwargs", MEDIUM_2D)
def test_conv2d_medium(x_shape, w_shape, kwargs, dtype, backend, rng):
    x = random_array(rng, x_shape, dtype)
    weight = random_array(rng, w_shape, dtype)
    bias = random_array(rng, (w_shape[0],), dtype)
    _check(2, x, weight, bias, backend=backend, **kwargs)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_conv1d_conv3d_medium(dtype, backend, rng):
    x = random_array(rng, (2, 3, 700), dtype)
    _check(1, x, random_array(rng, (5, 3, 9), dtype), backend=backend, padding=4)
    _check(1, x, random_array(rng, (6, 3, 4), dtype), backend=backend, stride=3, dilation=2)
    x3 = random_array(rng, (1, 2, 9, 17, 19), dtype)
    _check(3, x3, random_array(rng, (5, 2, 3, 3, 3), dtype), backend=backend, padding=1)
    _check(3, x3, random_array(rng, (2, 2, 2, 3, 3), dtype), backend=backend, stride=(1, 2, 2))
