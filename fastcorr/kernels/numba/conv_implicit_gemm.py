"""The 'implicit_gemm' convolution algorithm: a GEMM on the widened grid, stride 1.

As in :mod:`.correlate`, output position ``(z, y, x)`` is computed at
``q = (z*H + y)*W + x`` of the input's own grid, so input channel ``c`` and
tap ``(a3, a, b)`` read the input at the constant offset
``((c*D + a3*d0)*H + a*d1)*W + b*d2`` from ``q``.  The im2col matrix is
then the input itself seen through those offsets: the micro-kernel reads
its rows straight from ``x`` (no packing), ``FILTER_BLOCK`` filters times
``PANEL_WIDTH`` consecutive positions per tile.  The positions with
``y >= Ho`` or ``x >= Wo`` are computed and dropped; dilation is free,
strides are not possible (use 'gemm').
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import fetch_add, jit
from ._microkernel import FILTER_BLOCK, PANEL_WIDTH, micro_kernel
from .correlate import copy_valid

# Positions per task: a task's input window (C/groups channels x these
# positions plus the kernel's halo) should stay in L2 across filter blocks.
MAX_TASK_POSITIONS = 16 * PANEL_WIDTH


@jit(parallel=True)
def conv_implicit_gemm(x_volumes, weight_panels, tap_offsets, bias, out, height, width, out_height,
                out_width, task_positions, threads):
    """Parallel driver: tasks are (image, group, range of widened-grid positions).

    Parameters
    ----------
    x_volumes : ndarray, shape (N * groups, C/groups * D * H * W)
        Each image's channels of each group, flattened.
    weight_panels : ndarray, shape (groups, filter_blocks, T, FILTER_BLOCK)
        From :func:`._microkernel.pack_weights`.
    tap_offsets : ndarray of intp, shape (T,)
        Offset of each (channel, tap) in a row of ``x_volumes``.
    bias : ndarray, shape (F,)
        Zeros when the convolution has none.
    out : ndarray, shape (N, F, Do * Ho * Wo), written completely
    height, width, out_height, out_width : int
        Input ``H, W``; output ``Ho, Wo``.
    task_positions : int
        Positions per task, a multiple of ``PANEL_WIDTH``; the widened grid
        must hold at least ``PANEL_WIDTH`` positions.
    threads : int
        ``numba.get_num_threads()`` (calling it here would defeat the disk cache).
    """
    batch, filters, out_size = out.shape
    groups, filter_blocks, _, _ = weight_panels.shape
    filters_per_group = filters // groups
    out_depth = out_size // (out_height * out_width)
    positions = ((out_depth - 1) * height + out_height - 1) * width + out_width
    chunks = max(1, positions // task_positions)
    tasks = batch * groups * chunks
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        tile = np.empty((FILTER_BLOCK, PANEL_WIDTH), dtype=out.dtype)
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            volume, chunk = divmod(task, chunks)
            image, group = divmod(volume, groups)
            x_flat = x_volumes[volume]
            start = chunk * task_positions
            stop = positions if chunk == chunks - 1 else start + task_positions
            for block in range(filter_blocks):
                first_filter = group * filters_per_group + block * FILTER_BLOCK
                block_filters = min(FILTER_BLOCK, filters_per_group - block * FILTER_BLOCK)
                for tile_index in range(start, stop, PANEL_WIDTH):
                    # The last tile is shifted back to end at `stop`: it
                    # recomputes a few positions of this same task.
                    tile_start = min(tile_index, stop - PANEL_WIDTH)
                    micro_kernel(weight_panels[group, block], x_flat[tile_start:], tap_offsets,
                                 tile)
                    for row in range(block_filters):
                        filter_index = first_filter + row
                        copy_valid(tile[row], tile_start, tile_start + PANEL_WIDTH,
                                   bias[filter_index], out[image, filter_index],
                                   width, height, out_height, out_width)
    return out


def implicit_gemm_task_positions(volumes: int, positions: int, threads: int) -> int:
    """Positions per task: a multiple of ``PANEL_WIDTH``, several tasks per thread."""
    chunks_per_volume = max(1, -(-8 * threads // max(volumes, 1)))
    per_task = -(-positions // chunks_per_volume)
    per_task = -(-per_task // PANEL_WIDTH) * PANEL_WIDTH
    return int(min(max(per_task, PANEL_WIDTH), MAX_TASK_POSITIONS))
