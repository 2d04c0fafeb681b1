"""Pooling, with torch.nn.functional's semantics on NumPy arrays.

Every pooling function reduces to windows described per spatial dimension by
a small table (see :func:`_windows`): the first in-bounds input position of
each output's window, how many in-bounds taps it has, and the step between
taps (the dilation).  torch's index arithmetic (padding, ``ceil_mode``,
adaptive bin edges, average divisors) lives here, once; the kernels only walk
the tables.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _arrays, _dispatch
from ._checks import as_array, floating, int_tuple, int_value
from ._shapes import window_count


class Windows(NamedTuple):
    """The pooling windows along one spatial dimension.

    Output ``o`` reads input positions ``first[o] + t * step`` for
    ``t < taps[o]``; ``divisor[o]`` is this dimension's factor of the average
    divisor (the average divides by the product over dimensions).
    """

    first: np.ndarray
    taps: np.ndarray
    step: int
    divisor: np.ndarray


_UNIT = Windows(np.zeros(1, np.int64), np.ones(1, np.int64), 1, np.ones(1, np.float64))


def _windows(func, size, kernel, stride, pad, dilation, ceil_mode,
             count_include_pad=True) -> Windows:
    """torch's pooling windows along one dimension of length ``size``."""
    count = window_count(func, size, kernel, stride, (pad, pad), dilation, ceil_mode)
    start = np.arange(count, dtype=np.int64) * stride - pad
    first_tap = np.where(start < 0, (dilation - 1 - start) // dilation, 0)
    last_tap = np.minimum(kernel - 1, (size - 1 - start) // dilation)
    taps = np.maximum(last_tap - first_tap + 1, 0)
    if count_include_pad:  # torch clips the window at the end of the padding
        divisor = np.minimum(start + kernel, size + pad) - start
    else:
        divisor = taps
    return Windows(start + first_tap * dilation, taps, dilation, divisor.astype(np.float64))


def _adaptive_windows(size, out) -> Windows:
    """torch's adaptive bins: ``[floor(o * size / out), ceil((o + 1) * size / out))``."""
    o = np.arange(out, dtype=np.int64)
    start = (o * size) // out
    end = -((-(o + 1) * size) // out)
    return Windows(start, end - start, 1, (end - start).astype(np.float64))


def _lift(windows: list) -> tuple:
    """Three dimensions' tables (unit dimensions in front), as the kernels take them."""
    return tuple([_UNIT] * (3 - len(windows)) + windows)


def _input(func: str, x, spatial_ndim: int):
    """``(N, C, D, H, W)`` float array of ``x``, and whether ``x`` was unbatched."""
    x = as_array(func, "x", x)
    if x.ndim not in (spatial_ndim + 1, spatial_ndim + 2):
        raise ValueError(f"{func}: parameter 'x' must be {spatial_ndim + 2}-D (N, C, *spatial) "
                         f"or {spatial_ndim + 1}-D (C, *spatial), got shape {x.shape}")
    unbatched = x.ndim == spatial_ndim + 1
    if unbatched:
        x = _arrays.new_axis(x)
    x = _arrays.ascontiguousarray(x, floating(func, x))
    shape = tuple(x.shape)
    return x.reshape(shape[:2] + (1,) * (3 - spatial_ndim) + shape[2:]), unbatched


def _output(func: str, out: np.ndarray, spatial_ndim: int, unbatched: bool) -> np.ndarray:
    shape = tuple(out.shape)
    out = _arrays.reshape(out, shape[:2] + shape[5 - spatial_ndim:])
    return out[0] if unbatched else out


def _window_args(func, spatial_ndim, kernel_size, stride, padding, dilation=1):
    kernel = int_tuple(func, "kernel_size", kernel_size, spatial_ndim, minimum=1)
    if stride is None or (isinstance(stride, tuple | list) and len(stride) == 0):
        stride = kernel  # torch's default
    stride = int_tuple(func, "stride", stride, spatial_ndim, minimum=1)
    padding = int_tuple(func, "padding", padding, spatial_ndim, minimum=0)
    dilation = int_tuple(func, "dilation", dilation, spatial_ndim, minimum=1)
    if any(p > k // 2 for k, p in zip(kernel, padding, strict=True)):
        raise ValueError(f"{func}: parameter 'padding' must be at most half of kernel_size, "
                         f"got padding={padding}, kernel_size={kernel}")
    return kernel, stride, padding, dilation


def _max_windows(func, x, spatial_ndim, kernel_size, stride, padding, dilation, ceil_mode):
    kernel, stride, padding, dilation = _window_args(func, spatial_ndim, kernel_size, stride,
                                                     padding, dilation)
    sizes = x.shape[5 - spatial_ndim:]
    return _lift([_windows(func, n, k, s, p, d, bool(ceil_mode))
                  for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)])


def _max_pool(func, spatial_ndim, x, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices, backend):
    x, unbatched = _input(func, x, spatial_ndim)
    windows = _max_windows(func, x, spatial_ndim, kernel_size, stride, padding, dilation,
                           ceil_mode)
    return _run_max_pool(func, x, windows, spatial_ndim, unbatched, return_indices, backend)


def _run_max_pool(func, x, windows, spatial_ndim, unbatched, return_indices, backend):
    """Max pooling of a lifted ``x``: values, and the indices only where asked for.

    Without indices, the backend's ``max_pool_values`` where it has one
    (which neither computes nor stores them), else ``max_pool``'s values.
    """
    if return_indices:
        values, indices = _dispatch.run(func, "max_pool", backend, x, windows,
                                        what="max pooling")
        return (_output(func, values, spatial_ndim, unbatched),
                _output(func, indices, spatial_ndim, unbatched))

    def with_indices(x, windows):
        return _dispatch.run(func, "max_pool", backend, x, windows, what="max pooling")[0]

    values = _dispatch.run(func, "max_pool_values", backend, x, windows, fallback=with_indices)
    return _output(func, values, spatial_ndim, unbatched)


@_arrays.device_aware
def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """1-D max pooling, like ``torch.nn.functional.max_pool1d``; see :func:`max_pool2d`.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.max_pool1d(np.array([[1.0, 3.0, 2.0, 5.0, 4.0]]), 2)
    array([[3., 5.]])
    """
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, backend)


@_arrays.device_aware
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """2-D max pooling, like ``torch.nn.functional.max_pool2d``.

    Padding counts as ``-inf``; a window holding NaN gives NaN, as in torch.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)`` or unbatched ``(C, H, W)``.
    kernel_size : int or tuple of 2 ints
    stride : int or tuple of 2 ints, optional
        Defaults to ``kernel_size``.
    padding : int or tuple of 2 ints, default 0
        At most half of ``kernel_size``.
    dilation : int or tuple of 2 ints, default 1
    ceil_mode : bool, default False
        Round the output size up; the last window must start inside the
        input or its left padding.
    return_indices : bool, default False
        Also return, per output, the flat index ``h * W + w`` of the maximum
        within its input plane (int64), as torch does; -1 (and value
        ``-inf``) for a window that holds only padding.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    ndarray or (ndarray, ndarray)

    See Also
    --------
    max_pool1d, avg_pool2d, adaptive_max_pool2d, max_pool2d_backward

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> fastcorr.max_pool2d(x, 2)
    array([[[ 5.,  7.],
            [13., 15.]]])
    >>> fastcorr.max_pool2d(x, 2, return_indices=True)[1]
    array([[[ 5,  7],
            [13, 15]]])
    """
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, backend)


def _avg_windows(func, x, spatial_ndim, kernel_size, stride, padding, ceil_mode,
                 count_include_pad, divisor_override):
    kernel, stride, padding, _ = _window_args(func, spatial_ndim, kernel_size, stride, padding)
    sizes = x.shape[5 - spatial_ndim:]
    windows = [_windows(func, n, k, s, p, 1, bool(ceil_mode), bool(count_include_pad))
               for n, k, s, p in zip(sizes, kernel, stride, padding)]
    if divisor_override is not None:
        divisor = int_value(func, "divisor_override", divisor_override)
        if divisor == 0:
            raise ValueError(f"{func}: parameter 'divisor_override' must not be zero")
        # The divisor is a product over dimensions: put the whole constant in the last one.
        windows = [w._replace(divisor=np.ones_like(w.divisor)) for w in windows]
        windows[-1] = windows[-1]._replace(divisor=np.full_like(windows[-1].divisor, divisor))
    return _lift(windows)


def _avg_pool(func, spatial_ndim, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, backend):
    x, unbatched = _input(func, x, spatial_ndim)
    windows = _avg_windows(func, x, spatial_ndim, kernel_size, stride, padding, ceil_mode,
                           count_include_pad, divisor_override)
    out = _dispatch.run(func, "avg_pool", backend, x, windows, what="average pooling")
    return _output(func, out, spatial_ndim, unbatched)


@_arrays.device_aware
def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, backend=None):
    """1-D average pooling, like ``torch.nn.functional.avg_pool1d``; see :func:`avg_pool2d`.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.avg_pool1d(np.array([[1.0, 3.0, 2.0, 6.0]]), 2)
    array([[2., 4.]])
    """
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, backend)


@_arrays.device_aware
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, backend=None):
    """2-D average pooling, like ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)`` or unbatched ``(C, H, W)``.
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool2d` (no dilation).
    count_include_pad : bool, default True
        Divide by the window's size including zero padding (clipped where a
        ``ceil_mode`` window runs past the padding) rather than by the number
        of input elements in it.
    divisor_override : int, optional
        Divide every window's sum by this instead.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    See Also
    --------
    avg_pool1d, max_pool2d, adaptive_avg_pool2d, avg_pool2d_backward

    Examples
    --------
    Seed 004: average pooling is a stride-k convolution with weights 1/k^2.

    >>> import numpy as np, fastcorr
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pooled = fastcorr.avg_pool2d(x, 2)
    >>> pooled
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> bool(np.allclose(pooled, fastcorr.conv2d(x, np.full((1, 1, 2, 2), 0.25), stride=2)))
    True
    """
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, backend)


def _adaptive_windows_of(func, x, output_size):
    sizes = x.shape[3:]
    if output_size is None or isinstance(output_size, int | np.integer):
        output_size = (output_size, output_size)
    if not isinstance(output_size, tuple | list) or len(output_size) != 2:
        raise ValueError(f"{func}: parameter 'output_size' must be an int or a pair, "
                         f"got {output_size!r}")
    out = tuple(n if o is None else int_value(func, "output_size", o, minimum=1)
                for n, o in zip(sizes, output_size))
    return _lift([_adaptive_windows(n, o) for n, o in zip(sizes, out)])


@_arrays.device_aware
def adaptive_avg_pool2d(x, output_size, *, backend=None):
    """Average over adaptive bins, like ``torch.nn.functional.adaptive_avg_pool2d``.

    Bin ``o`` of ``out`` along a dimension of length ``n`` covers
    ``[floor(o * n / out), ceil((o + 1) * n / out))``; ``None`` in
    ``output_size`` keeps that dimension.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.adaptive_avg_pool2d(np.arange(6.0).reshape(1, 2, 3), (1, 2))
    array([[[2., 3.]]])
    """
    return _adaptive_avg("adaptive_avg_pool2d", x, output_size, backend)


def _adaptive_avg(func, x, output_size, backend):
    x, unbatched = _input(func, x, 2)
    windows = _adaptive_windows_of(func, x, output_size)
    out = _dispatch.run(func, "avg_pool", backend, x, windows, what="average pooling")
    return _output(func, out, 2, unbatched)


@_arrays.device_aware
def adaptive_max_pool2d(x, output_size, return_indices=False, *, backend=None):
    """Maximum over adaptive bins, like ``torch.nn.functional.adaptive_max_pool2d``.

    Bins as in :func:`adaptive_avg_pool2d`; indices as in :func:`max_pool2d`.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.adaptive_max_pool2d(np.arange(6.0).reshape(1, 2, 3), (1, 2))
    array([[[4., 5.]]])
    """
    return _adaptive_max("adaptive_max_pool2d", x, output_size, return_indices, backend)


def _adaptive_max(func, x, output_size, return_indices, backend):
    x, unbatched = _input(func, x, 2)
    windows = _adaptive_windows_of(func, x, output_size)
    return _run_max_pool(func, x, windows, 2, unbatched, return_indices, backend)


@_arrays.device_aware
def global_avg_pool2d(x, *, backend=None):
    """Mean over each channel's plane: ``(N, C, H, W) -> (N, C)``, like ``x.mean((2, 3))``.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.global_avg_pool2d(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    """
    return _global_pool("global_avg_pool2d", x, "avg", backend)


@_arrays.device_aware
def global_max_pool2d(x, *, backend=None):
    """Maximum over each channel's plane: ``(N, C, H, W) -> (N, C)``, like ``x.amax((2, 3))``.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.global_max_pool2d(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[3., 7.]])
    """
    return _global_pool("global_max_pool2d", x, "max", backend)


def _global_pool(func, x, kind, backend):
    """``kind`` ('avg' or 'max') of every plane: the backend's ``global_{kind}_pool``
    where it has that fused entry point, else adaptive pooling to one bin."""
    x, unbatched = _input(func, x, 2)

    def one_bin(x):
        windows = _adaptive_windows_of(func, x, 1)
        if kind == "avg":
            return _dispatch.run(func, "avg_pool", backend, x, windows, what="average pooling")
        return _dispatch.run(func, "max_pool", backend, x, windows, what="max pooling")[0]

    out = _dispatch.run(func, f"global_{kind}_pool", backend, x, fallback=one_bin)
    out = _arrays.reshape(out, tuple(x.shape[:2]))
    return out[0] if unbatched else out


def _grad_output(func, grad_output, lifted_shape, spatial_ndim, unbatched, dtype):
    """``grad_output`` checked against the forward output's shape, lifted like ``x``."""
    grad = as_array(func, "grad_output", grad_output)
    shape = lifted_shape[:2] + lifted_shape[5 - spatial_ndim:]
    shape = shape[1:] if unbatched else shape
    if grad.shape != shape:
        raise ValueError(f"{func}: parameter 'grad_output' must have the forward output's "
                         f"shape {shape}, got {grad.shape}")
    return _arrays.reshape(_arrays.ascontiguousarray(grad, dtype), lifted_shape)


@_arrays.device_aware
def max_pool2d_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, backend=None):
    """Gradient of :func:`max_pool2d` with respect to ``x``, as torch autograd gives it.

    Each output's gradient goes to the position of its window's maximum;
    where windows overlap, contributions add.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.array([[[1.0, 2.0], [4.0, 3.0]]])
    >>> fastcorr.max_pool2d_backward(np.ones((1, 1, 1)), x, 2)
    array([[[0., 0.],
            [1., 0.]]])
    """
    func = "max_pool2d_backward"
    x, unbatched = _input(func, x, 2)
    windows = _max_windows(func, x, 2, kernel_size, stride, padding, dilation, ceil_mode)
    _, indices = _dispatch.run(func, "max_pool", backend, x, windows, what="max pooling")
    grad = _grad_output(func, grad_output, indices.shape, 2, unbatched, x.dtype)
    grad_input = _dispatch.run(func, "max_pool_backward", backend, grad, indices, x.shape[2:],
                               what="max pooling's gradient")
    return _output(func, grad_input, 2, unbatched)


@_arrays.device_aware
def avg_pool2d_backward(grad_output, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, backend=None):
    """Gradient of :func:`avg_pool2d` with respect to ``x``, as torch autograd gives it.

    Each output's gradient, divided by its divisor, goes to every input in
    its window.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.avg_pool2d_backward(np.ones((1, 1, 1)), np.zeros((1, 2, 2)), 2)
    array([[[0.25, 0.25],
            [0.25, 0.25]]])
    """
    func = "avg_pool2d_backward"
    x, unbatched = _input(func, x, 2)
    windows = _avg_windows(func, x, 2, kernel_size, stride, padding, ceil_mode,
                           count_include_pad, divisor_override)
    out_shape = x.shape[:2] + tuple(len(w.first) for w in windows)
    grad = _grad_output(func, grad_output, out_shape, 2, unbatched, x.dtype)
    grad_input = _dispatch.run(func, "avg_pool_backward", backend, grad, windows, x.shape[2:],
                               what="average pooling's gradient")
    return _output(func, grad_input, 2, unbatched)
