"""Normalisation against torch on every backend that has it: moments, the four norms, gradients.

Grids: shapes (2-D to 5-D, batch of one, odd and even sizes), affine parameters (none,
weight, bias, both), training / running statistics (updated in place as torch does,
unbiased), momentum, eps, dtypes (float32 / float64 natively, integers to float64) and
non-contiguous views.  Gradients against torch autograd in float64 and finite
differences of the naive backend.  References are torch in float64.
"""

from __future__ import annotations

import importlib
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    CPU_BACKENDS,
    assert_close,
    expected_net_dtype,
    message_names,
    random_array,
    rtol_for,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastcorr


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """torch's references are tiny: its thread pool only costs time (a lot on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Backends with normalisation kernels ('scipy' has none), plus 'auto'.
NORM_BACKENDS = [b for b in CPU_BACKENDS if b != "scipy"] + ["auto"]
FLOATS = [np.float32, np.float64]
# (weight, bias) present?
AFFINE = [(False, False), (True, False), (False, True), (True, True)]


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _t(x, grad=False):
    if x is None:
        return None
    tensor = torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: torch may update it
    return tensor.requires_grad_(True) if grad else tensor


def _np(tensor):
    return None if tensor is None else tensor.detach().numpy()


def _affine(rng, shape, dtype, with_weight, with_bias):
    weight = ((1.0 + 0.5 * random_array(rng, shape, np.float64)).astype(dtype)
              if with_weight else None)
    bias = random_array(rng, shape, dtype) if with_bias else None
    return weight, bias


def _stat_terms(x, channel_axis_count=1):
    """Summands behind one normalised value: the slice size (statistics accumulate over it)."""
    return max(1, x.size // channel_axis_count)


def _views(base):
    """Non-contiguous views of a (N, C, H, W) base: transposed, sliced, negative strides."""
    return {
        "transposed": base.transpose(1, 0, 3, 2),
        "sliced": base[:, 1:, ::2, 1:],
        "reversed": base[::-1, :, ::-1, :],
        "fortran": np.asfortranarray(base),
    }


VIEW_NAMES = list(_views(np.zeros((1, 1, 1, 1))))


# --------------------------------------------------------------------------------------
# moments

MOMENT_CASES = [((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), -1), ((3, 4, 5), (0, 2)),
                ((3, 4, 5), (0, 1, 2)), ((3, 4, 5), (-1, -3)), ((2, 3, 2, 4), (1, 3)),
                ((7,), 0), ((2, 3, 2, 4), (0, 2, 3))]


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int64], ids=_ids)
@pytest.mark.parametrize("shape,axis", MOMENT_CASES, ids=_ids)
def test_moments(shape, axis, dtype, backend, rng):
    x = random_array(rng, shape, dtype)
    wide = x.astype(np.float64)
    expected_dtype = expected_net_dtype(x)
    for ddof in (0, 1):
        mean, var = fastcorr.moments(x, axis, ddof, backend=backend)
        context = f"moments {shape} axis={axis} ddof={ddof}"
        terms = wide.size // np.mean(wide, axis=axis).size
        assert_close(mean, np.mean(wide, axis=axis), dtype=expected_dtype, terms=terms,
                     context=context)
        assert_close(var, np.var(wide, axis=axis, ddof=ddof), dtype=expected_dtype, terms=terms,
                     context=context)


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("ddof", [3, 4])
def test_moments_ddof_at_least_count_as_numpy(ddof, backend):
    """No degrees of freedom left: numpy (and torch) divide by zero, giving inf where the
    squared deviations sum to more than 0 and NaN where they sum to 0."""
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.var(x, axis=1, ddof=ddof)
    mean, var = fastcorr.moments(x, 1, ddof, backend=backend)
    assert_close(mean, x.mean(axis=1))
    assert_close(var, expected, context=f"moments ddof={ddof}")


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_moments_views(view, backend, rng):
    base = random_array(rng, (3, 4, 5, 6), np.float32)
    saved = base.copy()
    x = _views(base)[view]
    wide = x.astype(np.float64)
    for axis in ((0, 2, 3), 1, (2, 3)):
        mean, var = fastcorr.moments(x, axis, backend=backend)
        terms = wide.size // np.mean(wide, axis=axis).size
        assert_close(mean, wide.mean(axis=axis), dtype=np.float32, terms=terms)
        assert_close(var, wide.var(axis=axis), dtype=np.float32, terms=terms)
    np.testing.assert_array_equal(base, saved)


@pytest.mark.parametrize("backend", NORM_BACKENDS)
def test_moments_float32_stability(backend):
    """SPEC: float32 with mean 1e4 and standard deviation 1e-2 keeps its variance (1e-3 rel)."""
    rng = np.random.default_rng(7)
    x = (1e4 + 1e-2 * rng.standard_normal((4, 5000))).astype(np.float32)
    wide = x.astype(np.float64)           # the float32 values themselves, exactly
    for axis in (1, (0, 1)):
        mean, var = fastcorr.moments(x, axis, backend=backend)
        assert mean.dtype == np.float32 and var.dtype == np.float32
        reference = wide.var(axis=axis)
        assert np.all(np.abs(var / reference - 1) < 1e-3), (axis, var, reference)
        assert np.all(np.abs(mean / wide.mean(axis=axis) - 1) < 1e-6)


# --------------------------------------------------------------------------------------
# batch_norm

BATCH_SHAPES = [(5, 3), (2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 2), (1, 3, 3, 4)]


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=_ids)
def test_batch_norm(shape, training, backend, rng):
    """Every affine combination, momentum and eps; running stats updated in place like torch."""
    x = random_array(rng, shape, np.float64) * 2 + 0.5
    channels = shape[1]
    for (with_weight, with_bias), momentum, eps in itertools.product(AFFINE, [0.1, 0.7],
                                                                      [1e-5, 0.3]):
        weight, bias = _affine(rng, (channels,), np.float64, with_weight, with_bias)
        running_mean = random_array(rng, (channels,), np.float64)
        running_var = 1.0 + random_array(rng, (channels,), np.float64) ** 2
        mean_t, var_t = _t(running_mean), _t(running_var)
        got = fastcorr.batch_norm(x, running_mean, running_var, weight, bias, training,
                                  momentum, eps, backend=backend)
        ref = F.batch_norm(_t(x), mean_t, var_t, _t(weight), _t(bias), training, momentum,
                           eps).numpy()
        context = f"batch_norm {shape} training={training} w={with_weight} b={with_bias} " \
                  f"momentum={momentum} eps={eps}"
        terms = _stat_terms(x, channels)
        assert_close(got, ref, terms=terms, context=context)
        assert_close(running_mean, mean_t.numpy(), terms=terms, context=context + " running_mean")
        assert_close(running_var, var_t.numpy(), terms=terms, context=context + " running_var")


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES[:3], ids=_ids)
def test_batch_norm_training_without_running_stats(shape, backend, rng):
    x = random_array(rng, shape, np.float64)
    weight, bias = _affine(rng, (shape[1],), np.float64, True, True)
    got = fastcorr.batch_norm(x, weight=weight, bias=bias, training=True, backend=backend)
    ref = F.batch_norm(_t(x), None, None, _t(weight), _t(bias), True).numpy()
    assert_close(got, ref, terms=_stat_terms(x, shape[1]))


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int32], ids=_ids)
def test_batch_norm_dtypes(dtype, backend, rng):
    """float32 stays float32 (running stats too); integer input computes in float64."""
    x = random_array(rng, (2, 3, 4, 5), dtype)
    out_dtype = expected_net_dtype(x)
    weight, bias = _affine(rng, (3,), out_dtype, True, True)
    running_mean = np.zeros(3, out_dtype)
    running_var = np.ones(3, out_dtype)
    mean_t, var_t = _t(running_mean), _t(running_var)
    got = fastcorr.batch_norm(x, running_mean, running_var, weight, bias, True, backend=backend)
    ref = F.batch_norm(_t(x), mean_t, var_t, _t(weight), _t(bias), True).numpy()
    assert_close(got, ref, dtype=out_dtype, terms=40)
    assert_close(running_mean, mean_t.numpy(), dtype=out_dtype, terms=40)
    assert_close(running_var, var_t.numpy(), dtype=out_dtype, terms=40)


# --------------------------------------------------------------------------------------
# layer_norm

LAYER_CASES = [((2, 3, 4, 5), (5,)), ((2, 3, 4, 5), (4, 5)), ((2, 3, 4, 5), (3, 4, 5)),
               ((3, 6), 6), ((5,), (5,)), ((3, 4), (3, 4)), ((1, 2, 3), [2, 3])]


def _trailing(normalized_shape):
    return (tuple(normalized_shape) if isinstance(normalized_shape, tuple | list)
            else (normalized_shape,))


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape,normalized_shape", LAYER_CASES, ids=_ids)
def test_layer_norm(shape, normalized_shape, dtype, backend, rng):
    x = (random_array(rng, shape, np.float64) * 3 - 1).astype(dtype)
    trailing = _trailing(normalized_shape)
    for (with_weight, with_bias), eps in itertools.product(AFFINE, [1e-5, 0.0]):
        weight, bias = _affine(rng, trailing, dtype, with_weight, with_bias)
        got = fastcorr.layer_norm(x, normalized_shape, weight, bias, eps, backend=backend)
        ref = F.layer_norm(_t(x), trailing, _t(weight), _t(bias), eps).numpy()
        assert_close(got, ref, dtype=dtype, terms=math.prod(trailing),
                     context=f"layer_norm {shape} {normalized_shape} w={with_weight} "
                             f"b={with_bias} eps={eps}")


# --------------------------------------------------------------------------------------
# instance_norm

INSTANCE_SHAPES = [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2), (1, 3, 3, 4)]


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("use_input_stats", [True, False])
@pytest.mark.parametrize("shape", INSTANCE_SHAPES, ids=_ids)
def test_instance_norm(shape, use_input_stats, backend, rng):
    x = random_array(rng, shape, np.float64) * 2 + 0.3
    channels = shape[1]
    for (with_weight, with_bias), with_running, momentum in itertools.product(
            AFFINE, [True, False], [0.1, 0.6]):
        if not use_input_stats and not with_running:
            continue  # needs running statistics (tested among the errors)
        weight, bias = _affine(rng, (channels,), np.float64, with_weight, with_bias)
        running_mean = random_array(rng, (channels,), np.float64) if with_running else None
        running_var = (1.0 + random_array(rng, (channels,), np.float64) ** 2
                       if with_running else None)
        mean_t, var_t = _t(running_mean), _t(running_var)
        got = fastcorr.instance_norm(x, running_mean, running_var, weight, bias,
                                     use_input_stats, momentum, 1e-5, backend=backend)
        ref = F.instance_norm(_t(x), mean_t, var_t, _t(weight), _t(bias), use_input_stats,
                              momentum, 1e-5).numpy()
        context = f"instance_norm {shape} stats={use_input_stats} w={with_weight} " \
                  f"b={with_bias} running={with_running} momentum={momentum}"
        terms = math.prod(shape[2:])
        assert_close(got, ref, terms=terms, context=context)
        if with_running:
            assert_close(running_mean, mean_t.numpy(), terms=terms, context=context + " mean")
            assert_close(running_var, var_t.numpy(), terms=terms, context=context + " var")


# --------------------------------------------------------------------------------------
# group_norm

GROUP_CASES = [((2, 4, 3, 5), 1), ((2, 4, 3, 5), 2), ((2, 4, 3, 5), 4), ((3, 6, 7), 3),
               ((1, 6, 2, 2, 2), 2), ((4, 2), 1), ((4, 2), 2)]
# ((4, 2), 2) has one element per group: variance 0, output exactly bias.  In float32 the
# result then carries x's own rounding times rstd (~316 with eps=1e-5): a conditioning
# matter, not accuracy, so that case runs in float64 only.
GROUP_DTYPE_CASES = [(shape, groups, dtype) for (shape, groups), dtype
                     in itertools.product(GROUP_CASES, FLOATS)
                     if not (dtype == np.float32 and shape[1] == groups and len(shape) == 2)]


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("shape,num_groups,dtype", GROUP_DTYPE_CASES, ids=_ids)
def test_group_norm(shape, num_groups, dtype, backend, rng):
    x = (random_array(rng, shape, np.float64) * 2 - 0.7).astype(dtype)
    for (with_weight, with_bias), eps in itertools.product(AFFINE, [1e-5, 0.2]):
        weight, bias = _affine(rng, (shape[1],), dtype, with_weight, with_bias)
        got = fastcorr.group_norm(x, num_groups, weight, bias, eps, backend=backend)
        ref = F.group_norm(_t(x), num_groups, _t(weight), _t(bias), eps).numpy()
        assert_close(got, ref, dtype=dtype, terms=x[0].size // num_groups,
                     context=f"group_norm {shape} groups={num_groups} w={with_weight} "
                             f"b={with_bias} eps={eps}")


# --------------------------------------------------------------------------------------
# views and dtypes for all four norms


def _all_norms(x, weight, bias, backend):
    """(name, fastcorr result, torch reference) of each norm on x (N, C, H, W)."""
    channels = x.shape[1]
    trailing = x.shape[1:]
    layer_weight = None if weight is None else np.resize(weight, trailing)
    return [
        ("batch", fastcorr.batch_norm(x, None, None, weight, bias, True, backend=backend),
         F.batch_norm(_t(x), None, None, _t(weight), _t(bias), True).numpy()),
        ("instance", fastcorr.instance_norm(x, None, None, weight, bias, backend=backend),
         F.instance_norm(_t(x), None, None, _t(weight), _t(bias)).numpy()),
        ("group", fastcorr.group_norm(x, channels // 2 if channels % 2 == 0 else 1, weight, bias,
                                      backend=backend),
         F.group_norm(_t(x), channels // 2 if channels % 2 == 0 else 1, _t(weight),
                      _t(bias)).numpy()),
        ("layer", fastcorr.layer_norm(x, trailing, layer_weight, None, backend=backend),
         F.layer_norm(_t(x), trailing, _t(layer_weight)).numpy()),
    ]


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("view", VIEW_NAMES)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_norms_views(view, dtype, backend, rng):
    base = random_array(rng, (3, 4, 5, 6), dtype)
    x = _views(base)[view]
    saved = base.copy()
    weight, bias = _affine(rng, (x.shape[1],), dtype, True, True)
    for name, got, ref in _all_norms(x, weight, bias, backend):
        assert_close(got, ref, dtype=dtype, terms=x.size // x.shape[0], context=f"{name} {view}")
    np.testing.assert_array_equal(base, saved)


# --------------------------------------------------------------------------------------
# NaN, Inf and constant slices


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
def test_constant_slices_normalise_to_zero(dtype, backend, rng):
    """A constant slice has variance 0: with eps > 0 its output is bias (0), never NaN."""
    x = random_array(rng, (2, 4, 3, 3), dtype)
    x[0] = -1.25                   # layer norm: sample 0 constant; instance/group too
    x[:, 1] = -1.25                # batch norm: channel 1 constant over the batch
    for name, got, ref in _all_norms(x, None, None, backend):
        assert not np.isnan(got).any(), name
        assert_close(got, ref, dtype=dtype, terms=x.size // x.shape[0], context=name)
    got = fastcorr.batch_norm(x, training=True, backend=backend)
    assert np.all(got[:, 1] == 0)
    got = fastcorr.layer_norm(x, x.shape[1:], backend=backend)
    assert np.all(got[0] == 0)
    got = fastcorr.instance_norm(x, backend=backend)
    assert np.all(got[0] == 0)
    got = fastcorr.group_norm(x, 2, backend=backend)
    assert np.all(got[0] == 0)


@pytest.mark.parametrize("backend", NORM_BACKENDS)
def test_constant_slices_gradients_finite(backend, rng):
    x = random_array(rng, (2, 4, 3, 3), np.float64)
    x[:, 1] = 2.5
    x[0] = -1.25
    grad_output = random_array(rng, x.shape, np.float64)
    weight, bias = _affine(rng, (4,), np.float64, True, True)
    results = [
        fastcorr.batch_norm_backward(grad_output, x, None, None, weight, bias, True,
                                     backend=backend),
        fastcorr.instance_norm_backward(grad_output, x, None, None, weight, bias,
                                        backend=backend),
        fastcorr.group_norm_backward(grad_output, x, 2, weight, bias, backend=backend),
        fastcorr.layer_norm_backward(grad_output, x, x.shape[1:], None, None, backend=backend),
    ]
    for grads in results:
        for g in grads:
            assert g is None or np.isfinite(g).all()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf, as intended
@pytest.mark.parametrize("backend", NORM_BACKENDS)
def test_nan_and_inf_propagate_as_torch(backend, rng):
    x = random_array(rng, (3, 4, 3, 3), np.float64)
    x[1, 1, 0, 0] = np.nan
    x[2, 3, 1, 1] = np.inf
    weight, bias = _affine(rng, (4,), np.float64, True, True)
    for name, got, ref in _all_norms(x, weight, bias, backend):
        assert_close(got, ref, terms=x.size // x.shape[0], context=name)
    got_mean, got_var = fastcorr.moments(x, (0, 2, 3), backend=backend)
    assert np.isnan(got_mean[1]) and np.isnan(got_var[1])
    assert np.isinf(got_mean[3]) and np.isnan(got_var[3])
    assert np.isfinite(got_mean[[0, 2]]).all() and np.isfinite(got_var[[0, 2]]).all()


# --------------------------------------------------------------------------------------
# gradients against torch autograd (float64)


def _torch_grads(forward, x, grad_output, weight, bias):
    xt, wt, bt = _t(x, True), _t(weight, True), _t(bias, True)
    # torch 2.13's group_norm backward fails ("tensor does not have a device") with a bias
    # but no weight: a constant weight of ones is the same function
    forward(xt, torch.ones_like(bt) if wt is None and bt is not None else wt,
            bt).backward(_t(grad_output))
    return (xt.grad.numpy(), None if wt is None else wt.grad.numpy(),
            None if bt is None else bt.grad.numpy())


def _check_grads(got, ref, terms, context, dtype=np.float64, rtol=None):
    assert len(got) == 3, context
    for name, g, r in zip(("grad_input", "grad_weight", "grad_bias"), got, ref):
        if r is None:
            assert g is None, f"{context}: {name} must be None"
        else:
            assert_close(g, r, dtype=dtype, terms=terms, rtol=rtol, context=f"{context} {name}")


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=_ids)
def test_batch_norm_backward(shape, training, backend, rng):
    x = random_array(rng, shape, np.float64) * 2 + 0.5
    grad_output = random_array(rng, shape, np.float64)
    channels = shape[1]
    for (with_weight, with_bias), eps in itertools.product(AFFINE, [1e-5, 0.3]):
        weight, bias = _affine(rng, (channels,), np.float64, with_weight, with_bias)
        running_mean = random_array(rng, (channels,), np.float64)
        running_var = 1.0 + random_array(rng, (channels,), np.float64) ** 2
        saved = running_mean.copy(), running_var.copy()
        got = fastcorr.batch_norm_backward(grad_output, x, running_mean, running_var, weight,
                                           bias, training, 0.1, eps, backend=backend)
        ref = _torch_grads(lambda xt, wt, bt, rm=running_mean, rv=running_var, eps=eps:
                           F.batch_norm(xt, _t(rm), _t(rv), wt, bt, training, 0.1, eps),
            x, grad_output, weight, bias)
        _check_grads(got, ref, _stat_terms(x, channels),
                     f"batch_norm_backward {shape} training={training} w={with_weight} "
                     f"b={with_bias} eps={eps}")
        # the backward pass leaves the running statistics alone
        np.testing.assert_array_equal(running_mean, saved[0])
        np.testing.assert_array_equal(running_var, saved[1])


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("shape,normalized_shape", LAYER_CASES, ids=_ids)
def test_layer_norm_backward(shape, normalized_shape, backend, rng):
    x = random_array(rng, shape, np.float64) * 3 - 1
    grad_output = random_array(rng, shape, np.float64)
    trailing = _trailing(normalized_shape)
    for (with_weight, with_bias), eps in itertools.product(AFFINE, [1e-5, 0.2]):
        weight, bias = _affine(rng, trailing, np.float64, with_weight, with_bias)
        got = fastcorr.layer_norm_backward(grad_output, x, normalized_shape, weight, bias, eps,
                                           backend=backend)
        ref = _torch_grads(lambda xt, wt, bt, eps=eps: F.layer_norm(xt, trailing, wt, bt, eps),
                           x, grad_output, weight, bias)
        _check_grads(got, ref, max(math.prod(trailing), x.size // math.prod(trailing)),
                     f"layer_norm_backward {shape} {normalized_shape} w={with_weight} "
                     f"b={with_bias} eps={eps}")


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("use_input_stats", [True, False])
@pytest.mark.parametrize("shape", INSTANCE_SHAPES, ids=_ids)
def test_instance_norm_backward(shape, use_input_stats, backend, rng):
    x = random_array(rng, shape, np.float64) * 2 + 0.3
    grad_output = random_array(rng, shape, np.float64)
    channels = shape[1]
    for (with_weight, with_bias), with_running in itertools.product(AFFINE, [True, False]):
        if not use_input_stats and not with_running:
            continue
        weight, bias = _affine(rng, (channels,), np.float64, with_weight, with_bias)
        running_mean = random_array(rng, (channels,), np.float64) if with_running else None
        running_var = (1.0 + random_array(rng, (channels,), np.float64) ** 2
                       if with_running else None)
        saved = None if running_mean is None else (running_mean.copy(), running_var.copy())
        got = fastcorr.instance_norm_backward(grad_output, x, running_mean, running_var, weight,
                                              bias, use_input_stats, 0.1, 1e-5, backend=backend)
        ref = _torch_grads(lambda xt, wt, bt, rm=running_mean, rv=running_var: F.instance_norm(
            xt, _t(rm), _t(rv), wt, bt, use_input_stats, 0.1, 1e-5),
            x, grad_output, weight, bias)
        _check_grads(got, ref, x.size // channels,
                     f"instance_norm_backward {shape} stats={use_input_stats} "
                     f"w={with_weight} b={with_bias} running={with_running}")
        if saved is not None:
            np.testing.assert_array_equal(running_mean, saved[0])
            np.testing.assert_array_equal(running_var, saved[1])


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("shape,num_groups", GROUP_CASES, ids=_ids)
def test_group_norm_backward(shape, num_groups, backend, rng):
    x = random_array(rng, shape, np.float64) * 2 - 0.7
    grad_output = random_array(rng, shape, np.float64)
    for (with_weight, with_bias), eps in itertools.product(AFFINE, [1e-5, 0.2]):
        weight, bias = _affine(rng, (shape[1],), np.float64, with_weight, with_bias)
        got = fastcorr.group_norm_backward(grad_output, x, num_groups, weight, bias, eps,
                                           backend=backend)
        ref = _torch_grads(lambda xt, wt, bt, eps=eps: F.group_norm(xt, num_groups, wt, bt, eps),
                           x, grad_output, weight, bias)
        _check_grads(got, ref, x.size // shape[1],
                     f"group_norm_backward {shape} groups={num_groups} w={with_weight} "
                     f"b={with_bias} eps={eps}")


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_norm_backward_float32_views(view, backend, rng):
    """float32 (non-contiguous) in, float32 gradients out, close to torch's float64 ones."""
    base = random_array(rng, (3, 4, 5, 6), np.float32)
    x = _views(base)[view]
    grad_base = random_array(rng, x.shape[::-1], np.float32)
    grad_output = grad_base.transpose(3, 2, 1, 0)[..., ::-1]     # a non-contiguous view too
    saved = base.copy(), grad_base.copy()
    weight, bias = _affine(rng, (x.shape[1],), np.float32, True, True)
    groups = next(g for g in (2, 3, 1) if x.shape[1] % g == 0)
    terms = x.size // x.shape[1]
    cases = [
        ("batch", fastcorr.batch_norm_backward(grad_output, x, None, None, weight, bias, True,
                                               backend=backend),
         lambda xt, wt, bt: F.batch_norm(xt, None, None, wt, bt, True)),
        ("instance", fastcorr.instance_norm_backward(grad_output, x, None, None, weight, bias,
                                                     backend=backend),
         lambda xt, wt, bt: F.instance_norm(xt, None, None, wt, bt)),
        ("group", fastcorr.group_norm_backward(grad_output, x, groups, weight, bias,
                                               backend=backend),
         lambda xt, wt, bt: F.group_norm(xt, groups, wt, bt)),
    ]
    for name, got, forward in cases:
        ref = _torch_grads(forward, x, grad_output, weight, bias)
        _check_grads(got, ref, terms, f"{name}_norm_backward float32 {view}", np.float32)
    got = fastcorr.layer_norm_backward(grad_output, x, x.shape[2:], None, None,
                                       backend=backend)
    ref = _torch_grads(lambda xt, wt, bt: F.layer_norm(xt, x.shape[2:]), x, grad_output,
                       None, None)
    _check_grads(got, ref, terms, f"layer_norm_backward float32 {view}", np.float32)
    np.testing.assert_array_equal(base, saved[0])
    np.testing.assert_array_equal(grad_base, saved[1])


# --------------------------------------------------------------------------------------
# finite differences of the naive backend (float64, central differences)


def _numeric_gradient(f, arrays, which, grad_output, h=1e-6):
    """d sum(grad_output * f(*arrays)) / d arrays[which], by central differences."""
    target = arrays[which]
    grad = np.zeros_like(target)
    for index in np.ndindex(target.shape):
        values = []
        for step in (h, -h):
            shifted = [a.copy() if a is not None else None for a in arrays]
            shifted[which][index] += step
            values.append(np.sum(grad_output * f(*shifted)))
        grad[index] = (values[0] - values[1]) / (2 * h)
    return grad


FD_CASES = {
    "batch-training": (
        lambda x, w, b: fastcorr.batch_norm(x, None, None, w, b, True, 0.1, 1e-3,
                                            backend="naive"),
        lambda g, x, w, b: fastcorr.batch_norm_backward(g, x, None, None, w, b, True, 0.1, 1e-3,
                                                        backend="naive"),
        (3, 2, 2, 2), (2,)),
    "batch-eval": (
        lambda x, w, b: fastcorr.batch_norm(x, np.array([0.2, -0.1]), np.array([0.5, 2.0]), w, b,
                                            False, backend="naive"),
        lambda g, x, w, b: fastcorr.batch_norm_backward(g, x, np.array([0.2, -0.1]),
                                                        np.array([0.5, 2.0]), w, b, False,
                                                        backend="naive"),
        (2, 2, 3), (2,)),
    "layer": (
        lambda x, w, b: fastcorr.layer_norm(x, (2, 3), w, b, 1e-3, backend="naive"),
        lambda g, x, w, b: fastcorr.layer_norm_backward(g, x, (2, 3), w, b, 1e-3,
                                                        backend="naive"),
        (2, 2, 3), (2, 3)),
    "instance": (
        lambda x, w, b: fastcorr.instance_norm(x, None, None, w, b, eps=1e-3, backend="naive"),
        lambda g, x, w, b: fastcorr.instance_norm_backward(g, x, None, None, w, b, eps=1e-3,
                                                           backend="naive"),
        (2, 2, 2, 2), (2,)),
    "group": (
        lambda x, w, b: fastcorr.group_norm(x, 2, w, b, 1e-3, backend="naive"),
        lambda g, x, w, b: fastcorr.group_norm_backward(g, x, 2, w, b, 1e-3, backend="naive"),
        (2, 4, 3), (4,)),
}


@pytest.mark.parametrize("case", list(FD_CASES))
def test_naive_backward_finite_differences(case, rng):
    forward, backward, x_shape, param_shape = FD_CASES[case]
    x = random_array(rng, x_shape, np.float64)
    weight = 1.0 + 0.5 * random_array(rng, param_shape, np.float64)
    bias = random_array(rng, param_shape, np.float64)
    grad_output = random_array(rng, x_shape, np.float64)
    got = backward(grad_output, x, weight, bias)
    arrays = [x, weight, bias]
    for which, name in enumerate(("grad_input", "grad_weight", "grad_bias")):
        numeric = _numeric_gradient(forward, arrays, which, grad_output)
        assert_close(got[which], numeric, rtol=1e-6, context=f"{case} {name}")


# --------------------------------------------------------------------------------------
# hypothesis: group_norm on small random shapes, every backend against naive and torch


@st.composite
def group_problems(draw):
    batch = draw(st.integers(1, 2))
    num_groups = draw(st.integers(1, 3))
    channels = num_groups * draw(st.integers(1, 2))
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    # torch refuses a single value per group; fastcorr's answer (bias) is tested elsewhere
    assume(channels // num_groups * math.prod(spatial) > 1)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    affine = draw(st.sampled_from(AFFINE))
    eps = draw(st.sampled_from([1e-5, 1e-2]))
    rng = np.random.default_rng(seed)
    x = (rng.normal(draw(st.sampled_from([0.0, 3.0])), 1.0, (batch, channels) + spatial)
         .astype(dtype))
    weight, bias = _affine(rng, (channels,), dtype, *affine)
    grad_output = rng.uniform(-1, 1, x.shape).astype(dtype)
    return x, num_groups, weight, bias, eps, grad_output


def _conditioned_rtol(x, num_groups, eps, weight, ref, grad_output=None):
    """The dtype's rtol, widened by the conditioning of (x - mean) * rstd where it exceeds 1.

    Rounding x itself (relative eps) moves the output by |x| * rstd * |weight| * eps and
    the input gradient by |x| * rstd^2 * |weight| * |grad_output| * eps: for a slice of
    nearly equal values far from 0 that dwarfs the result, whatever the algorithm.
    """
    wide = x.astype(np.float64).reshape(x.shape[0], num_groups, -1)
    rstd = float((1.0 / np.sqrt(wide.var(axis=2) + eps)).max())
    gain = float(np.abs(x).max()) * rstd * (1.0 if weight is None
                                            else float(np.abs(weight).max()))
    if grad_output is not None:
        gain *= rstd * float(np.abs(grad_output).max())
    scale = max(1.0, float(np.abs(ref).max()))
    return rtol_for(x.dtype, x.size // num_groups) * max(1.0, gain / scale)


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(problem=group_problems())
def test_hypothesis_group_norm(backend, problem):
    x, num_groups, weight, bias, eps, grad_output = problem
    terms = x.size // num_groups
    context = f"group_norm {x.shape} {x.dtype} groups={num_groups} eps={eps}"
    ref = F.group_norm(_t(x), num_groups, _t(weight), _t(bias), eps).numpy()
    ref_grads = _torch_grads(lambda xt, wt, bt: F.group_norm(xt, num_groups, wt, bt, eps),
                             x, grad_output, weight, bias)
    naive = fastcorr.group_norm(x, num_groups, weight, bias, eps, backend="naive")
    naive_grads = fastcorr.group_norm_backward(grad_output, x, num_groups, weight, bias, eps,
                                               backend="naive")
    rtol = _conditioned_rtol(x, num_groups, eps, weight, ref)
    got = fastcorr.group_norm(x, num_groups, weight, bias, eps, backend=backend)
    assert_close(got, ref, dtype=x.dtype, rtol=rtol, context=f"{context} {backend}")
    assert_close(got, naive, rtol=rtol, context=f"{context} {backend} vs naive")
    grads = fastcorr.group_norm_backward(grad_output, x, num_groups, weight, bias, eps,
                                         backend=backend)
    grad_rtol = _conditioned_rtol(x, num_groups, eps, weight, ref_grads[0], grad_output)
    _check_grads(grads, ref_grads, terms, f"{context} {backend}", x.dtype, grad_rtol)
    _check_grads(grads, naive_grads, terms, f"{context} {backend} vs naive", x.dtype, grad_rtol)


# --------------------------------------------------------------------------------------
# errors: ValueError / TypeError naming the function and the parameter

X = np.ones((2, 3, 4, 4))
C3 = np.ones(3)


def _rm():
    return np.zeros(3)


ERROR_CASES = {
    "group-not-dividing": (lambda b: fastcorr.group_norm(X, 2, backend=b), ValueError,
                           ["group_norm", "num_groups"]),
    "group-zero": (lambda b: fastcorr.group_norm(X, 0, backend=b), ValueError,
                   ["group_norm", "num_groups"]),
    "group-float": (lambda b: fastcorr.group_norm(X, 1.0, backend=b), TypeError,
                    ["group_norm", "num_groups"]),
    "group-backward-not-dividing": (
        lambda b: fastcorr.group_norm_backward(X, X, 4, backend=b), ValueError,
        ["group_norm_backward", "num_groups"]),
    "group-weight-length": (lambda b: fastcorr.group_norm(X, 3, np.ones(4), backend=b),
                            ValueError, ["group_norm", "weight"]),
    "group-x-1d": (lambda b: fastcorr.group_norm(C3, 1, backend=b), ValueError,
                   ["group_norm", "x"]),
    "layer-shape-mismatch": (lambda b: fastcorr.layer_norm(X, (3, 4), backend=b), ValueError,
                             ["layer_norm", "normalized_shape"]),
    "layer-shape-int-mismatch": (lambda b: fastcorr.layer_norm(X, 3, backend=b), ValueError,
                                 ["layer_norm", "normalized_shape"]),
    "layer-shape-too-long": (lambda b: fastcorr.layer_norm(C3, (1, 3), backend=b), ValueError,
                             ["layer_norm", "normalized_shape"]),
    "layer-shape-empty": (lambda b: fastcorr.layer_norm(X, (), backend=b), (TypeError, ValueError),
                          ["layer_norm", "normalized_shape"]),
    "layer-weight-shape": (lambda b: fastcorr.layer_norm(X, (4, 4), np.ones(4), backend=b),
                           ValueError, ["layer_norm", "weight"]),
    "layer-bias-shape": (lambda b: fastcorr.layer_norm(X, 4, None, np.ones(3), backend=b),
                         ValueError, ["layer_norm", "bias"]),
    "layer-backward-shape": (lambda b: fastcorr.layer_norm_backward(X, X, (3,), backend=b),
                             ValueError, ["layer_norm_backward", "normalized_shape"]),
    "batch-running-mean-length": (
        lambda b: fastcorr.batch_norm(X, np.zeros(2), np.ones(3), training=True, backend=b),
        ValueError, ["batch_norm", "running_mean"]),
    "batch-running-var-length": (
        lambda b: fastcorr.batch_norm(X, np.zeros(3), np.ones(4), backend=b),
        ValueError, ["batch_norm", "running_var"]),
    "batch-running-var-list": (
        lambda b: fastcorr.batch_norm(X, np.zeros(3), [1.0, 1.0, 1.0], training=True, backend=b),
        TypeError, ["batch_norm", "running_var"]),
    "batch-running-mean-int": (
        lambda b: fastcorr.batch_norm(X, np.zeros(3, np.int64), np.ones(3), training=True,
                                      backend=b),
        TypeError, ["batch_norm", "running_mean"]),
    "batch-running-only-mean": (
        lambda b: fastcorr.batch_norm(X, np.zeros(3), None, training=True, backend=b),
        ValueError, ["batch_norm", "running_var"]),
    "batch-eval-without-stats": (lambda b: fastcorr.batch_norm(X, backend=b), ValueError,
                                 ["batch_norm", "running_mean"]),
    "batch-weight-length": (
        lambda b: fastcorr.batch_norm(X, weight=np.ones(4), training=True, backend=b),
        ValueError, ["batch_norm", "weight"]),
    "batch-bias-length": (
        lambda b: fastcorr.batch_norm(X, bias=np.ones((3, 1)), training=True, backend=b),
        ValueError, ["batch_norm", "bias"]),
    "batch-one-value-per-channel": (
        lambda b: fastcorr.batch_norm(np.ones((1, 3)), training=True, backend=b),
        ValueError, ["batch_norm", "x"]),
    "batch-x-1d": (lambda b: fastcorr.batch_norm(C3, training=True, backend=b), ValueError,
                   ["batch_norm", "x"]),
    "batch-x-empty": (lambda b: fastcorr.batch_norm(np.ones((0, 3, 2)), training=True, backend=b),
                      ValueError, ["batch_norm", "x"]),
    "batch-eps-negative": (lambda b: fastcorr.batch_norm(X, training=True, eps=-1.0, backend=b),
                           ValueError, ["batch_norm", "eps"]),
    "batch-momentum-none": (
        lambda b: fastcorr.batch_norm(X, _rm(), np.ones(3), training=True, momentum=None,
                                      backend=b),
        TypeError, ["batch_norm", "momentum"]),
    "batch-x-strings": (lambda b: fastcorr.batch_norm(np.full((2, 3), "a"), training=True,
                                                      backend=b),
                        TypeError, ["batch_norm", "x"]),
    "batch-backward-grad-shape": (
        lambda b: fastcorr.batch_norm_backward(X[:1], X, training=True, backend=b),
        ValueError, ["batch_norm_backward", "grad_output"]),
    "batch-backward-running-length": (
        lambda b: fastcorr.batch_norm_backward(X, X, np.zeros(2), np.ones(2), backend=b),
        ValueError, ["batch_norm_backward", "running_mean"]),
    "instance-x-2d": (lambda b: fastcorr.instance_norm(np.ones((2, 3)), backend=b), ValueError,
                      ["instance_norm", "x"]),
    "instance-one-spatial-element": (
        lambda b: fastcorr.instance_norm(np.ones((2, 3, 1)), backend=b),
        ValueError, ["instance_norm", "x"]),
    "instance-running-length": (
        lambda b: fastcorr.instance_norm(X, np.zeros(4), np.ones(4), backend=b),
        ValueError, ["instance_norm", "running_mean"]),
    "instance-running-list": (
        lambda b: fastcorr.instance_norm(X, [0.0, 0.0, 0.0], np.ones(3), backend=b),
        TypeError, ["instance_norm", "running_mean"]),
    "instance-no-stats": (
        lambda b: fastcorr.instance_norm(X, use_input_stats=False, backend=b),
        ValueError, ["instance_norm", "running_mean"]),
    "instance-backward-grad-shape": (
        lambda b: fastcorr.instance_norm_backward(X[..., :2], X, backend=b),
        ValueError, ["instance_norm_backward", "grad_output"]),
    "group-backward-grad-shape": (
        lambda b: fastcorr.group_norm_backward(X.transpose(0, 1, 3, 2)[:, :, :3], X, 1,
                                               backend=b),
        ValueError, ["group_norm_backward", "grad_output"]),
    "layer-backward-grad-shape": (
        lambda b: fastcorr.layer_norm_backward(X[0], X, (4, 4), backend=b),
        ValueError, ["layer_norm_backward", "grad_output"]),
    "moments-axis-out-of-range": (lambda b: fastcorr.moments(X, 4, backend=b), ValueError,
                                  ["moments", "axis"]),
    "moments-axis-repeated": (lambda b: fastcorr.moments(X, (1, 1), backend=b), ValueError,
                              ["moments", "axis"]),
    "moments-axis-repeated-negative": (lambda b: fastcorr.moments(X, (0, -4), backend=b),
                                       ValueError, ["moments", "axis"]),
    "moments-axis-float": (lambda b: fastcorr.moments(X, 1.0, backend=b), TypeError,
                           ["moments", "axis"]),
    "moments-ddof-negative": (lambda b: fastcorr.moments(X, 0, -1, backend=b), ValueError,
                              ["moments", "ddof"]),
    "moments-empty": (lambda b: fastcorr.moments(np.ones((0, 3)), 0, backend=b), ValueError,
                      ["moments", "x"]),
    "moments-complex": (lambda b: fastcorr.moments(X + 1j, 0, backend=b), TypeError,
                        ["moments"]),
}


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_input(case, backend):
    call, exception, words = ERROR_CASES[case]
    with pytest.raises(exception) as excinfo:
        call(backend)
    message_names(excinfo, *words)


NORM_CALLS = {
    "moments": lambda x, g, w, b, rm, rv, be: fastcorr.moments(x, (0, 2), backend=be),
    "batch_norm": lambda x, g, w, b, rm, rv, be: fastcorr.batch_norm(x, rm, rv, w, b, False,
                                                                     backend=be),
    "batch_norm_backward": lambda x, g, w, b, rm, rv, be: fastcorr.batch_norm_backward(
        g, x, rm, rv, w, b, True, backend=be),
    "layer_norm": lambda x, g, w, b, rm, rv, be: fastcorr.layer_norm(
        x, x.shape[-1], np.resize(w, x.shape[-1]), None, backend=be),
    "layer_norm_backward": lambda x, g, w, b, rm, rv, be: fastcorr.layer_norm_backward(
        g, x, x.shape[-1], np.resize(w, x.shape[-1]), None, backend=be),
    "instance_norm": lambda x, g, w, b, rm, rv, be: fastcorr.instance_norm(
        x, rm, rv, w, b, False, backend=be),
    "instance_norm_backward": lambda x, g, w, b, rm, rv, be: fastcorr.instance_norm_backward(
        g, x, rm, rv, w, b, True, backend=be),
    "group_norm": lambda x, g, w, b, rm, rv, be: fastcorr.group_norm(x, 3, w, b, backend=be),
    "group_norm_backward": lambda x, g, w, b, rm, rv, be: fastcorr.group_norm_backward(
        g, x, 1, w, b, backend=be),
}


@pytest.mark.parametrize("backend", NORM_BACKENDS)
@pytest.mark.parametrize("func", list(NORM_CALLS))
def test_inputs_never_modified(func, backend, rng):
    """x, grad_output, weight and bias never change; nor do running stats outside training."""
    for layout in ("contiguous", "view"):
        x = random_array(rng, (2, 3, 4, 5), np.float64)
        if layout == "view":
            x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)[..., ::-1]
        arrays = dict(x=x, g=random_array(rng, x.shape, np.float64),
                      w=random_array(rng, (3,), np.float64), b=random_array(rng, (3,), np.float64),
                      rm=random_array(rng, (3,), np.float64), rv=1 + rng.random(3))
        saved = {k: v.copy() for k, v in arrays.items()}
        NORM_CALLS[func](**arrays, be=backend)
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, saved[name], err_msg=f"{func} changed {name}")


@pytest.mark.parametrize("func", list(NORM_CALLS))
def test_scipy_backend_has_no_normalisation(func, rng):
    x = random_array(rng, (2, 3, 4, 5), np.float64)
    arrays = dict(x=x, g=random_array(rng, x.shape, np.float64), w=np.ones(3), b=np.zeros(3),
                  rm=np.zeros(3), rv=np.ones(3))
    with pytest.raises(NotImplementedError) as excinfo:
        NORM_CALLS[func](**arrays, be="scipy")
    message_names(excinfo, func, "scipy")


# --------------------------------------------------------------------------------------
# the numba backend's fused entry points against the composition they replace

# public call -> the fused numba entry point it must reach; each call returns a tuple of
# arrays (outputs, gradients, updated running statistics).
def _fused_calls(x, dy, weight, bias, layer_weight, layer_bias, backend):
    channels = x.shape[1]
    trailing = x.shape[1:]

    def running():
        return np.zeros(channels), np.ones(channels)

    def with_running(call):
        mean, var = running()
        return (call(mean, var), mean, var)

    return {
        "batch_norm": ("standardize", lambda: with_running(
            lambda m, v: fastcorr.batch_norm(x, m, v, weight, bias, True, 0.3, backend=backend))),
        "instance_norm": ("standardize", lambda: with_running(
            lambda m, v: fastcorr.instance_norm(x, m, v, weight, bias, True, 0.3,
                                                backend=backend))),
        "group_norm 1 channel per group": ("standardize", lambda: (
            fastcorr.group_norm(x, channels, weight, bias, backend=backend),)),
        "group_norm 3 channels per group": ("standardize", lambda: (
            fastcorr.group_norm(x, channels // 3, weight, bias, backend=backend),)),
        "group_norm 1 group": ("standardize", lambda: (
            fastcorr.group_norm(x, 1, weight, bias, backend=backend),)),
        "layer_norm": ("layer_standardize", lambda: (
            fastcorr.layer_norm(x, trailing, layer_weight, layer_bias, backend=backend),)),
        "batch_norm_backward": ("standardize_backward", lambda: fastcorr.batch_norm_backward(
            dy, x, None, None, weight, bias, True, backend=backend)),
        "instance_norm_backward": ("standardize_backward", lambda: (
            fastcorr.instance_norm_backward(dy, x, None, None, weight, bias, backend=backend))),
        "group_norm_backward 3 channels per group": ("standardize_backward", lambda: (
            fastcorr.group_norm_backward(dy, x, channels // 3, weight, bias, backend=backend))),
        "group_norm_backward 1 group": ("standardize_backward", lambda: (
            fastcorr.group_norm_backward(dy, x, 1, weight, bias, backend=backend))),
        "layer_norm_backward": ("layer_standardize_backward", lambda: (
            fastcorr.layer_norm_backward(dy, x, trailing, layer_weight, layer_bias,
                                         backend=backend))),
    }


FUSED_CASES = list(_fused_calls(np.zeros((1, 3, 1, 1)), *[None] * 5, None))


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba is not available")
@pytest.mark.parametrize("backend", ["numba", "auto"])
@pytest.mark.parametrize("affine", AFFINE, ids=_ids)
@pytest.mark.parametrize("layout", ["contiguous", "view"])
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("case", FUSED_CASES)
def test_numba_fused_entries_match_their_fallback(case, dtype, layout, affine, backend, rng,
                                                  monkeypatch, restore_threads):
    """The fused numba kernels are reached and give what the plain kernels composed give.

    The composition is what the front end falls back to where a backend lacks the fused
    entry point or refuses the shape (:class:`fastcorr._dispatch.Unsupported`).
    """
    numba_backend = importlib.import_module("fastcorr.kernels.numba")

    fastcorr.set_num_threads(2)  # few enough threads that the fused kernels accept the shapes
    base = random_array(rng, (5, 6, 5, 7), dtype) + 3.0  # odd rows: layer norm pairs them
    x = base if layout == "contiguous" else np.ascontiguousarray(
        base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)[:, :, ::-1]
    x[1, 2] = -1.25  # a constant (sample, channel) slice: 0, not NaN
    dy = random_array(rng, x.shape, dtype)
    weight, bias = _affine(rng, (x.shape[1],), dtype, *affine)
    layer_weight, layer_bias = _affine(rng, x.shape[1:], dtype, *affine)
    entry, call = _fused_calls(x, dy, weight, bias, layer_weight, layer_bias, backend)[case]

    fused_entry = getattr(numba_backend, entry)
    reached = []
    monkeypatch.setattr(numba_backend, entry, lambda *args: reached.append(entry)
                        or fused_entry(*args))
    fused = call()
    assert reached, f"{case} did not reach numba's {entry}"

    def refuse(*args):
        raise fastcorr._dispatch.Unsupported("shape", "refused by the test")

    monkeypatch.setattr(numba_backend, entry, refuse)
    composed = call()
    naive = _fused_calls(x, dy, weight, bias, layer_weight, layer_bias, "naive")[case][1]()
    for got, want, ref in zip(fused, composed, naive, strict=True):
        assert (got is None) == (want is None) == (ref is None), case
        if got is None:
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, case
        assert not np.isnan(got).any(), case
        rtol = rtol_for(dtype, x.size)  # running statistics are float64 arrays
        assert_close(got, want, dtype=got.dtype, rtol=rtol, context=f"{case} vs composition")
        assert_close(got, ref, dtype=got.dtype, rtol=rtol, context=f"{case} vs naive")


@pytest.mark.parametrize("backend", NORM_BACKENDS)
def test_norm_statistics_float32_stability(backend, restore_threads):
    """SPEC: the norms' batch statistics keep a float32 variance with mean 1e4, std 1e-2.

    Seen through the running variance (momentum 1: the unbiased batch variance itself).
    """
    fastcorr.set_num_threads(2)
    rng = np.random.default_rng(7)
    x = (1e4 + 1e-2 * rng.standard_normal((4, 3, 40, 50))).astype(np.float32)
    wide = x.astype(np.float64)
    for name, axes, per_sample in (("batch_norm", (0, 2, 3), False),
                                   ("instance_norm", (2, 3), True)):
        running_mean, running_var = np.zeros(3), np.ones(3)
        getattr(fastcorr, name)(x, running_mean, running_var, None, None, True, 1.0,
                                backend=backend)
        reference = wide.var(axis=axes, ddof=1)
        reference = reference.mean(0) if per_sample else reference
        assert np.all(np.abs(running_var / reference - 1) < 1e-3), (name, running_var, reference)


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba is not available")
@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("view", ["batch", "instance"])
def test_numba_fused_blocks_do_not_change_results(view, group, monkeypatch, rng,
                                                  restore_threads):
    """The fused kernels' blocks of groups (one group each, or many) and their serial and
    parallel drivers give the same bits."""
    kernels = importlib.import_module("fastcorr.kernels.numba.norm")
    fastcorr.set_num_threads(2)
    x = random_array(rng, (4, 6, 33), np.float32)
    x = x if view == "batch" else x.reshape(1, 24, 33)
    dy = random_array(rng, x.shape, np.float32)
    weight, bias = (random_array(rng, (x.shape[1],), np.float64) for _ in range(2))
    results = []
    for block_bytes, serial_bytes in ((1, 0), (kernels.BLOCK_BYTES, 0),
                                      (kernels.BLOCK_BYTES, kernels.SERIAL_BYTES)):
        monkeypatch.setattr(kernels, "BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(kernels, "SERIAL_BYTES", serial_bytes)
        results.append(kernels.standardize(x, group, 1e-5, weight, bias)
                       + kernels.standardize_backward(dy, x, group, 1e-5, weight))
    assert kernels._block(x, group) > 1 and x.nbytes <= kernels.SERIAL_BYTES
    for one_by_one, blocked, serial in zip(*results, strict=True):
        np.testing.assert_array_equal(one_by_one, blocked)
        np.testing.assert_array_equal(blocked, serial)


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba is not available")
@pytest.mark.parametrize("rows", [4, 5])
def test_numba_layer_standardize_serial_and_parallel_agree(rows, monkeypatch, rng,
                                                           restore_threads):
    """The fused layer norm forward gives the same bits on the calling thread and on two."""
    kernels = importlib.import_module("fastcorr.kernels.numba.norm")
    fastcorr.set_num_threads(2)
    x = random_array(rng, (rows, 70), np.float32)
    weight, bias = (random_array(rng, (70,), np.float32) for _ in range(2))
    serial = kernels.layer_standardize(x, 1e-5, weight, bias)
    monkeypatch.setattr(kernels, "SERIAL_BYTES", 0)
    parallel = kernels.layer_standardize(x, 1e-5, weight, bias)
    np.testing.assert_array_equal(serial, parallel)
    reference = fastcorr.layer_norm(x, (70,), weight, bias, backend="naive")
    assert_close(parallel, reference, terms=70)
