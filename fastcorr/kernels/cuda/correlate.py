"""Correlation, convolution and im2col on the GPU (``numba.cuda``).

Every result element is written by exactly one thread, which sums all of its
terms itself in a fixed order: no atomics, so results are deterministic.
Sums are kept in the arrays' dtype, as in :mod:`fastcorr.kernels.naive`.

Launch layouts:

* :func:`_correlate_tiles` (``conv_forward``, and ``correlate_valid`` as a
  one-image, one-channel, one-filter convolution): one thread per output
  element of one ``(n, f, z)`` output plane, ``TILE x TILE`` threads per
  block (a row of ``THREADS_PER_BLOCK`` for outputs one element high or
  wide), planes along ``blockIdx.z``.  For each input channel and kernel
  depth the block stages the input tile its outputs read, halo included,
  in dynamic shared memory once; every thread then reads its
  ``kh x kw`` window from there (neighbouring windows overlap, so each
  staged element serves up to ``kh * kw / (sh * sw)`` threads).  Kernel taps
  are read from global memory: the whole block reads the same tap at once,
  a broadcast.  Kernels whose tile would not fit in ``SHARED_BYTES`` are
  cut into chunks of taps, one tile each; where even one tap's tile (large
  strides) does not fit, :func:`_correlate_direct` takes over: one thread
  per output element, reading the input from global memory.
* :func:`_unfold`: one thread per element of ``cols``; a copy, no reuse.
* :func:`_fold` and :func:`_conv_transpose`: one thread per element of the
  result, gathering its terms (the inverse of ``p = o * stride + k *
  dilation``) in the order the naive scatter adds them.
* :func:`_conv_weight_grad`: one block per weight element, a reduction over
  ``N * Do * Ho * Wo`` terms: each thread sums a strided share, then a tree
  in shared memory adds the partial sums in a fixed order.  Weights are few
  and their sums long (a first layer has thousands of weights but millions
  of terms each), so a thread per weight would leave most of the GPU idle.

Launch sizes are read from :mod:`._device` at every launch; kernels compile
on first use for the dtypes they meet.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..._dispatch import Unsupported
from ..._shapes import valid_shape
from . import _arrays, _device

# Budget of dynamic shared memory for one block's input tile: 48 KiB is the
# most a launch may ask for without opting in per kernel (untuned).
SHARED_BYTES = 48 * 1024
# The largest gridDim.z; the tile kernels loop over any further planes.
MAX_GRID_PLANES = 65535


@cuda.jit(device=True)
def _unravel5(index, shape):
    """The 5-D position of flat C-order ``index`` in an array of ``shape``."""
    i4 = index % shape[4]
    index //= shape[4]
    i3 = index % shape[3]
    index //= shape[3]
    i2 = index % shape[2]
    index //= shape[2]
    return index // shape[1], index % shape[1], i2, i3, i4


@cuda.jit(device=True)
def _source(position, tap, dilation, stride, count):
    """The output index ``o < count`` with ``o * stride + tap * dilation == position``, or -1."""
    offset = position - tap * dilation
    if offset < 0 or offset % stride != 0 or offset // stride >= count:
        return -1
    return offset // stride


@cuda.jit
def _correlate_tiles(x, weight, bias, out, stride, dilation, groups, chunk, use_bias, zero):
    """``out[n, f, o] = bias[f] + sum_{c, k} weight[f, c, k] * x[n, cin, o*stride + k*dilation]``.

    ``cin`` is channel ``c`` of filter ``f``'s group.  Input tiles are
    staged in dynamic shared memory of ``tile_h * tile_w`` elements (the
    launcher computes the same sizes); ``chunk`` = ``(rows, cols)`` of taps
    per tile.
    """
    tile = cuda.shared.array(0, dtype=x.dtype)
    batch, filters, out_depth, out_height, out_width = out.shape
    _, group_channels, kernel_depth, kernel_height, kernel_width = weight.shape
    height, width = x.shape[3], x.shape[4]
    stride_d, stride_h, stride_w = stride
    dilation_d, dilation_h, dilation_w = dilation
    chunk_h, chunk_w = chunk
    filters_per_group = filters // groups
    block_h, block_w = cuda.blockDim.y, cuda.blockDim.x
    thread = cuda.threadIdx.y * block_w + cuda.threadIdx.x
    tile_h = (block_h - 1) * stride_h + (chunk_h - 1) * dilation_h + 1
    tile_w = (block_w - 1) * stride_w + (chunk_w - 1) * dilation_w + 1
    row = cuda.blockIdx.y * block_h + cuda.threadIdx.y
    col = cuda.blockIdx.x * block_w + cuda.threadIdx.x
    inside = row < out_height and col < out_width
    first_row = cuda.blockIdx.y * block_h * stride_h  # input row of the block's first window
    first_col = cuda.blockIdx.x * block_w * stride_w
    window = cuda.threadIdx.y * stride_h * tile_w + cuda.threadIdx.x * stride_w
    # Every thread of a block runs the same loops (syncthreads inside).
    for plane in range(cuda.blockIdx.z, batch * filters * out_depth, cuda.gridDim.z):
        n = plane // (filters * out_depth)
        f = plane // out_depth % filters
        z = plane % out_depth
        first_channel = f // filters_per_group * group_channels
        total = bias[f] if use_bias else zero
        for c in range(group_channels):
            for a3 in range(kernel_depth):
                depth = z * stride_d + a3 * dilation_d
                for a0 in range(0, kernel_height, chunk_h):
                    for b0 in range(0, kernel_width, chunk_w):
                        top = first_row + a0 * dilation_h
                        left = first_col + b0 * dilation_w
                        for i in range(thread, tile_h * tile_w, block_h * block_w):
                            r = top + i // tile_w
                            q = left + i % tile_w
                            # Beyond the input only windows of threads outside the output reach.
                            if r < height and q < width:
                                tile[i] = x[n, first_channel + c, depth, r, q]
                            else:
                                tile[i] = zero
                        cuda.syncthreads()
                        if inside:
                            for a in range(min(chunk_h, kernel_height - a0)):
                                start = window + a * dilation_h * tile_w
                                for b in range(min(chunk_w, kernel_width - b0)):
                                    total += (weight[f, c, a3, a0 + a, b0 + b]
                                              * tile[start + b * dilation_w])
                        cuda.syncthreads()
        if inside:
            out[n, f, z, row, col] = total


@cuda.jit
def _correlate_direct(x, weight, bias, out, stride, dilation, groups, use_bias, zero):
    """:func:`_correlate_tiles` with one thread per output element reading global memory."""
    index = cuda.grid(1)
    if index >= out.size:
        return
    n, f, z, y, w = _unravel5(index, out.shape)
    _, group_channels, kernel_depth, kernel_height, kernel_width = weight.shape
    stride_d, stride_h, stride_w = stride
    dilation_d, dilation_h, dilation_w = dilation
    first_channel = f // (out.shape[1] // groups) * group_channels
    total = bias[f] if use_bias else zero
    for c in range(group_channels):
        for a3 in range(kernel_depth):
            for a in range(kernel_height):
                for b in range(kernel_width):
                    total += weight[f, c, a3, a, b] * x[
                        n, first_channel + c, z * stride_d + a3 * dilation_d,
                        y * stride_h + a * dilation_h, w * stride_w + b * dilation_w]
    out[n, f, z, y, w] = total


@cuda.jit
def _unfold(x, cols, kernel_size, dilation, stride, out_spatial):
    """``cols[n, c * K + k, l] = x[n, c, o(l) * stride + k * dilation]``."""
    index = cuda.grid(1)
    if index >= cols.size:
        return
    rows, length = cols.shape[1], cols.shape[2]
    column = index % length
    row = index // length % rows
    n = index // (length * rows)
    kernel_depth, kernel_height, kernel_width = kernel_size
    _, out_height, out_width = out_spatial
    taps = kernel_depth * kernel_height * kernel_width
    c, tap = row // taps, row % taps
    cols[n, row, column] = x[
        n, c,
        column // (out_height * out_width) * stride[0]
        + tap // (kernel_height * kernel_width) * dilation[0],
        column // out_width % out_height * stride[1] + tap // kernel_width % kernel_height
        * dilation[1],
        column % out_width * stride[2] + tap % kernel_width * dilation[2]]


@cuda.jit
def _fold(cols, out, kernel_size, dilation, stride, out_spatial, zero):
    """``out[n, c, p] = sum_k cols[n, c * K + k, l]``, ``l`` the window with tap ``k`` on ``p``."""
    index = cuda.grid(1)
    if index >= out.size:
        return
    n, c, z, y, w = _unravel5(index, out.shape)
    kernel_depth, kernel_height, kernel_width = kernel_size
    out_depth, out_height, out_width = out_spatial
    total = zero
    # Taps in descending order are windows in ascending order: the naive scatter's order.
    for a3 in range(kernel_depth - 1, -1, -1):
        oz = _source(z, a3, dilation[0], stride[0], out_depth)
        if oz < 0:
            continue
        for a in range(kernel_height - 1, -1, -1):
            oy = _source(y, a, dilation[1], stride[1], out_height)
            if oy < 0:
                continue
            for b in range(kernel_width - 1, -1, -1):
                ox = _source(w, b, dilation[2], stride[2], out_width)
                if ox < 0:
                    continue
                row = ((c * kernel_depth + a3) * kernel_height + a) * kernel_width + b
                total += cols[n, row, (oz * out_height + oy) * out_width + ox]
    out[n, c, z, y, w] = total


@cuda.jit
def _conv_transpose(grad, weight, out, stride, dilation, groups, zero):
    """``out[n, g*Cg + c, p] = sum_{f in g, k} weight[f, c, k] * grad[n, f, o]``, p = o*s + k*d."""
    index = cuda.grid(1)
    if index >= out.size:
        return
    n, channel, z, y, w = _unravel5(index, out.shape)
    filters, group_channels, kernel_depth, kernel_height, kernel_width = weight.shape
    out_depth, out_height, out_width = grad.shape[2], grad.shape[3], grad.shape[4]
    filters_per_group = filters // groups
    first_filter = channel // group_channels * filters_per_group
    c = channel % group_channels
    total = zero
    for f in range(first_filter, first_filter + filters_per_group):
        for a3 in range(kernel_depth - 1, -1, -1):
            oz = _source(z, a3, dilation[0], stride[0], out_depth)
            if oz < 0:
                continue
            for a in range(kernel_height - 1, -1, -1):
                oy = _source(y, a, dilation[1], stride[1], out_height)
                if oy < 0:
                    continue
                for b in range(kernel_width - 1, -1, -1):
                    ox = _source(w, b, dilation[2], stride[2], out_width)
                    if ox >= 0:
                        total += weight[f, c, a3, a, b] * grad[n, f, oz, oy, ox]
    out[n, channel, z, y, w] = total


@cuda.jit
def _conv_weight_grad(x, grad, out, stride, dilation, groups, zero):
    """``out[f, c, k] = sum_{n, o} grad[n, f, o] * x[n, g*Cg + c, o * stride + k * dilation]``.

    One block per weight element (``blockIdx.x``); dynamic shared memory of
    ``blockDim.x`` elements holds the threads' partial sums.
    """
    partial = cuda.shared.array(0, dtype=x.dtype)
    filters, group_channels, kernel_depth, kernel_height, kernel_width = out.shape
    f, c, a3, a, b = _unravel5(cuda.blockIdx.x, out.shape)
    batch, _, out_depth, out_height, out_width = grad.shape
    channel = f // (filters // groups) * group_channels + c
    positions = out_depth * out_height * out_width
    thread, threads = cuda.threadIdx.x, cuda.blockDim.x
    total = zero
    for term in range(thread, batch * positions, threads):
        n = term // positions
        o = term % positions
        oz = o // (out_height * out_width)
        oy = o // out_width % out_height
        ox = o % out_width
        total += grad[n, f, oz, oy, ox] * x[
            n, channel, oz * stride[0] + a3 * dilation[0], oy * stride[1] + a * dilation[1],
            ox * stride[2] + b * dilation[2]]
    partial[thread] = total
    cuda.syncthreads()
    size = threads
    while size > 1:  # halve the live partial sums, whatever blockDim.x is
        half = (size + 1) // 2
        if thread + half < size:
            partial[thread] += partial[thread + half]
        cuda.syncthreads()
        size = half
    if thread == 0:
        out[f, c, a3, a, b] = partial[0]


def _ints(values) -> tuple:
    return tuple(int(v) for v in values)


def _zero(dtype):
    """A zero of ``dtype``: the kernels' accumulators start from it, typed alike."""
    return np.dtype(dtype).type(0)


def _plane_launch(out_height: int, out_width: int, planes: int):
    """``(blocks, threads)`` of :func:`_correlate_tiles`: tiles, or one row/column of threads."""
    planes = min(planes, MAX_GRID_PLANES)
    threads = _device.THREADS_PER_BLOCK
    if out_height == 1:
        return (-(-out_width // threads), 1, planes), (threads, 1, 1)
    if out_width == 1:
        return (1, -(-out_height // threads), planes), (1, threads, 1)
    return _device.grid_2d(out_height, out_width, planes)


def _tile_plan(block, kernel, stride, dilation, itemsize):
    """``((rows, cols) of taps per tile, tile bytes)`` within ``SHARED_BYTES``, or None.

    ``block``, ``kernel``, ``stride``, ``dilation``: (height, width) pairs.
    The chunk whose taps span more of the tile is halved until the tile fits.
    """
    chunk = list(kernel)
    while True:
        spans = [(chunk[axis] - 1) * dilation[axis] for axis in (0, 1)]
        extent = [(block[axis] - 1) * stride[axis] + spans[axis] + 1 for axis in (0, 1)]
        size = extent[0] * extent[1] * itemsize
        if size <= SHARED_BYTES:
            return tuple(chunk), size
        axis = 0 if spans[0] >= spans[1] else 1
        if chunk[axis] == 1:  # one tap per tile, and still too large
            return None
        chunk[axis] = (chunk[axis] + 1) // 2


def _correlate_planes(x, weight, bias, out, stride, dilation, groups):
    """Launch the tile kernel on 5-D device arrays (the direct one where no tile fits)."""
    use_bias = bias is not None
    if not use_bias:
        bias = out.reshape(out.size)  # never read; any 1-D array of the dtype
    zero = _zero(out.dtype)
    batch, filters, out_depth, out_height, out_width = out.shape
    blocks, threads = _plane_launch(out_height, out_width, batch * filters * out_depth)
    plan = _tile_plan((threads[1], threads[0]), weight.shape[3:], stride[1:], dilation[1:],
                      out.dtype.itemsize)
    if plan is None:
        blocks, threads = _device.grid_1d(out.size)
        _correlate_direct[blocks, threads](x, weight, bias, out, stride, dilation, groups,
                                           use_bias, zero)
    else:
        chunk, shared_bytes = plan
        _correlate_tiles[blocks, threads, 0, shared_bytes](
            x, weight, bias, out, stride, dilation, groups, chunk, use_bias, zero)


def correlate_valid(x, kernel):
    """N-d 'valid' cross-correlation ``out[i] = sum_j x[i + j] * kernel[j]``, no conjugation.

    Parameters
    ----------
    x : ndarray or device array, 1 to 3 dimensions
    kernel : ndarray or device array, same ndim and dtype as ``x``, no larger

    Returns
    -------
    ndarray or device array (as ``x``), shape ``x.shape - kernel.shape + 1``, dtype of ``x``

    Raises
    ------
    Unsupported
        ``'ndim'`` for more than 3 dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.cuda.correlate import correlate_valid
    >>> correlate_valid(np.arange(5.0), np.array([1.0, 2.0]))
    array([ 2.,  5.,  8., 11.])
    """
    if x.ndim > 3:
        raise Unsupported("ndim", f"the cuda backend correlates 1 to 3 dimensions, got {x.ndim}")
    out_shape = tuple(n - k + 1 for n, k in zip(x.shape, kernel.shape))
    out = _device.empty(out_shape, x.dtype)
    if out.size:
        _correlate_planes(_arrays.lift(_device.to_device(x), 5),
                          _arrays.lift(_device.to_device(kernel), 5),
                          None, out.reshape((1, 1) + (1,) * (3 - x.ndim) + out_shape),
                          (1, 1, 1), (1, 1, 1), 1)
    return _device.finish(out, x)


def conv_forward(x, weight, bias, stride, dilation, groups):
    """Grouped, strided, dilated correlation of a padded ``(N, C, D, H, W)`` batch.

    Parameters
    ----------
    x : ndarray or device array, shape (N, C, D, H, W)
    weight : ndarray or device array, shape (F, C // groups, kd, kh, kw), dtype of ``x``
    bias : ndarray or device array of shape (F,), or None
    stride, dilation : 3-tuples of int
    groups : int

    Returns
    -------
    ndarray or device array (as ``x``), shape (N, F, Do, Ho, Wo), dtype of ``x``
    """
    stride, dilation = _ints(stride), _ints(dilation)
    out_spatial = valid_shape(x.shape[2:], weight.shape[2:], dilation, stride)
    out = _device.empty((x.shape[0], weight.shape[0]) + out_spatial, x.dtype)
    if out.size:
        _correlate_planes(_device.to_device(x), _device.to_device(weight),
                          _device.to_device(bias), out, stride, dilation, int(groups))
    return _device.finish(out, x)


def unfold(x, kernel_size, dilation, stride):
    """im2col of a padded batch, in ``torch.nn.functional.unfold``'s layout.

    Parameters
    ----------
    x : ndarray or device array, shape (N, C, D, H, W)
    kernel_size, dilation, stride : 3-tuples of int

    Returns
    -------
    ndarray or device array (as ``x``), shape (N, C * kd * kh * kw, Do * Ho * Wo)
        Rows ordered (c, kd, kh, kw), columns the output positions in C order.
    """
    kernel_size, dilation, stride = _ints(kernel_size), _ints(dilation), _ints(stride)
    out_spatial = valid_shape(x.shape[2:], kernel_size, dilation, stride)
    cols = _device.empty((x.shape[0], x.shape[1] * int(np.prod(kernel_size)),
                          int(np.prod(out_spatial))), x.dtype)
    if cols.size:
        blocks, threads = _device.grid_1d(cols.size)
        _unfold[blocks, threads](_device.to_device(x), cols, kernel_size, dilation, stride,
                                 out_spatial)
    return _device.finish(cols, x)


def fold(cols, size, kernel_size, dilation, stride):
    """col2im, the adjoint of :func:`unfold`: overlapping window elements add up.

    Parameters
    ----------
    cols : ndarray or device array, shape (N, C * kd * kh * kw, L)
    size : 3-tuple of int
        The padded spatial size ``(D, H, W)`` of the result.
    kernel_size, dilation, stride : 3-tuples of int

    Returns
    -------
    ndarray or device array (as ``cols``), shape (N, C, D, H, W), dtype of ``cols``
    """
    size, kernel_size = _ints(size), _ints(kernel_size)
    dilation, stride = _ints(dilation), _ints(stride)
    channels = cols.shape[1] // int(np.prod(kernel_size))
    out = _device.empty((cols.shape[0], channels) + size, cols.dtype)
    if out.size:
        blocks, threads = _device.grid_1d(out.size)
        _fold[blocks, threads](_device.to_device(cols), out, kernel_size, dilation, stride,
                               valid_shape(size, kernel_size, dilation, stride),
                               _zero(out.dtype))
    return _device.finish(out, cols)


def conv_transpose(grad, weight, stride, dilation, groups, size):
    """The adjoint of :func:`conv_forward` in ``x``.

    Parameters
    ----------
    grad : ndarray or device array, shape (N, F, Do, Ho, Wo)
    weight : ndarray or device array, shape (F, C // groups, kd, kh, kw), dtype of ``grad``
    stride, dilation : 3-tuples of int
    groups : int
    size : 3-tuple of int
        The padded input's spatial size.

    Returns
    -------
    ndarray or device array (as ``grad``), shape (N, C, *size), dtype of ``grad``
    """
    stride, dilation, size = _ints(stride), _ints(dilation), _ints(size)
    out = _device.empty((grad.shape[0], weight.shape[1] * int(groups)) + size, grad.dtype)
    if out.size:
        blocks, threads = _device.grid_1d(out.size)
        _conv_transpose[blocks, threads](_device.to_device(grad), _device.to_device(weight), out,
                                         stride, dilation, int(groups), _zero(out.dtype))
    return _device.finish(out, grad)


def conv_weight_grad(x, grad, kernel_size, stride, dilation, groups):
    """The adjoint of :func:`conv_forward` in ``weight``.

    Parameters
    ----------
    x : ndarray or device array, shape (N, C, D, H, W)
        The padded input.
    grad : ndarray or device array, shape (N, F, Do, Ho, Wo), dtype of ``x``
    kernel_size, stride, dilation : 3-tuples of int
    groups : int

    Returns
    -------
    ndarray or device array (as ``x``), shape (F, C // groups, kd, kh, kw), dtype of ``x``
    """
    kernel_size, stride, dilation = _ints(kernel_size), _ints(stride), _ints(dilation)
    shape = (grad.shape[1], x.shape[1] // int(groups)) + kernel_size
    terms = grad.shape[0] * int(np.prod(grad.shape[2:]))
    if terms == 0:  # nothing to sum: zeros, and no kernel meets an empty array
        out = _device.to_device(np.zeros(shape, dtype=x.dtype))
        return _device.finish(out, x)
    out = _device.empty(shape, x.dtype)
    if out.size:
        threads = min(_device.THREADS_PER_BLOCK, terms)
        _conv_weight_grad[out.size, threads, 0, threads * out.dtype.itemsize](
            _device.to_device(x), _device.to_device(grad), out, stride, dilation, int(groups),
            _zero(out.dtype))
    return _device.finish(out, x)
