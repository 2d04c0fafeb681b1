"""Direct 'valid' correlation: ``correlate_valid`` and the direct path of ``conv_forward``.

The method ("taps on a widened grid").  Flatten the input volume ``(D, H, W)``
and compute the output on the input's own grid: output position
``(z, y, x)`` lives at ``q = z*H*W + y*W + x``, and the kernel tap
``(a3, a, b)`` reads the input at ``q + a3*H*W + a*W + b``, a *constant*
offset.  A correlation is then a sum over taps of ``weight * x_flat[q +
offset]`` for ``q`` running over one long contiguous range, which
vectorises perfectly; the positions with ``y >= Ho`` or ``x >= Wo`` are
computed and dropped (a waste of ``(kh-1)/H + (kw-1)/W``).  Dilation only
changes the offsets; a sum over input channels (convolution) is more taps.

The layers:

* serial workers: :func:`_tile_worker` accumulates ``TILE_ROWS x TILE_COLS``
  consecutive positions over all taps in a stack tile that LLVM keeps in
  registers (float32/float64); :func:`_axpy_worker` does the same for any
  length and dtype with the accumulators in memory (integers, complex, tiny
  outputs); :func:`copy_valid` moves the valid positions to the output;
* :func:`correlate_taps`, the parallel driver: tasks are ranges of
  consecutive positions of one output volume (one thread writes all of a
  task's outputs), handed out dynamically;
* :func:`correlate_valid`, the thin wrapper of the entry point.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..._dispatch import Unsupported
from ._jit import fetch_add, jit, stack_empty

# A tile is TILE_ROWS x TILE_COLS consecutive positions held in registers:
# 16 zmm registers in float32 (32 in float64, which still measured best).
# Shapes with TILE_COLS < 64 made LLVM vectorise the wrong loop (gathers).
TILE_ROWS = 4
TILE_COLS = 64
TILE_SIZE = TILE_ROWS * TILE_COLS
# Positions per task: large enough to amortise the task and the halo rows that
# an implicitly padded task gathers (16 rows of 1024 for C1), small enough
# that the staging buffers stay in L2 and every thread gets several tasks.
# 4x smaller measured about 18 % slower in float64 and 10 % in float32 on C1
# with k = 3 (one side-by-side run, direct calls of the kernel).
MAX_TASK_POSITIONS = 64 * TILE_SIZE


@jit()  # not inlined: compiled alone, LLVM reliably keeps the tile in registers
def _tile_worker(x_flat, tap_offsets, tap_weights, stage):
    """``stage[j] = sum_t tap_weights[t] * x_flat[tap_offsets[t] + j]``, ``j < TILE_SIZE``.

    ``x_flat`` and ``stage`` are views that start at the tile's first
    position, so every index below is a loop counter plus a constant: LLVM
    then keeps the accumulators in registers and loads ``x_flat`` with
    contiguous vector loads.
    """
    acc = numba.carray(stack_empty(TILE_SIZE, stage.dtype), (TILE_ROWS, TILE_COLS))
    for row in range(TILE_ROWS):
        for col in range(TILE_COLS):
            acc[row, col] = 0
    for tap in range(tap_offsets.shape[0]):
        weight = tap_weights[tap]
        window = x_flat[tap_offsets[tap]:]
        for row in range(TILE_ROWS):
            for col in range(TILE_COLS):
                acc[row, col] += weight * window[row * TILE_COLS + col]
    for row in range(TILE_ROWS):
        for col in range(TILE_COLS):
            stage[row * TILE_COLS + col] = acc[row, col]


@jit(inline="always")
def _axpy_worker(x_flat, tap_offsets, tap_weights, stage, length):
    """:func:`_tile_worker` for ``length`` positions, accumulating in ``stage`` itself."""
    for position in range(length):
        stage[position] = 0
    for tap in range(tap_offsets.shape[0]):
        weight = tap_weights[tap]
        window = x_flat[tap_offsets[tap]:]
        for position in range(length):
            stage[position] += weight * window[position]


@jit(inline="always")
def copy_valid(stage, start, stop, bias, out_volume, width, height, out_height, out_width):
    """Copy widened-grid positions ``[start, stop)`` held in ``stage`` to the valid output.

    Widened row ``r = z * height + y`` holds positions ``r * width + x``;
    rows with ``y >= out_height`` and columns ``x >= out_width`` are dropped.
    """
    for row in range(start // width, (stop - 1) // width + 1):
        plane, y = divmod(row, height)
        if y >= out_height:
            continue
        row_start = row * width
        first = max(start, row_start) - row_start
        last = min(stop, row_start + out_width) - row_start
        if first >= last:
            continue
        source = stage[row_start + first - start:]
        target = out_volume[(plane * out_height + y) * out_width + first:]
        for x in range(last - first):
            target[x] = source[x] + bias


@jit(inline="always")
def gather_padded(source, source_shape, pad_before, fill, height, width, start, window):
    """``window[i] = padded[start + i]``: a range of the flattened, padded volume.

    ``source`` is the flattened unpadded ``(Ds, Hs, Ws)`` volume; the padded
    one has rows of ``width`` and planes of ``height`` rows, ``pad_before``
    elements before the source along each axis and ``fill`` everywhere
    outside it.  Only the task's window is materialised, never the whole
    padded volume.
    """
    source_depth, source_height, source_width = source_shape
    pad_depth, pad_height, pad_width = pad_before
    stop = start + window.shape[0]
    for row in range(start // width, (stop - 1) // width + 1):
        row_start = row * width
        first = max(start, row_start) - row_start  # columns [first, last) of this row
        last = min(stop, row_start + width) - row_start
        target = window[row_start + first - start:]
        plane, y = divmod(row, height)
        z = plane - pad_depth
        y -= pad_height
        inside = 0 <= z < source_depth and 0 <= y < source_height
        # Columns [copy_first, copy_last) come from the source row, the rest is fill.
        copy_first = min(max(first, pad_width), last) if inside else last
        copy_last = max(min(last, pad_width + source_width), copy_first) if inside else last
        # Loops count from 0 so that no index can be negative: numba then
        # omits its wraparound check and LLVM vectorises the copy.
        for x in range(copy_first - first):
            target[x] = fill
        if copy_last > copy_first:
            source_row = source[(z * source_height + y) * source_width + copy_first - pad_width:]
            copied = target[copy_first - first:]
            for x in range(copy_last - copy_first):
                copied[x] = source_row[x]
        filled = target[copy_last - first:]
        for x in range(last - copy_last):
            filled[x] = fill


@jit(parallel=True)
def correlate_taps(x_volumes, tap_offsets, tap_weights, bias, out, groups, use_tiles,
                   height, width, out_height, out_width, task_positions, threads,
                   source_shape=(0, 0, 0), pad_before=(0, 0, 0), fill=0):
    """Parallel driver: every output volume is a sum over taps of shifted input volumes.

    Parameters
    ----------
    x_volumes : ndarray, shape (N * groups, S * D * H * W)
        Flattened inputs; output volume ``(n, f)`` reads row
        ``n * groups + f // (F // groups)``.  With a ``source_shape``, the
        unpadded single-channel volumes ``(N, Ds * Hs * Ws)`` instead.
    tap_offsets : ndarray of intp, shape (T,)
        Offset of each tap in a flattened input row.
    tap_weights : ndarray, shape (F, T)
        Weight of each tap, per filter.
    bias : ndarray, shape (F,)
        Added to every output of a filter.
    out : ndarray, shape (N, F, Do * Ho * Wo)
        Written completely.
    groups : int
    use_tiles : bool
        Register tiles (float32/float64) or the plain loop (other dtypes).
    height, width, out_height, out_width : int
        Input ``H, W`` and output ``Ho, Wo``; ``Do`` follows from ``out``.
    task_positions : int
        Widened-grid positions per task (at least ``TILE_SIZE`` when tiles are used).
    threads : int
        ``numba.get_num_threads()``, passed in because calling it here would
        keep the compiled function out of the disk cache.
    source_shape, pad_before : 3-tuples of int, optional
        Implicit padding (one channel, ``groups == 1``): ``x_volumes`` holds
        the unpadded ``(Ds, Hs, Ws)`` volumes, ``pad_before`` elements of
        ``fill`` go before them along each axis and ``D, H, W`` are the
        padded sizes.  Each task pads only the window it reads
        (:func:`gather_padded`), so no padded copy of the input is made.
    fill : scalar, optional
        The padding value.
    """
    batch, filters, out_size = out.shape
    filters_per_group = filters // groups
    out_depth = out_size // (out_height * out_width)
    # Last valid position + 1 on the widened grid: reading x_flat beyond it
    # would run past the end of the input volume.
    positions = ((out_depth - 1) * height + out_height - 1) * width + out_width
    chunks = max(1, positions // task_positions)
    tasks = batch * filters * chunks
    implicit_padding = source_shape[2] > 0
    reach = tap_offsets.max() if implicit_padding else 0  # a window's extent beyond its task
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        # The last chunk of a volume also takes the remainder: < 2 chunks.
        stage = np.empty(2 * task_positions + TILE_SIZE, dtype=out.dtype)
        window = np.empty(2 * task_positions + reach if implicit_padding else 0, out.dtype)
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            volume, chunk = divmod(task, chunks)
            image, filter_index = divmod(volume, filters)
            x_flat = x_volumes[image * groups + filter_index // filters_per_group]
            weights = tap_weights[filter_index]
            start = chunk * task_positions
            stop = positions if chunk == chunks - 1 else start + task_positions
            length = stop - start
            read_start = start  # where the task's positions start in x_flat
            if implicit_padding:
                gather_padded(x_flat, source_shape, pad_before, fill, height, width, start,
                              window[:length + reach])
                x_flat = window
                read_start = 0
            if use_tiles and length >= TILE_SIZE:
                for tile in range(0, length, TILE_SIZE):
                    # The last tile is shifted back to end at `stop`; it
                    # recomputes a few positions of this same task.
                    tile_start = min(tile, length - TILE_SIZE)
                    _tile_worker(x_flat[read_start + tile_start:], tap_offsets, weights,
                                 stage[tile_start:])
            else:
                _axpy_worker(x_flat[read_start:], tap_offsets, weights, stage, length)
            copy_valid(stage, start, stop, bias[filter_index], out[image, filter_index],
                        width, height, out_height, out_width)
    return out


def task_positions_for(volumes: int, positions: int, tiles: bool) -> int:
    """Positions per task so that every thread gets a few tasks."""
    wanted_tasks = 8 * numba.get_num_threads()
    chunks_per_volume = max(1, -(-wanted_tasks // max(volumes, 1)))
    per_task = -(-positions // chunks_per_volume)
    if tiles:
        per_task = -(-per_task // TILE_SIZE) * TILE_SIZE
        return int(min(max(per_task, TILE_SIZE), MAX_TASK_POSITIONS))
    return int(min(max(per_task, 64), MAX_TASK_POSITIONS))


def tap_offsets_for(kernel_shape, plane_shape, dilation=(1, 1, 1)):
    """Flat input offsets of the taps of a ``(S, kd, kh, kw)`` kernel, in C order.

    ``plane_shape`` is the input's ``(D, H, W)``; channel ``s`` starts at
    ``s * D * H * W``.
    """
    depth, height, width = plane_shape
    channels, kernel_depth, kernel_height, kernel_width = kernel_shape
    s, a3, a, b = np.meshgrid(
        np.arange(channels), np.arange(kernel_depth) * dilation[0],
        np.arange(kernel_height) * dilation[1], np.arange(kernel_width) * dilation[2],
        indexing="ij",
    )
    offsets = ((s * depth + a3) * height + a) * width + b
    return np.ascontiguousarray(offsets.reshape(-1), dtype=np.intp)


def uses_tiles(dtype) -> bool:
    """Register tiles pay off (and compile quickly) for float32/float64 only."""
    return dtype in (np.float32, np.float64)


def correlate_valid(x, kernel):
    """N-d 'valid' cross-correlation ``out[i] = sum_j x[i + j] * kernel[j]``, no conjugation.

    Parameters
    ----------
    x : ndarray, 1 to 3 dimensions, C-contiguous
    kernel : ndarray, same ndim and dtype as ``x``, no larger than ``x``

    Returns
    -------
    ndarray, shape ``x.shape - kernel.shape + 1``, dtype of ``x``
        Integers wrap around as in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba import correlate_valid
    >>> correlate_valid(np.arange(5.0), np.array([1.0, 2.0]))
    array([ 2.,  5.,  8., 11.])
    """
    if x.ndim > 3:
        raise Unsupported("in1", f"ndim > 3 is not supported by the numba backend (got {x.ndim})")
    out_shape = tuple(n - k + 1 for n, k in zip(x.shape, kernel.shape))
    out = np.empty(out_shape, dtype=x.dtype)
    if out.size == 0:
        return out
    return _correlate_by_taps(x, kernel, out)


def correlate_padded(x, kernel, pad_width, fillvalue):
    """:func:`correlate_valid` of ``x`` padded with ``fillvalue``, without the padded copy.

    Parameters
    ----------
    x : ndarray, 1 to 3 dimensions, C-contiguous
    kernel : ndarray, same ndim and dtype as ``x``
    pad_width : sequence of (before, after) pairs of int >= 0, one per axis
    fillvalue : scalar of ``x``'s dtype

    Returns
    -------
    ndarray
        ``correlate_valid(np.pad(x, pad_width, constant_values=fillvalue), kernel)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba import correlate_padded
    >>> correlate_padded(np.arange(3.0), np.array([1.0, 1.0]), [(1, 1)], 0.0)
    array([0., 1., 3., 2.])
    """
    if x.ndim > 3:
        raise Unsupported("in1", f"ndim > 3 is not supported by the numba backend (got {x.ndim})")
    padded_shape = tuple(n + before + after for n, (before, after) in zip(x.shape, pad_width))
    out = np.empty(tuple(n - k + 1 for n, k in zip(padded_shape, kernel.shape)), dtype=x.dtype)
    if out.size == 0:
        return out
    lift = (1,) * (3 - x.ndim)
    pad_before = (0,) * (3 - x.ndim) + tuple(int(before) for before, _ in pad_width)
    return _correlate_by_taps(x, kernel, out, padded_shape,
                              implicit_padding=(lift + x.shape, pad_before, fillvalue))


def _correlate_by_taps(x, kernel, out, x_shape=None, implicit_padding=()):
    """Fill ``out`` with the widened-grid tap sum (:func:`correlate_taps`).

    ``x_shape`` is the shape of the (possibly padded) input the taps see;
    ``implicit_padding`` the ``(source_shape, pad_before, fill)`` of
    :func:`correlate_taps` when ``x`` is unpadded.
    """
    lift = (1,) * (3 - x.ndim)
    depth, height, width = lift + (x.shape if x_shape is None else x_shape)
    out_depth, out_height, out_width = lift + out.shape
    tiles = uses_tiles(x.dtype)
    correlate_taps(
        x.reshape(1, -1),
        tap_offsets_for((1,) + lift + kernel.shape, (depth, height, width)),
        kernel.reshape(1, -1),
        np.zeros(1, dtype=x.dtype),
        out.reshape(1, 1, -1),
        1, tiles, height, width, out_height, out_width,
        task_positions_for(1, (out_depth - 1) * height * width + out_height * width, tiles),
        numba.get_num_threads(),
        *implicit_padding,
    )
    return out
