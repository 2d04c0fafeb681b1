"""Pooling on the GPU: max and average over :class:`fastcorr.pool.Windows` tables.

The three dimensions' tables go to the device packed: ``windows[k, 0, o]``
and ``windows[k, 1, o]`` are output ``o``'s first input position and its
number of taps along dimension ``k`` (d, h, w), ``reciprocals[k, o]`` its
``1 / divisor`` (inf for a zero divisor: ``0 * inf`` is NumPy's ``0 / 0``).

Kernels and their launch layouts:

* ``_max_pool_kernel``, ``_avg_pool_kernel``: one thread per output element
  (1-D grid of ``_device.THREADS_PER_BLOCK``), walking its window's taps in
  ``(d, h, w)`` order; the average sums in float64.  An output owns its
  cells, so nothing is shared.
* ``_avg_pool_backward_kernel``: one thread per *input* element (a gather:
  no two threads write one cell, no atomics).  ``cover[k, 0, i]`` to
  ``cover[k, 1, i]`` bound the outputs whose windows along ``k`` contain
  position ``i`` (computed on the host); the thread adds those outputs'
  shares in ``(od, oh, ow)`` order, in float64.
* ``_max_pool_backward_kernel``: one block of ``PLANE_THREADS`` per
  ``(n, c)`` plane.  ``indices`` are all the kernel has (no windows), so
  the block streams the plane's outputs through shared memory in chunks,
  in order; thread ``t`` owns the input cells ``i % blockDim == t`` and
  adds the gradient of every output whose index is one of them.  Each cell
  has one writer, and sums in output order, as the CPU backends do.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, int64

from . import _device

# Threads per block of max_pool_backward (one block per plane).  Read at every
# launch; the tests shrink it.  Must be a power of two, at most _PLANE_CAPACITY.
PLANE_THREADS = 128
# Size of that kernel's shared chunk buffers, fixed when the kernel compiles.
_PLANE_CAPACITY = PLANE_THREADS


@cuda.jit
def _max_pool_kernel(x, windows, step_d, step_h, step_w, values, indices):
    """One thread per output: its window's maximum, NaN winning, and the flat index."""
    position = cuda.grid(1)
    batch, channels, out_depth, out_height, out_width = values.shape
    if position >= batch * channels * out_depth * out_height * out_width:
        return
    height, width = x.shape[3], x.shape[4]
    rest, ow = divmod(position, out_width)
    rest, oh = divmod(rest, out_height)
    plane, od = divmod(rest, out_depth)
    n, c = divmod(plane, channels)
    best = -math.inf
    best_index = -1  # stays -1 for a window of padding only
    for td in range(windows[0, 1, od]):
        d = windows[0, 0, od] + td * step_d
        for th in range(windows[1, 1, oh]):
            h = windows[1, 0, oh] + th * step_h
            for tw in range(windows[2, 1, ow]):
                w = windows[2, 0, ow] + tw * step_w
                value = x[n, c, d, h, w]
                # torch's choice: the first maximum, or the last NaN.
                if best_index < 0 or value > best or value != value:
                    best = value
                    best_index = (d * height + h) * width + w
    values[n, c, od, oh, ow] = best
    indices[n, c, od, oh, ow] = best_index


@cuda.jit
def _avg_pool_kernel(x, windows, step_d, step_h, step_w, reciprocals, out):
    """One thread per output: its window's sum in float64 times its ``1 / divisor``."""
    position = cuda.grid(1)
    batch, channels, out_depth, out_height, out_width = out.shape
    if position >= batch * channels * out_depth * out_height * out_width:
        return
    rest, ow = divmod(position, out_width)
    rest, oh = divmod(rest, out_height)
    plane, od = divmod(rest, out_depth)
    n, c = divmod(plane, channels)
    total = 0.0
    for td in range(windows[0, 1, od]):
        d = windows[0, 0, od] + td * step_d
        for th in range(windows[1, 1, oh]):
            h = windows[1, 0, oh] + th * step_h
            for tw in range(windows[2, 1, ow]):
                total += float64(x[n, c, d, h, windows[2, 0, ow] + tw * step_w])
    out[n, c, od, oh, ow] = total * (reciprocals[0, od] * reciprocals[1, oh] * reciprocals[2, ow])


@cuda.jit(device=True)
def _tap(windows, k, o, position, step):
    """Whether output ``o``'s window along dimension ``k`` reads input ``position``."""
    offset = position - windows[k, 0, o]
    return offset >= 0 and offset % step == 0 and offset // step < windows[k, 1, o]


@cuda.jit
def _avg_pool_backward_kernel(grad_output, windows, step_d, step_h, step_w, reciprocals, cover,
                              grad_input):
    """One thread per input: the shares of the outputs whose windows hold it, in order."""
    position = cuda.grid(1)
    batch, channels, depth, height, width = grad_input.shape
    if position >= batch * channels * depth * height * width:
        return
    rest, w = divmod(position, width)
    rest, h = divmod(rest, height)
    plane, d = divmod(rest, depth)
    n, c = divmod(plane, channels)
    total = 0.0
    for od in range(cover[0, 0, d], cover[0, 1, d]):
        if not _tap(windows, 0, od, d, step_d):
            continue
        for oh in range(cover[1, 0, h], cover[1, 1, h]):
            if not _tap(windows, 1, oh, h, step_h):
                continue
            row_reciprocal = reciprocals[0, od] * reciprocals[1, oh]
            for ow in range(cover[2, 0, w], cover[2, 1, w]):
                if _tap(windows, 2, ow, w, step_w):
                    share = row_reciprocal * reciprocals[2, ow]
                    total += float64(grad_output[n, c, od, oh, ow]) * share
    grad_input[n, c, d, h, w] = total


@cuda.jit
def _max_pool_backward_kernel(grad_output, indices, grad_input):
    """One block per plane; its outputs stream through shared memory, in order.

    Thread ``t`` owns the cells ``i % blockDim == t``: it zeroes them and adds
    every output whose index is one of them.  ``grad_output``/``indices`` are
    ``(planes, outputs)``, ``grad_input`` ``(planes, plane_size)``.
    """
    chunk_index = cuda.shared.array(_PLANE_CAPACITY, int64)
    chunk_value = cuda.shared.array(_PLANE_CAPACITY, float64)
    plane = cuda.blockIdx.x
    thread = cuda.threadIdx.x
    threads = cuda.blockDim.x
    outputs = grad_output.shape[1]
    plane_size = grad_input.shape[1]
    if plane >= grad_output.shape[0]:  # uniform over the block: no barrier is skipped by some
        return
    for cell in range(thread, plane_size, threads):
        grad_input[plane, cell] = 0
    for start in range(0, outputs, threads):
        cuda.syncthreads()  # the previous chunk has been read by every thread
        if start + thread < outputs:
            chunk_index[thread] = indices[plane, start + thread]
            chunk_value[thread] = grad_output[plane, start + thread]
        else:
            chunk_index[thread] = -1
            chunk_value[thread] = 0.0
        cuda.syncthreads()
        for j in range(threads):
            cell = chunk_index[j]
            if cell >= 0 and cell < plane_size and cell % threads == thread:  # -1: only padding
                grad_input[plane, cell] += chunk_value[j]


def _pack(windows):
    """``(table, steps, reciprocals)``: the three tables as one int64 and one float64 array."""
    longest = max(1, max(len(w.first) for w in windows))
    table = np.zeros((3, 2, longest), dtype=np.int64)
    reciprocals = np.zeros((3, longest), dtype=np.float64)
    for k, w in enumerate(windows):
        count = len(w.first)
        table[k, 0, :count] = w.first
        table[k, 1, :count] = w.taps
        with np.errstate(divide="ignore"):
            reciprocals[k, :count] = 1.0 / np.asarray(w.divisor, dtype=np.float64)
    return table, tuple(int(w.step) for w in windows), reciprocals


def _cover(windows, in_spatial):
    """``cover[k, :, i]``: ``[first, stop)`` of the outputs whose windows along ``k`` read ``i``."""
    longest = max(1, max(int(n) for n in in_spatial))
    cover = np.zeros((3, 2, longest), dtype=np.int64)
    for k, (w, size) in enumerate(zip(windows, in_spatial)):
        taps = np.asarray(w.taps, dtype=np.int64)
        count = len(taps)
        owner = np.repeat(np.arange(count, dtype=np.int64), taps)
        tap = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(taps) - taps, taps)
        position = np.asarray(w.first, dtype=np.int64)[owner] + tap * int(w.step)
        low = np.full(int(size), count, dtype=np.int64)
        high = np.zeros(int(size), dtype=np.int64)
        np.minimum.at(low, position, owner)
        np.maximum.at(high, position, owner + 1)
        cover[k, 0, :size] = np.minimum(low, high)
        cover[k, 1, :size] = high
    return cover


def _out_shape(x, windows):
    return tuple(x.shape[:2]) + tuple(len(w.first) for w in windows)


def max_pool(x, windows):
    """Window maxima and the flat ``(d * H + h) * W + w`` index of each, as torch picks them.

    Parameters
    ----------
    x : ndarray or device array, shape (N, C, D, H, W), float32 or float64
    windows : tuple of 3 :class:`fastcorr.pool.Windows`
        One table per spatial dimension.

    Returns
    -------
    (array, array)
        Values of ``x``'s dtype and int64 indices, shape ``(N, C, Do, Ho, Wo)``;
        NaN wins, and a window of padding only gives ``-inf`` at index -1.
    """
    out_shape = _out_shape(x, windows)
    values = _device.empty(out_shape, x.dtype)
    indices = _device.empty(out_shape, np.int64)
    count = math.prod(out_shape)
    if count:
        table, (step_d, step_h, step_w), _ = _pack(windows)
        blocks, threads = _device.grid_1d(count)
        _max_pool_kernel[blocks, threads](_device.to_device(x), _device.to_device(table),
                                          step_d, step_h, step_w, values, indices)
    return _device.finish(values, x), _device.finish(indices, x)


def avg_pool(x, windows):
    """Window sums (in float64) divided by the product of the dimensions' divisors.

    Parameters and result as in :func:`max_pool`, values only.
    """
    out_shape = _out_shape(x, windows)
    out = _device.empty(out_shape, x.dtype)
    count = math.prod(out_shape)
    if count:
        table, (step_d, step_h, step_w), reciprocals = _pack(windows)
        blocks, threads = _device.grid_1d(count)
        _avg_pool_kernel[blocks, threads](_device.to_device(x), _device.to_device(table),
                                          step_d, step_h, step_w,
                                          _device.to_device(reciprocals), out)
    return _device.finish(out, x)


def _plane_threads():
    threads = int(PLANE_THREADS)
    if threads < 1 or threads & (threads - 1) or threads > _PLANE_CAPACITY:
        raise ValueError(f"PLANE_THREADS must be a power of two up to {_PLANE_CAPACITY}, "
                         f"got {threads}")
    return threads


def max_pool_backward(grad_output, indices, in_spatial):
    """Each output's gradient added at its maximum's flat index in its plane.

    ``grad_output`` and ``indices`` are ``(N, C, Do, Ho, Wo)``; the result is
    ``(N, C, *in_spatial)`` of ``grad_output``'s dtype.  Index -1 (a window
    of padding only) passes nothing back.
    """
    batch, channels = grad_output.shape[:2]
    in_spatial = tuple(int(n) for n in in_spatial)
    grad_input = _device.empty((batch, channels) + in_spatial, grad_output.dtype)
    planes = batch * channels
    plane_size = math.prod(in_spatial)
    if planes and plane_size:
        outputs = math.prod(grad_output.shape[2:])
        grad = _device.to_device(grad_output).reshape(planes, outputs)
        where = _device.to_device(indices).reshape(planes, outputs)
        _max_pool_backward_kernel[planes, _plane_threads()](
            grad, where, grad_input.reshape(planes, plane_size))
    return _device.finish(grad_input, grad_output)


def avg_pool_backward(grad_output, windows, in_spatial):
    """Each output's gradient, divided by its divisor, added to every input of its window.

    ``grad_output`` is ``(N, C, Do, Ho, Wo)``; the result ``(N, C, *in_spatial)``
    of its dtype, each input's shares summed in float64.
    """
    batch, channels = grad_output.shape[:2]
    in_spatial = tuple(int(n) for n in in_spatial)
    grad_input = _device.empty((batch, channels) + in_spatial, grad_output.dtype)
    count = batch * channels * math.prod(in_spatial)
    if count:
        table, (step_d, step_h, step_w), reciprocals = _pack(windows)
        blocks, threads = _device.grid_1d(count)
        _avg_pool_backward_kernel[blocks, threads](
            _device.to_device(grad_output), _device.to_device(table), step_d, step_h, step_w,
            _device.to_device(reciprocals), _device.to_device(_cover(windows, in_spatial)),
            grad_input)
    return _device.finish(grad_input, grad_output)
