"""Normalisation kernels on ``(P, Q, S)`` views (see :mod:`fastcorr.norm`).

Reductions (``moments``, ``dot_moments``, the row sums of
``layer_norm_backward``) cut the work into *units*, one chunk of at most
``CHUNK`` elements of one slice ``x[p, q, :]``, numbered ``q`` first.
The units are split into a few contiguous *tasks* per thread (handed out
dynamically, see :func:`._jit.fetch_add`); each task folds its units into
its own row of per-``q`` partial results, and the rows are merged in task
order at the end.  So batch norm's few channels, instance norm's many small
slices and a single huge layer-norm row all split evenly; there are no
atomics on results, and the same thread count gives the same bits.

Moments stay accurate in float32 whatever the mean: each chunk sums the
deviations from its first element and their squares (one pass, see
:func:`_chunk_shifted_sums`); chunks and tasks merge with Chan et al.'s
pairwise update (``m2 = m2_a + m2_b + delta**2 * n_a * n_b / n``), which
never subtracts large sums.

Elementwise kernels (``scale_shift``, ``axpby``, ``layer_normalize``)
split the chunks in memory order the same way; ``layer_norm_backward``'s
second pass gives each task a block of columns, so its column sums need
no partials either.

Layers: ``@jit(inline='always')`` chunk workers with lane accumulators in
registers, parallel drivers over tasks (the moments merge their rows
inside, the plain sums in the wrapper), and the thin entry points.

The fused kernels (``standardize``, ``standardize_backward``,
``layer_standardize``, ``layer_standardize_backward``) take a slice's (or a
group of slices') statistics and then its output while it is in cache, so
``x`` and ``dy`` come from memory once.  Their tasks are whole groups, so
they refuse (:class:`Unsupported`) shapes with fewer groups than threads
and the front ends fall back to the kernels above.  A task of
``standardize*`` is a run of consecutive groups, not one group: each
thread then reads and writes long sequential streams, which measured
1.1-1.8x faster on 32x64x56x56 than groups handed out one by one
(alternating between the threads); within a run, ``BLOCK_BYTES`` of
groups take their statistics, then their output.  Memory, not arithmetic,
bounds them: on 32x64x56x56 the output pass costs about as much as the
statistics pass even with its inputs in cache (the stores' read for
ownership); non-temporal stores measured slower.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..._dispatch import Unsupported
from ._jit import fetch_add, jit, stack_empty

# Elements per unit: a float32 chunk is 16 KiB.
CHUNK = 4096
# Lane accumulators: 64 float32 lanes are 4 zmm registers.  Each lane sums
# BLOCK values in the input's dtype, then folds into a float64 lane.
LANES = 64
BLOCK = 16
# Tasks per thread (see the module docstring).
TASKS_PER_THREAD = 4
# Bytes of x per block of the fused standardize kernels: a block's x, dy and
# output then stay in L1 (48 KiB here) between its two passes.  Instance
# norm's 10-12.5 KiB slices one by one measured 10-15 % faster than blocks of
# 128 KiB (second pass from L2) on 20x20x50x50 (forward and backward) and
# 32x64x56x56 (forward; backward equal); only slices of a few KiB form blocks.
BLOCK_BYTES = 16 * 1024
# Bytes of x up to which the fused standardize kernels run on the calling
# thread: waking the other threads and joining them (OMP_WAIT_POLICY=passive,
# as the benchmarks set it: torch's OpenMP runtime shares the cores) cost
# about 40 us here, and every 20x20x50x50 float32 case (4 MB, in L3) measured
# as fast or faster on one thread (forward 1.3-1.4x, backward 1.0x); the
# 32x64x56x56 ones (26 MB, from memory) 1.5-1.8x faster on two.
SERIAL_BYTES = 4 * 1024 * 1024
# Columns per task of layer_norm_backward's second pass (two float64 column
# sums of 64 KiB each stay in L2 while every row passes).
COLUMN_BLOCK = 8192


@jit(inline="always")
def _lane_sums(first, second):
    """The sums of two arrays of ``LANES`` float64 lanes, each folding halves into each other.

    A few vector adds instead of chains of ``LANES`` dependent scalar adds,
    which cost as much as loading a 2500-element slice from L3 (20x20x50x50
    instance norm); two arrays at a time so that their folds overlap.
    Overwrites both.
    """
    width = LANES // 2
    while width > 0:
        for lane in range(width):
            first[lane] += first[lane + width]
            second[lane] += second[lane + width]
        width //= 2
    return first[0], second[0]


@jit(inline="always")
def _chunk_shifted_sums(values, length, shift):
    """``(sum(v - shift), sum((v - shift) ** 2))`` over ``values[:length]``, in float64.

    One pass.  ``shift`` has the values' dtype; with ``shift`` one of the
    values, ``m2 = S2 - S1**2 / n`` cannot cancel badly (``n * (mean -
    shift)**2 <= n * m2``), so the relative error stays below about ``n``
    roundings.  The input's dtype sums runs of ``BLOCK`` terms per lane
    (twice the float64 throughput), float64 the rest.
    """
    total = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    total_squares = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    run = numba.carray(stack_empty(LANES, values.dtype), (LANES,))
    run_squares = numba.carray(stack_empty(LANES, values.dtype), (LANES,))
    for lane in range(LANES):
        total[lane] = 0.0
        total_squares[lane] = 0.0
    blocks = length // LANES
    for first_block in range(0, blocks, BLOCK):
        for lane in range(LANES):
            run[lane] = 0
            run_squares[lane] = 0
        for block in range(first_block, min(first_block + BLOCK, blocks)):
            chunk = values[block * LANES:]
            for lane in range(LANES):
                deviation = chunk[lane] - shift
                run[lane] += deviation
                run_squares[lane] += deviation * deviation
        for lane in range(LANES):
            total[lane] += run[lane]
            total_squares[lane] += run_squares[lane]
    result, result_squares = _lane_sums(total, total_squares)
    wide_shift = np.float64(shift)
    for i in range(blocks * LANES, length):
        deviation = np.float64(values[i]) - wide_shift
        result += deviation
        result_squares += deviation * deviation
    return result, result_squares


@jit(inline="always")
def _chunk_dot(dy, x, weight, length, shift):
    """``(sum(g), sum(g * (x - shift)))`` with ``g = dy * weight`` over ``[:length]``, float64.

    ``weight`` has ``x``'s dtype (read at half the bytes of float64; the products are
    float64 all the same).  ``shift`` has ``x``'s dtype and should
    be one of its values, so that the centred sum does not cancel; callers
    move it to the true mean in float64 (``+ (shift - mean) * sum(g)``).
    All in float64: layer norm's input gradient subtracts these sums from
    per-element terms computed in float64, and with few elements per row
    any rounding difference between the two would show.
    """
    total = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    total_centred = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    for lane in range(LANES):
        total[lane] = 0.0
        total_centred[lane] = 0.0
    wide_shift = np.float64(shift)
    blocks = length // LANES
    for block in range(blocks):
        dy_chunk = dy[block * LANES:]
        x_chunk = x[block * LANES:]
        weight_chunk = weight[block * LANES:]
        for lane in range(LANES):
            gradient = np.float64(dy_chunk[lane]) * weight_chunk[lane]
            total[lane] += gradient
            total_centred[lane] += gradient * (np.float64(x_chunk[lane]) - wide_shift)
    result, result_centred = _lane_sums(total, total_centred)
    for i in range(blocks * LANES, length):
        gradient = np.float64(dy[i]) * weight[i]
        result += gradient
        result_centred += gradient * (np.float64(x[i]) - wide_shift)
    return result, result_centred


@jit(inline="always")
def _chunk_dot_narrow(dy, x, length, shift):
    """:func:`_chunk_dot` without weight, summing runs of ``BLOCK`` terms in the input's dtype.

    Twice the throughput in float32; the statistics it feeds (batch,
    instance and group norm backward) are applied in float32 anyway.
    """
    total = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    total_centred = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    run = numba.carray(stack_empty(LANES, dy.dtype), (LANES,))
    run_centred = numba.carray(stack_empty(LANES, dy.dtype), (LANES,))
    for lane in range(LANES):
        total[lane] = 0.0
        total_centred[lane] = 0.0
    blocks = length // LANES
    for first_block in range(0, blocks, BLOCK):
        for lane in range(LANES):
            run[lane] = 0
            run_centred[lane] = 0
        for block in range(first_block, min(first_block + BLOCK, blocks)):
            dy_chunk = dy[block * LANES:]
            x_chunk = x[block * LANES:]
            for lane in range(LANES):
                run[lane] += dy_chunk[lane]
                run_centred[lane] += dy_chunk[lane] * (x_chunk[lane] - shift)
        for lane in range(LANES):
            total[lane] += run[lane]
            total_centred[lane] += run_centred[lane]
    result, result_centred = _lane_sums(total, total_centred)
    wide_shift = np.float64(shift)
    for i in range(blocks * LANES, length):
        gradient = np.float64(dy[i])
        result += gradient
        result_centred += gradient * (np.float64(x[i]) - wide_shift)
    return result, result_centred


@jit(inline="always")
def _chunk_stats(dy, x, length, shift):
    """:func:`_chunk_shifted_sums` of ``x`` and :func:`_chunk_dot_narrow` in one loop.

    ``(sum(x - shift), sum((x - shift) ** 2), sum(dy), sum(dy * (x - shift)))``,
    the same sums in the same order (so the same bits), reading ``dy`` and
    ``x`` side by side: measured 4-5 % faster than the two calls in the fused
    backward, whose memory streams then advance together.
    """
    total = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    total_squares = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    total_dy = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    total_centred = numba.carray(stack_empty(LANES, np.float64), (LANES,))
    run = numba.carray(stack_empty(LANES, x.dtype), (LANES,))
    run_squares = numba.carray(stack_empty(LANES, x.dtype), (LANES,))
    run_dy = numba.carray(stack_empty(LANES, x.dtype), (LANES,))
    run_centred = numba.carray(stack_empty(LANES, x.dtype), (LANES,))
    for lane in range(LANES):
        total[lane] = 0.0
        total_squares[lane] = 0.0
        total_dy[lane] = 0.0
        total_centred[lane] = 0.0
    blocks = length // LANES
    for first_block in range(0, blocks, BLOCK):
        for lane in range(LANES):
            run[lane] = 0
            run_squares[lane] = 0
            run_dy[lane] = 0
            run_centred[lane] = 0
        for block in range(first_block, min(first_block + BLOCK, blocks)):
            x_chunk = x[block * LANES:]
            dy_chunk = dy[block * LANES:]
            for lane in range(LANES):
                deviation = x_chunk[lane] - shift
                gradient = dy_chunk[lane]
                run[lane] += deviation
                run_squares[lane] += deviation * deviation
                run_dy[lane] += gradient
                run_centred[lane] += gradient * deviation
        for lane in range(LANES):
            total[lane] += run[lane]
            total_squares[lane] += run_squares[lane]
            total_dy[lane] += run_dy[lane]
            total_centred[lane] += run_centred[lane]
    result, result_squares = _lane_sums(total, total_squares)
    result_dy, result_centred = _lane_sums(total_dy, total_centred)
    wide_shift = np.float64(shift)
    for i in range(blocks * LANES, length):
        deviation = np.float64(x[i]) - wide_shift
        gradient = np.float64(dy[i])
        result += deviation
        result_squares += deviation * deviation
        result_dy += gradient
        result_centred += gradient * deviation
    return result, result_squares, result_dy, result_centred


@jit(inline="always")
def _unit(unit, chunks, batch, length):
    """``(q, p, start, size)`` of reduction unit ``unit`` (``q`` first, then ``p``, then chunk)."""
    slice_chunk, chunk = divmod(unit, chunks)
    q, p = divmod(slice_chunk, batch)
    start = chunk * CHUNK
    return q, p, start, min(CHUNK, length - start)


@jit(inline="always")
def _merge_tasks(counts, means, m2s, sums, centred_sums):
    """Merge row ``t > 0`` of the partials into row 0, in task order (Chan et al.).

    ``sums``/``centred_sums`` (sum(dy) and sum(dy * (x - mean)) about the
    row's mean) may have no rows: then only the moments merge.
    """
    with_dot = sums.shape[0] > 0
    for task in range(1, counts.shape[0]):
        for q in range(counts.shape[1]):
            other = counts[task, q]
            if other == 0:
                continue
            count = counts[0, q]
            merged = count + other
            mean = means[0, q]
            delta = means[task, q] - mean
            new_mean = mean + delta * other / merged
            m2s[0, q] += m2s[task, q] + delta * delta * count * other / merged
            if with_dot:
                centred_sums[0, q] += ((mean - new_mean) * sums[0, q] + centred_sums[task, q]
                                       + (means[task, q] - new_mean) * sums[task, q])
                sums[0, q] += sums[task, q]
            means[0, q] = new_mean
            counts[0, q] = merged


@jit(parallel=True)
def _moments(x, chunks, counts, means, m2s, threads):
    """``(count, mean, m2)`` per ``q``, left in row 0 of ``counts``/``means``/``m2s``.

    ``x`` is ``(P, Q, S)``; ``counts``/``means``/``m2s`` are ``(tasks, Q)``
    zeros: task ``t`` folds its units into row ``t``, then the rows merge
    in task order.
    """
    batch, slices, length = x.shape
    units = slices * batch * chunks
    tasks = counts.shape[0]
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for unit in range(task * units // tasks, (task + 1) * units // tasks):
                q, p, start, size = _unit(unit, chunks, batch, length)
                values = x[p, q, start:]
                total, total_squares = _chunk_shifted_sums(values, size, values[0])
                chunk_mean = np.float64(values[0]) + total / size
                chunk_m2 = max(total_squares - total * total / size, 0.0)
                # Chan et al.: merge (size, chunk_mean, chunk_m2) into the task's partial.
                count = counts[task, q]
                merged = count + size
                delta = chunk_mean - means[task, q]
                means[task, q] += delta * size / merged
                m2s[task, q] += chunk_m2 + delta * delta * count * size / merged
                counts[task, q] = merged
    _merge_tasks(counts, means, m2s, counts[:0], counts[:0])
    return counts, means, m2s


@jit(parallel=True)
def _dot_moments(dy, x, mean, chunks, sums, centred_sums, threads):
    """Per-task partial ``sum(dy)`` and ``sum(dy * (x - mean[q]))`` (units as in _moments)."""
    batch, slices, length = x.shape
    units = slices * batch * chunks
    tasks = sums.shape[0]
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for unit in range(task * units // tasks, (task + 1) * units // tasks):
                q, p, start, size = _unit(unit, chunks, batch, length)
                x_chunk = x[p, q, start:]
                total, centred = _chunk_dot_narrow(dy[p, q, start:], x_chunk, size, x_chunk[0])
                sums[task, q] += total
                centred_sums[task, q] += centred + (np.float64(x_chunk[0]) - mean[q]) * total
    return sums, centred_sums


@jit(parallel=True)
def _affine(dy, x, a, b, c, out, chunks, threads):
    """``out = dy * a[q] + x * b[q] + c[q]``, tasks of consecutive chunks in memory order.

    ``scale_shift`` passes ``x`` as ``dy`` with ``b = 0``: one kernel, one
    compilation per dtype, and the extra multiply-add is free next to the
    memory traffic.
    """
    batch, slices, length = x.shape
    units = batch * slices * chunks
    tasks = min(units, TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for unit in range(task * units // tasks, (task + 1) * units // tasks):
                slice_index, chunk = divmod(unit, chunks)
                p, q = divmod(slice_index, slices)
                start = chunk * CHUNK
                size = min(CHUNK, length - start)
                # Views from the chunk's start, indices from 0: numba then knows they
                # are not negative and skips the wraparound that stops vectorising.
                dy_chunk = dy[p, q, start:]
                x_chunk = x[p, q, start:]
                out_chunk = out[p, q, start:]
                a_q = a[q]
                b_q = b[q]
                c_q = c[q]
                for s in range(size):
                    out_chunk[s] = dy_chunk[s] * a_q + x_chunk[s] * b_q + c_q
    return out


@jit(parallel=True)
def _layer_normalize(x, mean, rstd, weight, bias, out, chunks, threads):
    """``out[r, m] = (x[r, m] - mean[r]) * rstd[r] * weight[m] + bias[m]`` in ``x``'s dtype."""
    rows, width = x.shape
    units = rows * chunks
    tasks = min(units, TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for unit in range(task * units // tasks, (task + 1) * units // tasks):
                r, chunk = divmod(unit, chunks)
                start = chunk * CHUNK
                size = min(CHUNK, width - start)
                x_chunk = x[r, start:]
                out_chunk = out[r, start:]
                weight_chunk = weight[start:]
                bias_chunk = bias[start:]
                row_mean = mean[r]
                row_rstd = rstd[r]
                for m in range(size):
                    out_chunk[m] = ((x_chunk[m] - row_mean) * row_rstd * weight_chunk[m]
                                    + bias_chunk[m])
    return out


@jit(parallel=True)
def _layer_row_sums(dy, x, weight, chunks, sums, centred_sums, shifts, threads):
    """Per-task partial ``sum(dy * w)`` and ``sum(dy * w * (x - shifts[r]))`` per row.

    Units are ``(r, chunk)``; ``sums``/``centred_sums`` are ``(tasks, R)``
    zeros; ``shifts[r]`` is a value of row ``r``, of ``x``'s dtype (see :func:`_chunk_dot`).
    """
    rows, width = x.shape
    units = rows * chunks
    tasks = sums.shape[0]
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for unit in range(task * units // tasks, (task + 1) * units // tasks):
                r, chunk = divmod(unit, chunks)
                start = chunk * CHUNK
                total, centred = _chunk_dot(dy[r, start:], x[r, start:], weight[start:],
                                            min(CHUNK, width - start), shifts[r])
                sums[task, r] += total
                centred_sums[task, r] += centred
    return sums, centred_sums


@jit(inline="always")
def _layer_rows(dy, x, mean, rstd, weight, input_scale, input_offset, grad_input, first_row,
                row_count, start, size, grad_weight, grad_bias):
    """:func:`_layer_backward` for ``row_count`` (1 or 2) rows and columns ``[start, + size)``.

    Two rows per pass halve the loads and stores of the float64 column sums.
    """
    weight_block = weight[start:]
    grad_weight_block = grad_weight[start:]
    grad_bias_block = grad_bias[start:]
    second = first_row + row_count - 1  # the first row again when row_count is 1
    dy_a = dy[first_row, start:]
    x_a = x[first_row, start:]
    out_a = grad_input[first_row, start:]
    dy_b = dy[second, start:]
    x_b = x[second, start:]
    out_b = grad_input[second, start:]
    mean_a, rstd_a = mean[first_row], rstd[first_row]
    scale_a, offset_a = input_scale[first_row], input_offset[first_row]
    mean_b, rstd_b = mean[second], rstd[second]
    scale_b, offset_b = input_scale[second], input_offset[second]
    both = np.float64(row_count - 1)  # 0 or 1: the second row's share of the sums
    for m in range(size):
        gradient_a = np.float64(dy_a[m])
        centred_a = np.float64(x_a[m]) - mean_a
        gradient_b = np.float64(dy_b[m])
        centred_b = np.float64(x_b[m]) - mean_b
        out_a[m] = rstd_a * gradient_a * weight_block[m] + centred_a * scale_a + offset_a
        out_b[m] = rstd_b * gradient_b * weight_block[m] + centred_b * scale_b + offset_b
        grad_weight_block[m] += (gradient_a * centred_a * rstd_a
                                 + both * gradient_b * centred_b * rstd_b)
        grad_bias_block[m] += gradient_a + both * gradient_b


@jit(parallel=True)
def _layer_backward(dy, x, mean, rstd, weight, input_scale, input_offset, grad_input,
                    grad_weight, grad_bias, threads):
    """Layer norm's input gradient and its column sums; a task owns ``COLUMN_BLOCK`` columns.

    ``grad_input[r, m] = rstd[r] * dy * weight[m] + (x - mean[r]) *
    input_scale[r] + input_offset[r]``, in float64 inside (``x - mean`` must
    not round in float32); ``grad_weight[m] = sum_r dy * xhat`` and
    ``grad_bias[m] = sum_r dy`` sum in row order within one task, whatever
    the thread count.
    """
    rows, width = x.shape
    tasks = (width + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            start = task * COLUMN_BLOCK
            size = min(COLUMN_BLOCK, width - start)
            grad_weight_block = grad_weight[start:]
            grad_bias_block = grad_bias[start:]
            for m in range(size):
                grad_weight_block[m] = 0.0
                grad_bias_block[m] = 0.0
            for first_row in range(0, rows, 2):
                _layer_rows(dy, x, mean, rstd, weight, input_scale, input_offset, grad_input,
                            first_row, min(2, rows - first_row), start, size, grad_weight,
                            grad_bias)
    return grad_input, grad_weight, grad_bias


@jit(inline="always")
def _group_moments(x, first_q, group):
    """``(mean, m2)`` over ``x[:, first_q:first_q + group, :]``, chunk by chunk (Chan et al.)."""
    batch, _, length = x.shape
    mean = 0.0
    m2 = 0.0
    seen = 0
    for q in range(first_q, first_q + group):
        for p in range(batch):
            for start in range(0, length, CHUNK):
                size = min(CHUNK, length - start)
                values = x[p, q, start:]
                total, total_squares = _chunk_shifted_sums(values, size, values[0])
                merged = seen + size
                delta = np.float64(values[0]) + total / size - mean
                mean += delta * size / merged
                m2 += (max(total_squares - total * total / size, 0.0)
                       + delta * delta * seen * size / merged)
                seen = merged
    return mean, m2


@jit(inline="always")
def _affine_rows(dy, x, first_q, group, a, b, c, out):
    """``out[p, q] = dy[p, q] * a[j] + x[p, q] * b[j] + c[j]`` for ``q = first_q + j``."""
    for j in range(group):
        for p in range(x.shape[0]):
            dy_row = dy[p, first_q + j]
            x_row = x[p, first_q + j]
            out_row = out[p, first_q + j]
            a_j = a[j]
            b_j = b[j]
            c_j = c[j]
            for s in range(x.shape[2]):
                out_row[s] = dy_row[s] * a_j + x_row[s] * b_j + c_j


@jit(inline="always")
def _standardize_tasks(x, group, eps, weight, bias, block, out, means, variances, next_task,
                       tasks):
    """Fused forward: per group of ``group`` slices the moments, then the affine map.

    ``x`` is ``(P, Q, S)``; statistics per group of consecutive ``q`` (over
    ``p``, those ``q`` and ``s``); ``weight``/``bias`` float64 per ``q``.
    ``out = x * scale[q] + shift[q]`` with ``scale = rstd * weight`` and
    ``shift = bias - mean * scale`` rounded to ``x``'s dtype, as the
    unfused ``scale_shift``.  A task is a run of consecutive groups, taken
    ``block`` groups at a time: their moments, then their output, reading
    from cache what the first pass left there (see the module docstring).
    Runs tasks taken from ``next_task`` until all ``tasks`` are taken.
    """
    groups = x.shape[1] // group
    zero = np.zeros(group * block, dtype=x.dtype)
    scales = np.empty(group * block, dtype=x.dtype)
    shifts = np.empty(group * block, dtype=x.dtype)
    while True:
        task = fetch_add(next_task, 1)
        if task >= tasks:
            break
        end = (task + 1) * groups // tasks
        for first in range(task * groups // tasks, end, block):
            last = min(first + block, end)
            for index in range(first, last):
                first_q = index * group
                mean, m2 = _group_moments(x, first_q, group)
                variance = m2 / (x.shape[0] * group * x.shape[2])
                rstd = 1.0 / np.sqrt(variance + eps)
                means[index] = mean
                variances[index] = variance
                for q in range(first_q, first_q + group):
                    scale = rstd * weight[q]
                    scales[q - first * group] = scale
                    shifts[q - first * group] = bias[q] - mean * scale
            _affine_rows(x, x, first * group, (last - first) * group, scales, zero, shifts,
                         out)


@jit(parallel=True)
def _standardize(x, group, eps, weight, bias, block, out, means, variances, threads):
    """:func:`_standardize_tasks` on ``threads`` threads."""
    tasks = min(x.shape[1] // group, TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        _standardize_tasks(x, group, eps, weight, bias, block, out, means, variances,
                           next_task, tasks)
    return out, means, variances


@jit()
def _standardize_serial(x, group, eps, weight, bias, block, out, means, variances):
    """:func:`_standardize_tasks` on the calling thread (small inputs, see ``SERIAL_BYTES``)."""
    _standardize_tasks(x, group, eps, weight, bias, block, out, means, variances,
                       np.zeros(1, dtype=np.int64), 1)
    return out, means, variances


@jit(inline="always")
def _group_sums(dy, x, first_q, group, sums, centred_sums):
    """One pass over a group: ``(mean, m2)`` and per ``q`` ``sum(dy)``, ``sum(dy * (x - mean))``.

    Each chunk is read once (:func:`_chunk_stats`): its moments merge as in
    :func:`_group_moments`; its dot sums, taken about the chunk's first
    value, move in float64 to one
    fixed value of the group, and from it to the mean at the end (``mean``
    is only known then).  ``sums``/``centred_sums`` are indexed by ``q``.
    """
    batch, _, length = x.shape
    anchor = np.float64(x[0, first_q, 0])
    mean = 0.0
    m2 = 0.0
    seen = 0
    for q in range(first_q, first_q + group):
        total = 0.0
        centred = 0.0
        for p in range(batch):
            for start in range(0, length, CHUNK):
                size = min(CHUNK, length - start)
                values = x[p, q, start:]
                shift = values[0]
                shifted, shifted_squares, chunk_sum, chunk_centred = _chunk_stats(
                    dy[p, q, start:], values, size, shift)
                merged = seen + size
                delta = np.float64(shift) + shifted / size - mean
                mean += delta * size / merged
                m2 += (max(shifted_squares - shifted * shifted / size, 0.0)
                       + delta * delta * seen * size / merged)
                seen = merged
                total += chunk_sum
                centred += chunk_centred + (np.float64(shift) - anchor) * chunk_sum
        sums[q] = total
        centred_sums[q] = centred
    for q in range(first_q, first_q + group):
        centred_sums[q] += (anchor - mean) * sums[q]
    return mean, m2


@jit(inline="always")
def _standardize_backward_tasks(dy, x, group, eps, weight, block, grad_input, sums, xhat_sums,
                                next_task, tasks):
    """Fused backward of :func:`_standardize_tasks` (batch statistics), per group of slices.

    Per group, one pass for the moments of ``x`` and per ``q`` ``sum(dy)``
    and ``sum(dy * xhat)`` (:func:`_group_sums`); then, for ``block``
    groups at a time as in :func:`_standardize_tasks`, ``grad_input = dy *
    a[q] + x * b + c[q]`` from cache, as :func:`fastcorr.norm._standardize_backward`
    composes it (coefficients rounded to ``x``'s dtype).  ``sums`` and
    ``xhat_sums`` get the per-``q`` sums (float64) for the weight and bias
    gradients.  Runs tasks taken from ``next_task`` until all ``tasks`` are taken.
    """
    batch, slices, length = x.shape
    groups = slices // group
    count = batch * group * length
    a = np.empty(group * block, dtype=x.dtype)
    b = np.empty(group * block, dtype=x.dtype)
    c = np.empty(group * block, dtype=x.dtype)
    while True:
        task = fetch_add(next_task, 1)
        if task >= tasks:
            break
        end = (task + 1) * groups // tasks
        for first in range(task * groups // tasks, end, block):
            last = min(first + block, end)
            for index in range(first, last):
                first_q = index * group
                mean, m2 = _group_sums(dy, x, first_q, group, sums, xhat_sums)
                rstd = 1.0 / np.sqrt(m2 / count + eps)
                sum_g = 0.0
                sum_g_xhat = 0.0
                for q in range(first_q, first_q + group):
                    xhat_sums[q] *= rstd
                    sum_g += weight[q] * sums[q]
                    sum_g_xhat += weight[q] * xhat_sums[q]
                slope = -rstd * rstd * sum_g_xhat / count
                for q in range(first_q, first_q + group):
                    a[q - first * group] = rstd * weight[q]
                    b[q - first * group] = slope
                    c[q - first * group] = -rstd * sum_g / count - slope * mean
            _affine_rows(dy, x, first * group, (last - first) * group, a, b, c, grad_input)


@jit(parallel=True)
def _standardize_backward(dy, x, group, eps, weight, block, grad_input, sums, xhat_sums,
                          threads):
    """:func:`_standardize_backward_tasks` on ``threads`` threads."""
    tasks = min(x.shape[1] // group, TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        _standardize_backward_tasks(dy, x, group, eps, weight, block, grad_input, sums,
                                    xhat_sums, next_task, tasks)
    return grad_input, sums, xhat_sums


@jit()
def _standardize_backward_serial(dy, x, group, eps, weight, block, grad_input, sums,
                                 xhat_sums):
    """:func:`_standardize_backward_tasks` on the calling thread (see ``SERIAL_BYTES``)."""
    _standardize_backward_tasks(dy, x, group, eps, weight, block, grad_input, sums, xhat_sums,
                                np.zeros(1, dtype=np.int64), 1)
    return grad_input, sums, xhat_sums


@jit(inline="always")
def _layer_standardize_tasks(x, eps, weight, bias, out, next_task):
    """Fused layer norm forward: per row of ``(R, M)`` the moments, then the elementwise map.

    ``out = (x - mean) * rstd * weight + bias`` with ``mean``/``rstd``
    rounded to ``x``'s dtype, as :func:`_layer_normalize`.  A task is a pair
    of rows (the last row twice for odd ``R``): their moments, then both
    outputs in one pass over ``weight`` and ``bias``, in column chunks
    (measured 1.05-1.3x faster than single rows on 32x64x56x56 and
    20x20x50x50: the parameters are as large as a row).  Runs tasks taken
    from ``next_task`` until all are taken.
    """
    rows, width = x.shape
    x3 = x.reshape((1, rows, width))
    pairs = (rows + 1) // 2
    rounded = np.empty(4, dtype=x.dtype)
    while True:
        pair = fetch_add(next_task, 1)
        if pair >= pairs:
            break
        first = 2 * pair
        second = min(first + 1, rows - 1)
        for k, r in enumerate((first, second)):
            mean, m2 = _group_moments(x3, r, 1)
            rounded[2 * k] = mean  # mean and rstd in x's dtype, as _layer_normalize
            rounded[2 * k + 1] = 1.0 / np.sqrt(m2 / width + eps)
        mean_a, rstd_a, mean_b, rstd_b = rounded[0], rounded[1], rounded[2], rounded[3]
        for start in range(0, width, CHUNK):
            x_a = x[first, start:]
            x_b = x[second, start:]
            out_a = out[first, start:]
            out_b = out[second, start:]
            weight_chunk = weight[start:]
            bias_chunk = bias[start:]
            for m in range(min(CHUNK, width - start)):
                out_a[m] = (x_a[m] - mean_a) * rstd_a * weight_chunk[m] + bias_chunk[m]
                out_b[m] = (x_b[m] - mean_b) * rstd_b * weight_chunk[m] + bias_chunk[m]


@jit(parallel=True)
def _layer_standardize(x, eps, weight, bias, out, threads):
    """:func:`_layer_standardize_tasks` on ``threads`` threads."""
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, (x.shape[0] + 1) // 2)):
        _layer_standardize_tasks(x, eps, weight, bias, out, next_task)
    return out


@jit()
def _layer_standardize_serial(x, eps, weight, bias, out):
    """:func:`_layer_standardize_tasks` on the calling thread (see ``SERIAL_BYTES``)."""
    _layer_standardize_tasks(x, eps, weight, bias, out, np.zeros(1, dtype=np.int64))
    return out


@jit(parallel=True)
def _layer_row_stats(dy, x, weight, eps, means, rstds, sums, xhat_sums, threads):
    """Per row of ``(R, M)``: mean, rstd, ``sum(dy * w)`` and ``sum(dy * w * xhat)``, float64.

    One pass over each row (a task), chunk by chunk: moments as in
    :func:`_group_moments`, dot sums in float64 about the row's first value
    (:func:`_chunk_dot`), moved to the mean at the end.
    """
    rows, width = x.shape
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, rows)):
        while True:
            r = fetch_add(next_task, 1)
            if r >= rows:
                break
            anchor = x[r, 0]
            mean = 0.0
            m2 = 0.0
            total = 0.0
            centred = 0.0
            for start in range(0, width, CHUNK):
                size = min(CHUNK, width - start)
                values = x[r, start:]
                shifted, shifted_squares = _chunk_shifted_sums(values, size, values[0])
                merged = start + size
                delta = np.float64(values[0]) + shifted / size - mean
                mean += delta * size / merged
                m2 += (max(shifted_squares - shifted * shifted / size, 0.0)
                       + delta * delta * start * size / merged)
                chunk_sum, chunk_centred = _chunk_dot(dy[r, start:], values, weight[start:],
                                                      size, anchor)
                total += chunk_sum
                centred += chunk_centred
            rstd = 1.0 / np.sqrt(m2 / width + eps)
            means[r] = mean
            rstds[r] = rstd
            sums[r] = total
            xhat_sums[r] = (centred + (np.float64(anchor) - mean) * total) * rstd
    return means, rstds, sums, xhat_sums


def _chunks(length):
    return max(1, -(-length // CHUNK))


def _row_parameter(values, width, dtype, fill):
    """A layer norm parameter ``(M,)`` in ``dtype`` (not copied if it is); ``fill`` for None."""
    return np.full(width, fill, dtype=dtype) if values is None else values.astype(dtype, copy=False)


def _reduction_tasks(units):
    return max(1, min(TASKS_PER_THREAD * numba.get_num_threads(), units))


def moments(x):
    """Per ``q``: the mean over ``(p, s)`` and the sum of squared deviations from it.

    Parameters
    ----------
    x : ndarray, shape (P, Q, S), float32 or float64, C-contiguous

    Returns
    -------
    (ndarray, ndarray)
        ``mean`` and ``m2`` (float64, shape ``(Q,)``); ``m2 / (P * S)`` is
        the biased variance.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba.norm import moments
    >>> moments(np.array([[[1.0, 3.0]], [[5.0, 7.0]]]))
    (array([4.]), array([20.]))
    """
    batch, slices, length = x.shape
    if not x.size:
        return np.full(slices, np.nan), np.zeros(slices)
    chunks = _chunks(length)
    tasks = _reduction_tasks(batch * slices * chunks)
    counts, means, m2s = (np.zeros((tasks, slices)) for _ in range(3))
    _moments(x, chunks, counts, means, m2s, numba.get_num_threads())
    return means[0], m2s[0]


def dot_moments(dy, x, mean):
    """Per ``q``: ``sum(dy)`` and ``sum(dy * (x - mean[q]))`` over ``(p, s)``, in float64.

    ``dy`` and ``x`` are ``(P, Q, S)`` of one dtype; ``mean`` is float64 ``(Q,)``.
    """
    batch, slices, length = x.shape
    if not x.size:
        return np.zeros(slices), np.zeros(slices)
    chunks = _chunks(length)
    tasks = _reduction_tasks(batch * slices * chunks)
    sums = np.zeros((tasks, slices))
    centred_sums = np.zeros((tasks, slices))
    _dot_moments(dy, x, np.ascontiguousarray(mean, dtype=np.float64), chunks, sums,
                 centred_sums, numba.get_num_threads())
    return sums.sum(axis=0), centred_sums.sum(axis=0)


def scale_shift(x, scale, shift):
    """``x * scale[q] + shift[q]`` on a ``(P, Q, S)`` view, in ``x``'s dtype."""
    out = np.empty_like(x)
    if x.size:
        _affine(x, x, scale.astype(x.dtype), np.zeros(x.shape[1], dtype=x.dtype),
                shift.astype(x.dtype), out, _chunks(x.shape[2]), numba.get_num_threads())
    return out


def axpby(dy, x, a, b, c):
    """``dy * a[q] + x * b[q] + c[q]`` on ``(P, Q, S)`` views, in ``x``'s dtype."""
    out = np.empty_like(x)
    if x.size:
        _affine(dy, x, a.astype(x.dtype), b.astype(x.dtype), c.astype(x.dtype), out,
                _chunks(x.shape[2]), numba.get_num_threads())
    return out


def layer_normalize(x, mean, rstd, weight, bias):
    """Per row ``r``: ``(x - mean[r]) * rstd[r] * weight + bias`` (elementwise affine).

    ``x`` is ``(R, M)``; ``mean``/``rstd`` float64 ``(R,)``; ``weight`` and
    ``bias`` ``(M,)`` or None (then ones and zeros: one compiled kernel).
    """
    out = np.empty_like(x)
    if x.size:
        width = x.shape[1]
        weight = _row_parameter(weight, width, x.dtype, 1)
        bias = _row_parameter(bias, width, x.dtype, 0)
        _layer_normalize(x, mean.astype(x.dtype), rstd.astype(x.dtype), weight, bias, out,
                         _chunks(width), numba.get_num_threads())
    return out


def layer_norm_backward(dy, x, mean, rstd, weight):
    """``(grad_input, sum_r dy * xhat, sum_r dy)`` of layer norm over the rows of ``(R, M)``.

    With ``g = dy * weight`` and ``xhat = (x - mean) * rstd``:
    ``grad_input = rstd * (g - mean(g) - xhat * mean(g * xhat))`` per row;
    the column sums are float64.  Two passes: the per-row sums, then the
    input gradient with the column sums.
    """
    rows, width = x.shape
    grad_input = np.empty_like(x)
    grad_weight = np.zeros(width)
    grad_bias = np.zeros(width)
    if not x.size:
        return grad_input, grad_weight, grad_bias
    weight = _row_parameter(weight, width, x.dtype, 1)
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    rstd = np.ascontiguousarray(rstd, dtype=np.float64)
    chunks = _chunks(width)
    tasks = _reduction_tasks(rows * chunks)
    sums = np.zeros((tasks, rows))
    centred_sums = np.zeros((tasks, rows))
    shifts = np.ascontiguousarray(x[:, 0])
    _layer_row_sums(dy, x, weight, chunks, sums, centred_sums, shifts, numba.get_num_threads())
    sum_g = sums.sum(axis=0)
    sum_g_xhat = (centred_sums.sum(axis=0) + (shifts.astype(np.float64) - mean) * sum_g) * rstd
    # grad_input = rstd * g - rstd * sum_g / M - (x - mean) * rstd**2 * sum_g_xhat / M
    input_scale = -rstd * rstd * sum_g_xhat / width
    input_offset = -rstd * sum_g / width
    _layer_backward(dy, x, mean, rstd, weight, input_scale, input_offset, grad_input,
                    grad_weight, grad_bias, numba.get_num_threads())
    return grad_input, grad_weight, grad_bias


def _whole_slice_tasks(tasks):
    """Refuse fused kernels that would leave threads idle (a task is a whole slice or group)."""
    if tasks < numba.get_num_threads():
        raise Unsupported("shape", f"{tasks} slices for {numba.get_num_threads()} threads: the "
                          f"unfused kernels split slices")


def _block(x, group):
    """Groups per block of the fused kernels: about ``BLOCK_BYTES`` of ``x``, at most all."""
    group_bytes = max(1, x.shape[0] * group * x.shape[2] * x.itemsize)
    return max(1, min(x.shape[1] // group, BLOCK_BYTES // group_bytes))


def _per_q(values, slices):
    return (np.ones(slices) if values is None
            else np.ascontiguousarray(values, dtype=np.float64))


def standardize(x, group, eps, weight, bias):
    """Fused normalisation forward with batch statistics.

    ``x`` is ``(P, Q, S)``; statistics (biased variance) per group of
    ``group`` consecutive ``q``; ``weight``/``bias`` float per ``q`` or
    None.  Returns ``(y, mean, var)`` with ``mean``/``var`` float64 per
    group: what ``moments`` then ``scale_shift`` give, in one call that
    reads ``x`` once from memory instead of twice (a group's data is read
    again from cache); on one thread up to ``SERIAL_BYTES`` of ``x``.
    Raises :class:`Unsupported` for fewer groups than threads.
    """
    batch, slices, length = x.shape
    groups = slices // group
    _whole_slice_tasks(groups)
    out = np.empty_like(x)
    means = np.empty(groups)
    variances = np.empty(groups)
    if x.size:
        args = (x, group, float(eps), _per_q(weight, slices),
                np.zeros(slices) if bias is None else _per_q(bias, slices), _block(x, group),
                out, means, variances)
        if x.nbytes <= SERIAL_BYTES:
            _standardize_serial(*args)
        else:
            _standardize(*args, numba.get_num_threads())
    return out, means, variances


def standardize_backward(dy, x, group, eps, weight):
    """Fused normalisation backward with batch statistics (of :func:`standardize`).

    Returns ``(grad_input, sum_dy, sum_dy_xhat)``, the last two float64 per
    ``q``: what ``moments``, ``dot_moments`` and ``axpby`` give in
    :func:`fastcorr.norm._affine_backward`, reading ``dy`` and ``x`` once
    from memory (and once from cache) instead of three and two times; on
    one thread up to ``SERIAL_BYTES`` of ``x``.
    """
    slices = x.shape[1]
    _whole_slice_tasks(slices // group)
    grad_input = np.empty_like(x)
    sums = np.zeros(slices)
    xhat_sums = np.zeros(slices)
    if x.size:
        args = (dy, x, group, float(eps), _per_q(weight, slices), _block(x, group),
                grad_input, sums, xhat_sums)
        if x.nbytes <= SERIAL_BYTES:
            _standardize_backward_serial(*args)
        else:
            _standardize_backward(*args, numba.get_num_threads())
    return grad_input, sums, xhat_sums


def layer_standardize(x, eps, weight, bias):
    """Fused layer norm forward: ``(x - mean) * rstd * weight + bias`` per row of ``(R, M)``.

    What ``moments`` then ``layer_normalize`` give, reading each row once
    from memory; ``weight``/``bias`` ``(M,)`` or None; on one thread up to
    ``SERIAL_BYTES`` of ``x``.  Raises
    :class:`Unsupported` for fewer pairs of rows than threads.
    """
    rows, width = x.shape
    _whole_slice_tasks((rows + 1) // 2)
    out = np.empty_like(x)
    if x.size:
        args = (x, float(eps), _row_parameter(weight, width, x.dtype, 1),
                _row_parameter(bias, width, x.dtype, 0), out)
        if x.nbytes <= SERIAL_BYTES:
            _layer_standardize_serial(*args)
        else:
            _layer_standardize(*args, numba.get_num_threads())
    return out


def layer_standardize_backward(dy, x, eps, weight):
    """Fused :func:`layer_norm_backward` that takes the row statistics itself.

    ``(grad_input, sum_r dy * xhat, sum_r dy)``: one pass per row for its
    moments and gradient sums, one by column blocks for the input gradient
    and column sums.  Raises :class:`Unsupported` for fewer rows than threads.
    """
    rows, width = x.shape
    _whole_slice_tasks(rows)
    grad_input = np.empty_like(x)
    grad_weight = np.zeros(width)
    grad_bias = np.zeros(width)
    if not x.size:
        return grad_input, grad_weight, grad_bias
    weight = _row_parameter(weight, width, x.dtype, 1)
    mean, rstd, sum_g, sum_g_xhat = (np.empty(rows) for _ in range(4))
    _layer_row_stats(dy, x, weight, float(eps), mean, rstd, sum_g, sum_g_xhat,
                     numba.get_num_threads())
    _layer_backward(dy, x, mean, rstd, weight, -rstd * rstd * sum_g_xhat / width,
                    -rstd * sum_g / width, grad_input, grad_weight, grad_bias,
                    numba.get_num_threads())
    return grad_input, grad_weight, grad_bias
