"""Normalisation: batch, layer, instance and group norm, forward and backward, and moments.

Each norm standardises slices of ``x`` (``(x - mean) / sqrt(var + eps)``,
biased variance) and applies a per-channel (layer norm: per-element) affine
map.  The slices differ, so each front end views ``x`` as a 3-D
``(P, Q, S)`` array whose statistics are taken per ``q`` over ``p`` and
``s``:

==============  =====================  ==============================
norm            statistics view        slice
==============  =====================  ==============================
batch           ``(N, C, H*W)``        a channel across the batch
instance        ``(1, N*C, H*W)``      one sample's channel
group           ``(1, N*G, C/G*H*W)``  one sample's group of channels
layer           ``(1, N, prod(shape))`` one sample's trailing dims
==============  =====================  ==============================

Statistics are accumulated in float64 in two passes (mean, then squared
deviations), so a float32 input with mean 1e4 and standard deviation 1e-2
keeps its variance.  The kernels: ``moments`` (per-``q`` mean and
sum of squared deviations), ``dot_moments`` (per-``q`` sums of ``dy`` and
``dy * (x - mean)``), ``scale_shift`` and ``axpby`` (per-``q`` affine maps of
one or two arrays), and layer norm's elementwise ``layer_normalize`` and
``layer_norm_backward``.  Backends may fuse them per slice (``standardize``,
``standardize_backward``, ``layer_standardize``, ``layer_standardize_backward``:
statistics and output while the slice is in cache); where a backend lacks
the fused form, :func:`_dispatch.run` falls back to the composition here.
"""

from __future__ import annotations

import math

import numpy as np

from . import _arrays, _dispatch
from ._checks import as_array, floating, int_tuple, int_value

_FLOAT64 = np.float64


def _float_input(func: str, x, min_ndim: int = 2):
    x = as_array(func, "x", x)
    if x.ndim < min_ndim:
        raise ValueError(f"{func}: parameter 'x' must have at least {min_ndim} dimensions "
                         f"(N, C, ...), got shape {x.shape}")
    return _arrays.ascontiguousarray(x, floating(func, x))


def _vector(func: str, name: str, value, length: int, dtype, *, writeable=False):
    """A per-channel parameter: ``None`` or shape ``(length,)``.

    Parameters are returned on the host, as ``dtype`` (a device array is
    copied: ``length`` numbers, for the host arithmetic of the statistics);
    running statistics (``writeable``) are the caller's own array, host or
    device, to be read with :func:`_stat` and updated with
    :func:`_running_update`.
    """
    if value is None:
        return None
    if writeable:  # running statistics are updated in place, as torch does
        device = _arrays.is_device(value)
        if device:
            value = as_array(func, name, value, allow_empty=True)  # a view, not a copy
        if not (device or isinstance(value, np.ndarray)) or value.dtype.kind != "f":
            got = (f"an array of dtype {value.dtype}" if device or isinstance(value, np.ndarray)
                   else type(value).__name__)
            raise TypeError(f"{func}: parameter {name!r} must be a float numpy or device array "
                            f"(it is updated in place), got {got}")
        array = value
    else:
        array = as_array(func, name, value)
    if tuple(array.shape) != (length,):
        raise ValueError(f"{func}: parameter {name!r} must have shape ({length},), "
                         f"got {tuple(array.shape)}")
    return array if writeable else _arrays.to_host(array).astype(dtype, copy=False)


def _stat(running) -> np.ndarray:
    """A running statistic in float64, on the host (a copy of ``C`` numbers)."""
    return _arrays.to_host(running).astype(_FLOAT64)


def _eps(func: str, eps) -> float:
    eps = float(eps)
    if not eps >= 0:
        raise ValueError(f"{func}: parameter 'eps' must be >= 0, got {eps}")
    return eps


def _momentum(func: str, momentum) -> float:
    if momentum is None or isinstance(momentum, bool):
        raise TypeError(f"{func}: parameter 'momentum' must be a float, got {momentum!r}")
    return float(momentum)


def _moments(func, view, backend):
    """Mean and biased variance (float64) per ``q`` of a ``(P, Q, S)`` view, on the host.

    The statistics of a device view are copied to the host: ``Q`` numbers
    (``C``, ``N * C``, ``N * G`` or the rows of a layer norm), for the few
    arithmetic steps of the front ends; the results go back with the
    kernels' parameters.
    """
    mean, m2 = _dispatch.run(func, "moments", backend, view, what="moments")
    count = view.shape[0] * view.shape[2]
    return _arrays.to_host(mean), _arrays.to_host(m2) / count


def _dot_moments(func, grad, x, mean, backend):
    """Per ``q``: ``sum(dy)`` and ``sum(dy * (x - mean))`` in float64, on the host, as _moments."""
    sum_dy, sum_dy_centred = _dispatch.run(func, "dot_moments", backend, grad, x, mean,
                                           what="normalisation gradient sums")
    return _arrays.to_host(sum_dy), _arrays.to_host(sum_dy_centred)


@_arrays.device_aware
def moments(x, axis, ddof=0, *, backend=None):
    """Mean and variance over ``axis``, numerically stable in float32.

    Like ``(x.mean(axis), x.var(axis, ddof=ddof))``, accumulated in float64
    in two passes.

    Parameters
    ----------
    x : array_like
    axis : int or tuple of int
        Axes to reduce; negative values count from the end.
    ddof : int, default 0
        Divide the squared deviations by ``count - ddof``.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    (ndarray, ndarray)
        Mean and variance, shaped like ``x`` without ``axis``, in ``x``'s
        float dtype (float64 for non-float input).

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = (1e4 + 1e-2 * np.random.default_rng(0).standard_normal(100_000)).astype(np.float32)
    >>> mean, var = fastcorr.moments(x, 0)
    >>> bool(abs(var / x.astype(np.float64).var() - 1) < 1e-3)
    True
    """
    func = "moments"
    x = as_array(func, "x", x)
    axes = (axis,) if not isinstance(axis, tuple | list) else tuple(axis)
    axes = tuple(int_value(func, "axis", a) for a in axes)
    if not axes or any(not -x.ndim <= a < x.ndim for a in axes):
        raise ValueError(f"{func}: parameter 'axis' {axis!r} is out of range for a "
                         f"{x.ndim}-D array")
    if len({a % x.ndim for a in axes}) != len(axes):
        raise ValueError(f"{func}: parameter 'axis' {axis!r} repeats an axis")
    axes = tuple(sorted(a % x.ndim for a in axes))
    ddof = int_value(func, "ddof", ddof, minimum=0)
    dtype = floating(func, x)
    kept = [a for a in range(x.ndim) if a not in axes]
    kept_shape = tuple(x.shape[a] for a in kept)
    # A (P, Q, S) view: x as it is when the kept axes are contiguous, else kept axes first.
    if kept and kept != list(range(kept[0], kept[-1] + 1)):
        x = _arrays.transpose(x, kept + [a for a in range(x.ndim) if a not in kept])
        kept = list(range(len(kept)))
    lead = math.prod(x.shape[:kept[0]]) if kept else 1
    view = _arrays.reshape(_arrays.ascontiguousarray(x, dtype),
                           (lead, math.prod(kept_shape), -1))
    mean, m2 = _dispatch.run(func, "moments", backend, view, what="moments")
    count = view.shape[0] * view.shape[2]
    var = _arrays.divide(m2, max(count - ddof, 0), dtype)  # ddof >= count: inf or nan, as NumPy
    return (_arrays.reshape(_arrays.asarray(mean, dtype), kept_shape),
            _arrays.reshape(var, kept_shape))


def _normalize(func, view, mean, var, eps, weight, bias, backend):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` on a ``(P, Q, S)`` view, per q.

    ``mean``/``var`` are per ``q``; ``weight``/``bias`` per ``q`` or None.
    """
    rstd = 1.0 / np.sqrt(var + eps)
    scale = rstd if weight is None else rstd * weight.astype(_FLOAT64)
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias.astype(_FLOAT64)
    return _dispatch.run(func, "scale_shift", backend, view, scale.astype(view.dtype),
                         shift.astype(view.dtype), what="normalisation")


def _standardize(func, view, group, eps, weight, bias, backend):
    """Normalise a ``(P, Q, S)`` view with batch statistics per group of ``group`` consecutive q.

    ``weight``/``bias`` per ``q`` or None.  Returns ``(y, mean, var)``, the
    statistics float64 per group.
    """
    def composed(view, group, eps, weight, bias):
        mean, var = _moments(func, _group_view(view, group), backend)
        y = _normalize(func, view, np.repeat(mean, group), np.repeat(var, group), eps, weight,
                       bias, backend)
        return y, mean, var

    return _dispatch.run(func, "standardize", backend, view, group, eps, weight, bias,
                         what="normalisation", fallback=composed)


def _group_view(view, group):
    """``(P, Q, S)`` as ``(P, Q / group, group * S)``: a group of consecutive q as one slice."""
    batch, slices, length = view.shape
    return view.reshape(batch, slices // group, group * length)


def _per_q(values, samples):
    """A per-channel parameter for the ``q = n * C + c`` of ``(1, N * C, S)`` views."""
    if values is None or samples == 1:
        return values
    return np.repeat(values[np.newaxis], samples, axis=0).reshape(-1)  # np.tile, 2x faster


def _running_update(running, momentum, value):
    """``running = (1 - momentum) * running + momentum * value`` in place, host or device."""
    current = _arrays.to_host(running)  # the array itself on the host; C numbers on the device
    _arrays.assign(running, current * (1 - momentum) + (momentum * value).astype(current.dtype))


def _batch_view(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def _batch_norm_args(func, x, running_mean, running_var, weight, bias, training, eps):
    x = _float_input(func, x)
    channels = x.shape[1]
    running_mean = _vector(func, "running_mean", running_mean, channels, x.dtype, writeable=True)
    running_var = _vector(func, "running_var", running_var, channels, x.dtype, writeable=True)
    weight = _vector(func, "weight", weight, channels, x.dtype)
    bias = _vector(func, "bias", bias, channels, x.dtype)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{func}: parameters 'running_mean' and 'running_var' must be given "
                         f"together")
    if not training and running_mean is None:
        raise ValueError(f"{func}: training=False needs 'running_mean' and 'running_var'")
    count = x.size // channels
    if training and count < 2:
        raise ValueError(f"{func}: training needs more than 1 value per channel in parameter "
                         f"'x', got shape {x.shape}")
    return x, running_mean, running_var, weight, bias, _eps(func, eps)


@_arrays.device_aware
def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, backend=None):
    """Batch normalisation, like ``torch.nn.functional.batch_norm``.

    Statistics per channel over the batch and spatial axes (training) or
    the running statistics (``training=False``).  In training, given running
    statistics are updated in place: ``running = (1 - momentum) * running +
    momentum * batch_statistic``, with the unbiased variance, as torch does.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)``.
    running_mean, running_var : ndarray, optional
        ``(C,)`` float arrays; required when ``training`` is False.
    weight, bias : array_like, optional
        ``(C,)`` affine parameters (gamma, beta).
    training : bool, default False
    momentum : float, default 0.1
    eps : float, default 1e-5
        Added to the variance inside the square root.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    ndarray
        Shaped like ``x``, its float dtype.

    See Also
    --------
    batch_norm_backward, instance_norm, group_norm, layer_norm

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.array([[[1.0, 3.0]], [[5.0, 7.0]]])       # (N=2, C=1, L=2)
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> y = fastcorr.batch_norm(x, mean, var, training=True, eps=0.0)
    >>> y.ravel()
    array([-1.34164079, -0.4472136 ,  0.4472136 ,  1.34164079])
    >>> mean, var                                       # updated in place
    (array([0.4]), array([1.56666667]))
    """
    func = "batch_norm"
    x, running_mean, running_var, weight, bias, eps = _batch_norm_args(
        func, x, running_mean, running_var, weight, bias, training, eps)
    if not training:
        y = _normalize(func, _batch_view(x), _stat(running_mean), _stat(running_var), eps,
                       weight, bias, backend)
        return y.reshape(x.shape)
    y, mean, var = _standardize(func, _batch_view(x), 1, eps, weight, bias, backend)
    if running_mean is not None:
        momentum = _momentum(func, momentum)
        count = x.size // x.shape[1]
        _running_update(running_mean, momentum, mean)
        _running_update(running_var, momentum, var * count / (count - 1))
    return y.reshape(x.shape)


def _instance_args(func, x, running_mean, running_var, weight, bias, use_input_stats, eps):
    x = _float_input(func, x, 3)
    channels = x.shape[1]
    running_mean = _vector(func, "running_mean", running_mean, channels, x.dtype, writeable=True)
    running_var = _vector(func, "running_var", running_var, channels, x.dtype, writeable=True)
    weight = _vector(func, "weight", weight, channels, x.dtype)
    bias = _vector(func, "bias", bias, channels, x.dtype)
    if not use_input_stats and (running_mean is None or running_var is None):
        raise ValueError(f"{func}: use_input_stats=False needs 'running_mean' and 'running_var'")
    if use_input_stats and math.prod(x.shape[2:]) < 2:
        raise ValueError(f"{func}: needs more than 1 spatial element per channel in parameter "
                         f"'x', got shape {x.shape}")
    return x, running_mean, running_var, weight, bias, _eps(func, eps)


def _instance_view(x):
    return x.reshape(1, x.shape[0] * x.shape[1], -1)


@_arrays.device_aware
def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5, *, backend=None):
    """Instance normalisation, like ``torch.nn.functional.instance_norm``.

    Statistics per sample and channel over the spatial axes.  Running
    statistics, if given, are updated in place with the batch average of the
    per-instance statistics (unbiased variance); with
    ``use_input_stats=False`` they are used instead.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)``.
    running_mean, running_var, weight, bias : optional
        ``(C,)`` each.
    use_input_stats : bool, default True
    momentum, eps : float
        As in :func:`batch_norm`.
    backend : str, optional

    See Also
    --------
    instance_norm_backward, batch_norm, group_norm

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.instance_norm(np.array([[[1.0, 3.0], [6.0, 2.0]]]), eps=0.0)
    array([[[-1.,  1.],
            [ 1., -1.]]])
    """
    func = "instance_norm"
    x, running_mean, running_var, weight, bias, eps = _instance_args(
        func, x, running_mean, running_var, weight, bias, use_input_stats, eps)
    samples, channels = x.shape[:2]
    weight, bias = _per_q(weight, samples), _per_q(bias, samples)
    if not use_input_stats:
        y = _normalize(func, _instance_view(x), np.tile(_stat(running_mean), samples),
                       np.tile(_stat(running_var), samples), eps, weight, bias, backend)
        return y.reshape(x.shape)
    y, mean, var = _standardize(func, _instance_view(x), 1, eps, weight, bias, backend)
    if running_mean is not None:
        momentum = _momentum(func, momentum)
        count = math.prod(x.shape[2:])
        _running_update(running_mean, momentum, mean.reshape(-1, channels).mean(0))
        unbiased = var * count / (count - 1)
        _running_update(running_var, momentum, unbiased.reshape(-1, channels).mean(0))
    return y.reshape(x.shape)


def _group_args(func, x, num_groups, weight, bias, eps):
    x = _float_input(func, x)
    channels = x.shape[1]
    num_groups = int_value(func, "num_groups", num_groups, minimum=1)
    if channels % num_groups:
        raise ValueError(f"{func}: parameter 'num_groups'={num_groups} must divide the "
                         f"{channels} channels of x")
    weight = _vector(func, "weight", weight, channels, x.dtype)
    bias = _vector(func, "bias", bias, channels, x.dtype)
    return x, num_groups, weight, bias, _eps(func, eps)


@_arrays.device_aware
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, backend=None):
    """Group normalisation, like ``torch.nn.functional.group_norm``.

    Statistics per sample over each group of ``C / num_groups`` channels and
    the spatial axes; affine per channel.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)``.
    num_groups : int
        Must divide ``C``.
    weight, bias : array_like, optional
        ``(C,)`` each.
    eps : float, default 1e-5
    backend : str, optional

    See Also
    --------
    group_norm_backward, instance_norm, layer_norm

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.group_norm(np.array([[[1.0], [3.0], [5.0], [9.0]]]), 2, eps=0.0)
    array([[[-1.],
            [ 1.],
            [-1.],
            [ 1.]]])
    """
    func = "group_norm"
    x, num_groups, weight, bias, eps = _group_args(func, x, num_groups, weight, bias, eps)
    samples, channels = x.shape[:2]
    y, _, _ = _standardize(func, _instance_view(x), channels // num_groups, eps,
                           _per_q(weight, samples), _per_q(bias, samples), backend)
    return y.reshape(x.shape)


def _layer_args(func, x, normalized_shape, weight, bias, eps):
    x = as_array(func, "x", x)
    if isinstance(normalized_shape, int | np.integer):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, tuple | list) or not normalized_shape:
        raise TypeError(f"{func}: parameter 'normalized_shape' must be an int or a tuple of "
                        f"ints, got {normalized_shape!r}")
    shape = int_tuple(func, "normalized_shape", tuple(normalized_shape), len(normalized_shape),
                      minimum=1)
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"{func}: parameter 'normalized_shape' {shape} must equal the trailing "
                         f"dimensions of x, got x.shape={x.shape}")
    dtype = floating(func, x)
    params = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            value = as_array(func, name, value)
            if value.shape != shape:
                raise ValueError(f"{func}: parameter {name!r} must have normalized_shape "
                                 f"{shape}, got {value.shape}")
            value = _arrays.reshape(_arrays.ascontiguousarray(value, dtype), (-1,))
        params.append(value)
    x2 = _arrays.reshape(_arrays.ascontiguousarray(x, dtype), (-1, math.prod(shape)))
    return x2, params[0], params[1], _eps(func, eps), tuple(x.shape)


@_arrays.device_aware
def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, backend=None):
    """Layer normalisation, like ``torch.nn.functional.layer_norm``.

    Statistics per sample over the trailing ``normalized_shape`` dimensions;
    ``weight`` and ``bias`` are elementwise over those dimensions.

    Parameters
    ----------
    x : array_like
    normalized_shape : int or tuple of int
        The trailing dimensions of ``x`` to normalise over.
    weight, bias : array_like, optional
        Of shape ``normalized_shape``.
    eps : float, default 1e-5
    backend : str, optional

    See Also
    --------
    layer_norm_backward, group_norm

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.layer_norm(np.array([[1.0, 2.0, 3.0]]), 3, eps=0.0)
    array([[-1.22474487,  0.        ,  1.22474487]])
    """
    func = "layer_norm"
    x2, weight, bias, eps, shape = _layer_args(func, x, normalized_shape, weight, bias, eps)

    def composed(x2, eps, weight, bias):
        mean, var = _moments(func, _arrays.new_axis(x2), backend)
        return _dispatch.run(func, "layer_normalize", backend, x2, mean, 1.0 / np.sqrt(var + eps),
                             weight, bias, what="layer normalisation")

    y = _dispatch.run(func, "layer_standardize", backend, x2, eps, weight, bias,
                      what="layer normalisation", fallback=composed)
    return y.reshape(shape)


# Backward passes.  With xhat = (x - mean) * rstd and g = dy * weight over a
# slice of n elements: dx = rstd * (g - sum(g) / n - xhat * sum(g * xhat) / n),
# which per q is dx = dy * a + x * b + c; dweight = sum(dy * xhat), dbias = sum(dy).

def _grad_output(func, grad_output, shape, dtype):
    grad = as_array(func, "grad_output", grad_output)
    if grad.shape != shape:
        raise ValueError(f"{func}: parameter 'grad_output' must have x's shape {shape}, "
                         f"got {grad.shape}")
    return _arrays.ascontiguousarray(grad, dtype)


def _standardize_backward(func, grad, x, group, eps, weight, backend):
    """Gradients through batch statistics per group of ``group`` consecutive q.

    ``grad``/``x`` are ``(P, Q, S)`` views, ``weight`` per ``q`` or None.
    Returns ``(grad_input, sum_dy, sum_dy_xhat)``, the sums float64 per ``q``.
    """
    def composed(grad, x, group, eps, weight):
        batch, slices, length = x.shape
        mean, var = _moments(func, _group_view(x, group), backend)
        mean, var = np.repeat(mean, group), np.repeat(var, group)
        sum_dy, sum_dy_centred = _dot_moments(func, grad, x, mean, backend)
        rstd = 1.0 / np.sqrt(var + eps)
        w = np.ones(slices) if weight is None else weight.astype(_FLOAT64)
        sum_dy_xhat = sum_dy_centred * rstd

        def group_sum(values):  # over the q of each group, repeated back per q
            return np.repeat(values.reshape(-1, group).sum(1), group)

        count = batch * group * length
        a = rstd * w
        b = -rstd * rstd * group_sum(w * sum_dy_xhat) / count
        c = -rstd * group_sum(w * sum_dy) / count - b * mean
        grad_input = _dispatch.run(func, "axpby", backend, grad, x, a.astype(x.dtype),
                                   b.astype(x.dtype), c.astype(x.dtype),
                                   what="normalisation gradient")
        return grad_input, sum_dy, sum_dy_xhat

    return _dispatch.run(func, "standardize_backward", backend, grad, x, group, eps, weight,
                         what="normalisation gradient", fallback=composed)


def _fixed_stats_backward(func, grad, x, mean, var, eps, weight, backend):
    """:func:`_standardize_backward` for fixed (running) statistics per ``q``: an affine map."""
    rstd = 1.0 / np.sqrt(var + eps)
    a = rstd if weight is None else rstd * weight.astype(_FLOAT64)
    grad_input = _dispatch.run(func, "scale_shift", backend, grad, a.astype(x.dtype),
                               np.zeros(len(a), dtype=x.dtype), what="normalisation gradient")
    sum_dy, sum_dy_centred = _dot_moments(func, grad, x, mean, backend)
    return grad_input, sum_dy, sum_dy_centred * rstd


def _norm_grads(x, grads, weight, bias):
    """The public triple from ``(grad_input view, sum_dy, sum_dy_xhat)`` per ``q``.

    The affine gradients sum the per-``q`` sums per channel (``q = n * C + c``).
    """
    grad_input, sum_dy, sum_dy_xhat = grads
    channels = x.shape[1]
    return (grad_input.reshape(x.shape),
            None if weight is None else sum_dy_xhat.reshape(-1, channels).sum(0).astype(x.dtype),
            None if bias is None else sum_dy.reshape(-1, channels).sum(0).astype(x.dtype))


@_arrays.device_aware
def batch_norm_backward(grad_output, x, running_mean=None, running_var=None, weight=None,
                        bias=None, training=False, momentum=0.1, eps=1e-5, *, backend=None):
    """Gradients of :func:`batch_norm`: ``(grad_input, grad_weight, grad_bias)``.

    As torch autograd gives them: through the batch statistics when
    ``training``, else through the fixed running statistics.  Running
    statistics are not updated.  ``grad_weight``/``grad_bias`` are ``None``
    where ``weight``/``bias`` are.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.array([[[1.0, 3.0]], [[5.0, 7.0]]])
    >>> dx, dw, db = fastcorr.batch_norm_backward(np.ones_like(x), x, weight=np.ones(1),
    ...                                           bias=np.zeros(1), training=True)
    >>> bool(np.allclose(dx, 0)), db
    (True, array([4.]))
    """
    func = "batch_norm_backward"
    x, running_mean, running_var, weight, bias, eps = _batch_norm_args(
        func, x, running_mean, running_var, weight, bias, training, eps)
    grad = _batch_view(_grad_output(func, grad_output, x.shape, x.dtype))
    if training:
        grads = _standardize_backward(func, grad, _batch_view(x), 1, eps, weight, backend)
    else:
        grads = _fixed_stats_backward(func, grad, _batch_view(x), _stat(running_mean),
                                      _stat(running_var), eps, weight, backend)
    return _norm_grads(x, grads, weight, bias)


@_arrays.device_aware
def instance_norm_backward(grad_output, x, running_mean=None, running_var=None, weight=None,
                           bias=None, use_input_stats=True, momentum=0.1, eps=1e-5, *,
                           backend=None):
    """Gradients of :func:`instance_norm`: ``(grad_input, grad_weight, grad_bias)``.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.array([[[1.0, 3.0], [2.0, 6.0]]])
    >>> dx, dw, db = fastcorr.instance_norm_backward(np.ones_like(x), x, weight=np.ones(2),
    ...                                              bias=np.zeros(2))
    >>> bool(np.allclose(dx, 0)), db
    (True, array([2., 2.]))
    """
    func = "instance_norm_backward"
    x, running_mean, running_var, weight, bias, eps = _instance_args(
        func, x, running_mean, running_var, weight, bias, use_input_stats, eps)
    grad = _instance_view(_grad_output(func, grad_output, x.shape, x.dtype))
    samples = x.shape[0]
    weight_q = _per_q(weight, samples)
    if use_input_stats:
        grads = _standardize_backward(func, grad, _instance_view(x), 1, eps, weight_q, backend)
    else:
        grads = _fixed_stats_backward(
            func, grad, _instance_view(x), np.tile(_stat(running_mean), samples),
            np.tile(_stat(running_var), samples), eps, weight_q, backend)
    return _norm_grads(x, grads, weight, bias)


@_arrays.device_aware
def group_norm_backward(grad_output, x, num_groups, weight=None, bias=None, eps=1e-5, *,
                        backend=None):
    """Gradients of :func:`group_norm`: ``(grad_input, grad_weight, grad_bias)``.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.array([[[1.0], [3.0], [5.0], [9.0]]])
    >>> dx, dw, db = fastcorr.group_norm_backward(np.ones_like(x), x, 2, np.ones(4),
    ...                                           np.zeros(4))
    >>> bool(np.allclose(dx, 0)), db
    (True, array([1., 1., 1., 1.]))
    """
    func = "group_norm_backward"
    x, num_groups, weight, bias, eps = _group_args(func, x, num_groups, weight, bias, eps)
    grad = _instance_view(_grad_output(func, grad_output, x.shape, x.dtype))
    samples, channels = x.shape[:2]
    grads = _standardize_backward(func, grad, _instance_view(x), channels // num_groups, eps,
                                  _per_q(weight, samples), backend)
    return _norm_grads(x, grads, weight, bias)


@_arrays.device_aware
def layer_norm_backward(grad_output, x, normalized_shape, weight=None, bias=None, eps=1e-5, *,
                        backend=None):
    """Gradients of :func:`layer_norm`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_weight`` and ``grad_bias`` have ``normalized_shape``.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> dx, dw, db = fastcorr.layer_norm_backward(np.ones_like(x), x, 3, np.ones(3), np.zeros(3))
    >>> bool(np.allclose(dx, 0)), db
    (True, array([1., 1., 1.]))
    """
    func = "layer_norm_backward"
    x2, weight, bias, eps, shape = _layer_args(func, x, normalized_shape, weight, bias, eps)
    grad = _arrays.reshape(_grad_output(func, grad_output, shape, x2.dtype), x2.shape)

    def composed(grad, x2, eps, weight):
        mean, var = _moments(func, _arrays.new_axis(x2), backend)
        return _dispatch.run(func, "layer_norm_backward", backend, grad, x2, mean,
                             1.0 / np.sqrt(var + eps), weight,
                             what="layer normalisation gradient")

    grad_input, grad_weight, grad_bias = _dispatch.run(
        func, "layer_standardize_backward", backend, grad, x2, eps, weight,
        what="layer normalisation gradient", fallback=composed)
    trailing = shape[len(shape) - len(np.atleast_1d(normalized_shape)):]
    return (grad_input.reshape(shape),
            None if weight is None else _arrays.reshape(_arrays.asarray(grad_weight, x2.dtype),
                                                        trailing),
            None if bias is None else _arrays.reshape(_arrays.asarray(grad_bias, x2.dtype),
                                                      trailing))
