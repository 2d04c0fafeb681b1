"""Pooling vectorised over batch, channels and outputs: one gather per kernel tap."""

from __future__ import annotations

import itertools

import numpy as np


def _tap_positions(windows, in_spatial):
    """For every tap (td, th, tw): broadcastable positions per dimension and a validity mask."""
    largest = [int(w.taps.max(initial=0)) for w in windows]
    for taps in itertools.product(*map(range, largest)):
        positions, valid = [], True
        for axis, (w, t, size) in enumerate(zip(windows, taps, in_spatial)):
            shape = [1, 1, 1]
            shape[axis] = -1
            position = w.first + t * w.step
            valid = valid & (t < w.taps).reshape(shape)
            positions.append(np.minimum(position, size - 1).reshape(shape))
        yield positions, valid


def _divisor(windows):
    d, h, w = (win.divisor for win in windows)
    return d[:, None, None] * h[None, :, None] * w[None, None, :]


def max_pool(x, windows):
    """Running maximum over taps; NaN wins and later maxima must be strictly larger, as in torch."""
    height, width = x.shape[3:]
    out_shape = x.shape[:2] + tuple(len(w.first) for w in windows)
    values = np.full(out_shape, -np.inf, dtype=x.dtype)
    indices = np.full(out_shape, -1, dtype=np.int64)  # stays -1 for a window of padding only
    first = True
    for (d, h, w), valid in _tap_positions(windows, x.shape[2:]):
        value = x[:, :, d, h, w]
        update = valid & ((value > values) | np.isnan(value) | first)
        first = False
        np.copyto(values, value, where=update)
        np.copyto(indices, np.broadcast_to((d * height + h) * width + w, out_shape), where=update)
    return values, indices


def avg_pool(x, windows):
    out_shape = x.shape[:2] + tuple(len(w.first) for w in windows)
    total = np.zeros(out_shape, dtype=x.dtype)
    for (d, h, w), valid in _tap_positions(windows, x.shape[2:]):
        total += np.where(valid, x[:, :, d, h, w], 0)
    return total / _divisor(windows).astype(x.dtype)


def max_pool_backward(grad_output, indices, in_spatial):
    batch, channels = grad_output.shape[:2]
    plane = int(np.prod(in_spatial))
    inside = indices.reshape(batch * channels, -1) >= 0
    flat = indices.reshape(batch * channels, -1) + plane * np.arange(batch * channels)[:, None]
    grad_input = np.bincount(flat[inside], weights=grad_output.reshape(inside.shape)[inside],
                             minlength=batch * channels * plane)
    return grad_input.astype(grad_output.dtype).reshape(grad_output.shape[:2] + tuple(in_spatial))


def avg_pool_backward(grad_output, windows, in_spatial):
    grad_input = np.zeros(grad_output.shape[:2] + tuple(in_spatial), dtype=grad_output.dtype)
    share = grad_output / _divisor(windows).astype(grad_output.dtype)
    for (d, h, w), valid in _tap_positions(windows, in_spatial):
        # Clipped windows can share a position at one tap: add unbuffered.
        np.add.at(grad_input, (slice(None), slice(None), d, h, w), np.where(valid, share, 0))
    return grad_input
