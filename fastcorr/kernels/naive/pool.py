"""Pooling as plain loops over each output's window (see fastcorr.pool.Windows)."""

from __future__ import annotations

import itertools

import numpy as np


def _taps(windows, o):
    """Input positions of output ``o``'s window along one dimension."""
    return [int(windows.first[o]) + t * windows.step for t in range(int(windows.taps[o]))]


def _outputs(x_shape, windows):
    """Every (n, c, od, oh, ow) of the output."""
    out_spatial = tuple(len(w.first) for w in windows)
    return x_shape[:2] + out_spatial, itertools.product(*map(range, x_shape[:2] + out_spatial))


def max_pool(x, windows):
    """Window maxima and the flat (d * H + h) * W + w index of each; NaN wins, as in torch."""
    depth, height, width = x.shape[2:]
    out_shape, outputs = _outputs(x.shape, windows)
    values = np.empty(out_shape, dtype=x.dtype)
    indices = np.empty(out_shape, dtype=np.int64)
    for n, c, *o in outputs:
        window = list(itertools.product(*(_taps(w, oi) for w, oi in zip(windows, o))))
        best, best_index = -np.inf, None
        for d, h, w in window:
            value = x[n, c, d, h, w]
            if best_index is None or value > best or np.isnan(value):
                best, best_index = value, (d * height + h) * width + w
        values[(n, c, *o)] = best
        indices[(n, c, *o)] = -1 if best_index is None else best_index  # only padding
    return values, indices


def avg_pool(x, windows):
    """Window sums divided by the product of the dimensions' divisors."""
    out_shape, outputs = _outputs(x.shape, windows)
    out = np.empty(out_shape, dtype=x.dtype)
    for n, c, *o in outputs:
        total = 0.0
        for d, h, w in itertools.product(*(_taps(win, oi) for win, oi in zip(windows, o))):
            total += x[n, c, d, h, w]
        divisor = np.prod([win.divisor[oi] for win, oi in zip(windows, o)])
        out[(n, c, *o)] = total / divisor
    return out


def max_pool_backward(grad_output, indices, in_spatial):
    """Each output's gradient to its window's maximum; overlaps add."""
    grad_input = np.zeros(grad_output.shape[:2] + tuple(in_spatial), dtype=grad_output.dtype)
    for index in itertools.product(*map(range, grad_output.shape)):
        if indices[index] < 0:  # a window of padding only
            continue
        n, c = index[:2]
        position = np.unravel_index(indices[index], in_spatial)
        grad_input[(n, c) + position] += grad_output[index]
    return grad_input


def avg_pool_backward(grad_output, windows, in_spatial):
    """Each output's gradient, divided by its divisor, to every input in its window."""
    grad_input = np.zeros(grad_output.shape[:2] + tuple(in_spatial), dtype=grad_output.dtype)
    for n, c, *o in itertools.product(*map(range, grad_output.shape)):
        divisor = np.prod([win.divisor[oi] for win, oi in zip(windows, o)])
        share = grad_output[(n, c, *o)] / divisor
        for position in itertools.product(*(_taps(win, oi) for win, oi in zip(windows, o))):
            grad_input[(n, c) + position] += share
    return grad_input
