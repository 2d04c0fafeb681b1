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
# Positions per task: large enough to amortise the task, small enough that
# the staging buffer stays in L1 and every thread gets several tasks.
MAX_TASK_POSITIONS = 16 * TILE_SIZE


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


@jit(parallel=True)
def correlate_taps(x_volumes, tap_offsets, tap_weights, bias, out, groups, use_tiles,
                   height, width, out_height, out_width, task_positions, threads):
    """Parallel driver: every output volume is a sum over taps of shifted input volumes.

    Parameters
    ----------
    x_volumes : ndarray, shape (N * groups, S * D * H * W)
        Flattened inputs; output volume ``(n, f)`` reads row
        ``n * groups + f // (F // groups)``.
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
    """
    batch, filters, out_size = out.shape
    filters_per_group = filters // groups
    out_depth = out_size // (out_height * out_width)
    # Last valid position + 1 on the widened grid: reading x_flat beyond it
    # would run past the end of the input volume.
    positions = ((out_depth - 1) * height + out_height - 1) * width + out_width
    chunks = max(1, positions // task_positions)
    tasks = batch * filters * chunks
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        # The last chunk of a volume also takes the remainder: < 2 chunks.
        stage = np.empty(2 * task_positions + TILE_SIZE, dtype=out.dtype)
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
            if use_tiles and length >= TILE_SIZE:
                for tile in range(0, length, TILE_SIZE):
                    # The last tile is shifted back to end at `stop`; it
                    # recomputes a few positions of this same task.
                    tile_start = min(tile, length - TILE_SIZE)
                    _tile_worker(x_flat[start + tile_start:], tap_offsets, weights,
                                 stage[tile_start:])
            else:
                _axpy_worker(x_flat[start:], tap_offsets, weights, stage, length)
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
    >>> from fastcorr.backends.numba import correlate_valid
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


def _correlate_by_taps(x, kernel, out):
    """Fill ``out`` with the widened-grid tap sum (:func:`correlate_taps`)."""
    lift = (1,) * (3 - x.ndim)
    depth, height, width = lift + x.shape
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
    )
    return out
