"""The register-blocked GEMM micro-kernel shared by both convolution algorithms.

``tile[f, p] = sum_k weights[k, f] * source[row_offsets[k] + p]`` for a
``FILTER_BLOCK x PANEL_WIDTH`` tile: ``FILTER_BLOCK`` filters times
``PANEL_WIDTH`` consecutive output positions.  Row ``k`` of the right-hand
operand is any contiguous run of ``source``: a row of a packed im2col panel
('gemm') or the input itself shifted by the offset of tap ``k`` ('direct',
an implicit GEMM that needs no packing at all).
"""

from __future__ import annotations

import numba
import numpy as np

from ._jit import jit, stack_empty

# 4 x 64 accumulators are 16 zmm registers in float32 (32 in float64), and
# each k step is 4 broadcasts + 4 (8) loads for 16 (32) FMAs.  Tiles with
# fewer than 64 columns made LLVM vectorise the wrong loop (gathers).
FILTER_BLOCK = 4
PANEL_WIDTH = 64
MICRO_TILE = FILTER_BLOCK * PANEL_WIDTH


@jit()
def micro_kernel(weight_panel, source, row_offsets, tile):
    """``tile[f, p] = sum_k weight_panel[k, f] * source[row_offsets[k] + p]``.

    Parameters
    ----------
    weight_panel : ndarray, shape (K, FILTER_BLOCK)
    source : 1-d ndarray
        Starts at the tile's first position.
    row_offsets : ndarray of intp, shape (K,)
    tile : ndarray, shape (FILTER_BLOCK, PANEL_WIDTH), overwritten

    Notes
    -----
    The accumulators live in a stack tile indexed only by constants, so
    LLVM keeps them in registers.  This function is deliberately not
    inlined by numba: compiled on its own, LLVM unrolls and promotes it
    reliably; inlined into a large driver it did not (accumulators spilled
    to memory, 4x slower).  Bounds and bias are the caller's business, for
    the same reason.
    """
    acc = numba.carray(stack_empty(MICRO_TILE, tile.dtype), (FILTER_BLOCK, PANEL_WIDTH))
    for row in range(FILTER_BLOCK):
        for col in range(PANEL_WIDTH):
            acc[row, col] = 0
    for k in range(row_offsets.shape[0]):
        window = source[row_offsets[k]:]
        for row in range(FILTER_BLOCK):
            weight = weight_panel[k, row]
            for col in range(PANEL_WIDTH):
                acc[row, col] += weight * window[col]
    for row in range(FILTER_BLOCK):
        for col in range(PANEL_WIDTH):
            tile[row, col] = acc[row, col]


def pack_weights(weight, groups):
    """Weights as ``(groups, filter_blocks, K, FILTER_BLOCK)`` micro-kernel panels.

    ``K = C/groups * kd*kh*kw`` in (c, kd, kh, kw) order.  Filter ``f`` of a
    group is column ``f % FILTER_BLOCK`` of block ``f // FILTER_BLOCK``;
    missing filters of the last block are zeros.  Small (the size of the
    weights), so NumPy does it.
    """
    filters = weight.shape[0]
    filters_per_group = filters // groups
    rows = weight[0].size
    blocks = -(-filters_per_group // FILTER_BLOCK)
    panels = np.zeros((groups, blocks * FILTER_BLOCK, rows), dtype=weight.dtype)
    panels[:, :filters_per_group] = weight.reshape(groups, filters_per_group, rows)
    panels = panels.reshape(groups, blocks, FILTER_BLOCK, rows).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(panels)
