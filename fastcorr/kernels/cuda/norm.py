"""Normalisation kernels on the GPU, on ``(P, Q, S)`` views (see :mod:`fastcorr.norm`).

Kernels and their launch layouts:

* ``_moments_kernel``, ``_dot_moments_kernel``: one block of
  ``REDUCE_THREADS`` per slice ``x[:, q, :]``.  The threads stride over the
  slice's ``P * S`` elements (consecutive threads, consecutive ``s``:
  coalesced) accumulating in float64, then a shared-memory tree sums the
  threads' partials in a fixed order: deterministic, no atomics.  The
  moments take two passes, the mean first and then the squared deviations
  from it, so a float32 input with mean 1e4 and standard deviation 1e-2
  keeps its variance.
* ``_sums_kernel`` (the bias gradient of a convolution, a per-channel sum):
  the moments' first pass alone.
* ``_scale_shift_kernel``, ``_axpby_kernel``, ``_layer_normalize_kernel``:
  one thread per element (1-D grid of ``_device.THREADS_PER_BLOCK``).
* ``_layer_norm_backward_kernel``: one launch, two kinds of block.  Blocks
  ``0 .. rows - 1`` take one row each: a tree sums ``g = dy * weight`` and
  ``g * xhat`` over the row, then every thread writes its columns of
  ``grad_input``.  The blocks after them take ``lanes`` consecutive columns
  each for ``grad_weight``/``grad_bias``: thread ``t`` is column lane
  ``t % lanes`` of row group ``t // lanes`` (coalesced reads along a row),
  sums its group's rows, and a tree over the groups finishes the column
  sums; a column sum across row blocks would need atomics or a second
  launch.

Reduction blocks size their shared arrays by ``_REDUCE_CAPACITY``, fixed
when a kernel compiles; ``REDUCE_THREADS`` (read at every launch, shrunk by
the tests) must be a power of two no larger.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from . import _arrays, _device

# Threads per block of the reductions (one block per slice or row).  Read at
# every launch; a power of two up to _REDUCE_CAPACITY.
REDUCE_THREADS = 128
# Size of the reductions' shared arrays, fixed when a kernel compiles.
_REDUCE_CAPACITY = REDUCE_THREADS
# Row groups of a column block of layer_norm_backward: its REDUCE_THREADS
# threads are ROW_GROUPS groups of REDUCE_THREADS / ROW_GROUPS column lanes.
ROW_GROUPS = 4


@cuda.jit(device=True)
def _block_sums(first, second, value, other):
    """The block's sums of ``value`` and of ``other``, by a fixed-order tree in shared memory.

    Every thread of the block must call it; ``first``/``second`` are shared
    arrays of at least ``blockDim.x`` (a power of two) slots, free again on return.
    """
    thread = cuda.threadIdx.x
    first[thread] = value
    second[thread] = other
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if thread < stride:
            first[thread] += first[thread + stride]
            second[thread] += second[thread + stride]
        cuda.syncthreads()
        stride //= 2
    total = first[0]
    other_total = second[0]
    cuda.syncthreads()  # every thread has read the totals before the slots are reused
    return total, other_total


@cuda.jit(device=True)
def _slice_sum(x, q, first, second):
    """``sum(x[:, q, :])`` in float64, for every thread of the block (a fixed-order tree)."""
    thread = cuda.threadIdx.x
    batch, _, length = x.shape
    total = 0.0
    for i in range(thread, batch * length, cuda.blockDim.x):
        p, s = divmod(i, length)
        total += float64(x[p, q, s])
    total, _ = _block_sums(first, second, total, 0.0)
    return total


@cuda.jit
def _moments_kernel(x, mean, m2):
    """One block per ``q``: the slice's mean, then its squared deviations from it, in float64."""
    first = cuda.shared.array(_REDUCE_CAPACITY, float64)
    second = cuda.shared.array(_REDUCE_CAPACITY, float64)
    q = cuda.blockIdx.x
    thread = cuda.threadIdx.x
    threads = cuda.blockDim.x
    batch, slices, length = x.shape
    count = batch * length
    if q >= slices:  # uniform over the block
        return
    total = _slice_sum(x, q, first, second)
    centre = total / count if count > 0 else math.nan
    squares = 0.0
    for i in range(thread, count, threads):
        p, s = divmod(i, length)
        deviation = float64(x[p, q, s]) - centre
        squares += deviation * deviation
    squares, _ = _block_sums(first, second, squares, 0.0)
    if thread == 0:
        mean[q] = centre
        m2[q] = squares


@cuda.jit
def _sums_kernel(x, sums):
    """One block per ``q``: the sum over ``(p, s)`` in float64, stored in ``sums``' dtype."""
    first = cuda.shared.array(_REDUCE_CAPACITY, float64)
    second = cuda.shared.array(_REDUCE_CAPACITY, float64)
    q = cuda.blockIdx.x
    if q >= x.shape[1]:
        return
    total = _slice_sum(x, q, first, second)
    if cuda.threadIdx.x == 0:
        sums[q] = total


@cuda.jit
def _dot_moments_kernel(dy, x, mean, sum_dy, sum_dy_centred):
    """One block per ``q``: ``sum(dy)`` and ``sum(dy * (x - mean[q]))`` in float64."""
    first = cuda.shared.array(_REDUCE_CAPACITY, float64)
    second = cuda.shared.array(_REDUCE_CAPACITY, float64)
    q = cuda.blockIdx.x
    thread = cuda.threadIdx.x
    threads = cuda.blockDim.x
    batch, slices, length = x.shape
    if q >= slices:
        return
    centre = mean[q]
    total = 0.0
    centred = 0.0
    for i in range(thread, batch * length, threads):
        p, s = divmod(i, length)
        gradient = float64(dy[p, q, s])
        total += gradient
        centred += gradient * (float64(x[p, q, s]) - centre)
    total, centred = _block_sums(first, second, total, centred)
    if thread == 0:
        sum_dy[q] = total
        sum_dy_centred[q] = centred


@cuda.jit
def _scale_shift_kernel(x, scale, shift, out):
    """One thread per element: ``x * scale[q] + shift[q]`` in ``x``'s dtype."""
    position = cuda.grid(1)
    batch, slices, length = x.shape
    if position >= batch * slices * length:
        return
    rest, s = divmod(position, length)
    p, q = divmod(rest, slices)
    out[p, q, s] = x[p, q, s] * scale[q] + shift[q]


@cuda.jit
def _axpby_kernel(dy, x, a, b, c, out):
    """One thread per element: ``dy * a[q] + x * b[q] + c[q]`` in ``x``'s dtype."""
    position = cuda.grid(1)
    batch, slices, length = x.shape
    if position >= batch * slices * length:
        return
    rest, s = divmod(position, length)
    p, q = divmod(rest, slices)
    out[p, q, s] = dy[p, q, s] * a[q] + x[p, q, s] * b[q] + c[q]


@cuda.jit
def _layer_normalize_kernel(x, mean, rstd, weight, bias, has_weight, has_bias, out):
    """One thread per element: ``(x - mean[r]) * rstd[r] * weight[m] + bias[m]`` in float64."""
    position = cuda.grid(1)
    rows, width = x.shape
    if position >= rows * width:
        return
    r, m = divmod(position, width)
    value = (float64(x[r, m]) - mean[r]) * rstd[r]
    if has_weight:
        value = value * float64(weight[m])
    if has_bias:
        value = value + float64(bias[m])
    out[r, m] = value


@cuda.jit(device=True)
def _gradient(dy, weight, has_weight, row, m):
    """``g = dy * weight`` of one element, in float64."""
    if has_weight:
        return float64(dy[row, m]) * float64(weight[m])
    return float64(dy[row, m])


@cuda.jit
def _layer_norm_backward_kernel(dy, x, mean, rstd, weight, has_weight, lanes, grad_input,
                                grad_weight, grad_bias):
    """Blocks ``< rows``: one row's ``grad_input``; the rest: ``lanes`` columns' two sums."""
    first = cuda.shared.array(_REDUCE_CAPACITY, float64)
    second = cuda.shared.array(_REDUCE_CAPACITY, float64)
    block = cuda.blockIdx.x
    thread = cuda.threadIdx.x
    threads = cuda.blockDim.x
    rows, width = x.shape
    if block < rows:  # the block's role is uniform over it: every thread meets the barriers
        centre = mean[block]
        scale = rstd[block]
        sum_g = 0.0
        sum_g_xhat = 0.0
        for m in range(thread, width, threads):
            g = _gradient(dy, weight, has_weight, block, m)
            sum_g += g
            sum_g_xhat += g * ((float64(x[block, m]) - centre) * scale)
        sum_g, sum_g_xhat = _block_sums(first, second, sum_g, sum_g_xhat)
        for m in range(thread, width, threads):
            g = _gradient(dy, weight, has_weight, block, m)
            xhat = (float64(x[block, m]) - centre) * scale
            grad_input[block, m] = scale * (g - sum_g / width - xhat * sum_g_xhat / width)
        return
    groups = threads // lanes
    lane = thread % lanes
    group = thread // lanes
    m = (block - rows) * lanes + lane
    weight_sum = 0.0
    bias_sum = 0.0
    if m < width:
        for r in range(group, rows, groups):
            gradient = float64(dy[r, m])
            weight_sum += gradient * ((float64(x[r, m]) - mean[r]) * rstd[r])
            bias_sum += gradient
    first[thread] = weight_sum
    second[thread] = bias_sum
    cuda.syncthreads()
    stride = groups // 2
    while stride > 0:  # a tree over the row groups, lane by lane
        if group < stride:
            first[thread] += first[thread + stride * lanes]
            second[thread] += second[thread + stride * lanes]
        cuda.syncthreads()
        stride //= 2
    if group == 0 and m < width:
        grad_weight[m] = first[thread]
        grad_bias[m] = second[thread]


def _reduce_threads():
    threads = int(REDUCE_THREADS)
    if threads < 1 or threads & (threads - 1) or threads > _REDUCE_CAPACITY:
        raise ValueError(f"REDUCE_THREADS must be a power of two up to {_REDUCE_CAPACITY}, "
                         f"got {threads}")
    return threads


def moments(x):
    """Per ``q``: the mean over ``(p, s)`` and the sum of squared deviations from it.

    Parameters
    ----------
    x : ndarray or device array, shape (P, Q, S), float32 or float64

    Returns
    -------
    (array, array)
        ``mean`` and ``m2``, float64, shape ``(Q,)``.
    """
    slices = x.shape[1]
    mean = _device.empty((slices,), np.float64)
    m2 = _device.empty((slices,), np.float64)
    if slices:
        _moments_kernel[slices, _reduce_threads()](_device.to_device(x), mean, m2)
    return _device.finish(mean, x), _device.finish(m2, x)


def conv_bias_grad(grad):
    """``grad`` ``(N, F, D, H, W)`` summed over all axes but the channels: the bias gradient.

    Accumulated in float64 (a tree per channel), returned in ``grad``'s dtype.
    """
    channels = grad.shape[1]
    out = _device.empty((channels,), grad.dtype)
    if channels:
        view = _device.to_device(grad)
        if not view.is_c_contiguous():
            view = _arrays.copy(view)
        view = view.reshape((grad.shape[0], channels, -1))
        _sums_kernel[channels, _reduce_threads()](view, out)
    return _device.finish(out, grad)


def dot_moments(dy, x, mean):
    """Per ``q``: ``sum(dy)`` and ``sum(dy * (x - mean[q]))`` over ``(p, s)``, float64 ``(Q,)``."""
    slices = x.shape[1]
    sum_dy = _device.empty((slices,), np.float64)
    sum_dy_centred = _device.empty((slices,), np.float64)
    if slices:
        _dot_moments_kernel[slices, _reduce_threads()](
            _device.to_device(dy), _device.to_device(x), _device.to_device(mean), sum_dy,
            sum_dy_centred)
    return _device.finish(sum_dy, x), _device.finish(sum_dy_centred, x)


def scale_shift(x, scale, shift):
    """``x * scale[q] + shift[q]`` on a ``(P, Q, S)`` array, in its dtype."""
    out = _device.empty(x.shape, x.dtype)
    if out.size:
        blocks, threads = _device.grid_1d(out.size)
        _scale_shift_kernel[blocks, threads](_device.to_device(x), _device.to_device(scale),
                                             _device.to_device(shift), out)
    return _device.finish(out, x)


def axpby(dy, x, a, b, c):
    """``dy * a[q] + x * b[q] + c[q]`` on ``(P, Q, S)`` arrays, in ``x``'s dtype."""
    out = _device.empty(x.shape, x.dtype)
    if out.size:
        blocks, threads = _device.grid_1d(out.size)
        _axpby_kernel[blocks, threads](_device.to_device(dy), _device.to_device(x),
                                       _device.to_device(a), _device.to_device(b),
                                       _device.to_device(c), out)
    return _device.finish(out, x)


def _optional(values, dtype):
    """``(device array, present)``: a one-element stand-in (never read) for ``None``."""
    if values is None:
        return _device.empty((1,), dtype), False
    return _device.to_device(values), True


def layer_normalize(x, mean, rstd, weight, bias):
    """Per row ``r`` of ``(rows, width)`` ``x``: ``(x - mean[r]) * rstd[r] * weight + bias``.

    ``mean``/``rstd`` are float64 per row, ``weight``/``bias`` per column or
    None; computed in float64, returned in ``x``'s dtype.
    """
    out = _device.empty(x.shape, x.dtype)
    if out.size:
        weight, has_weight = _optional(weight, x.dtype)
        bias, has_bias = _optional(bias, x.dtype)
        blocks, threads = _device.grid_1d(out.size)
        _layer_normalize_kernel[blocks, threads](_device.to_device(x), _device.to_device(mean),
                                                 _device.to_device(rstd), weight, bias,
                                                 has_weight, has_bias, out)
    return _device.finish(out, x)


def layer_norm_backward(dy, x, mean, rstd, weight):
    """``(grad_input, sum_r dy * xhat, sum_r dy)`` for layer norm over the rows of ``x``.

    ``x``/``dy`` are ``(rows, width)``, ``mean``/``rstd`` float64 per row,
    ``weight`` per column or None.  ``grad_input`` has ``x``'s dtype, the
    column sums are float64 ``(width,)``.
    """
    rows, width = x.shape
    grad_input = _device.empty(x.shape, x.dtype)
    grad_weight = _device.empty((width,), np.float64)
    grad_bias = _device.empty((width,), np.float64)
    threads = _reduce_threads()
    lanes = threads // min(ROW_GROUPS, threads)
    blocks = rows + (-(-width // lanes) if width else 0)
    if blocks:
        weight, has_weight = _optional(weight, x.dtype)
        _layer_norm_backward_kernel[blocks, threads](
            _device.to_device(dy), _device.to_device(x), _device.to_device(mean),
            _device.to_device(rstd), weight, has_weight, lanes, grad_input, grad_weight,
            grad_bias)
    return (_device.finish(grad_input, x), _device.finish(grad_weight, x),
            _device.finish(grad_bias, x))
