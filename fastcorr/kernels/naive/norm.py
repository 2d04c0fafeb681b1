"""Normalisation kernels as plain loops over ``(P, Q, S)`` views (see fastcorr.norm)."""

from __future__ import annotations

import numpy as np


def moments(x):
    """Per q: the mean over (p, s) and the sum of squared deviations from it, in float64."""
    count = x.shape[0] * x.shape[2]
    mean = np.zeros(x.shape[1])
    m2 = np.zeros(x.shape[1])
    for q in range(x.shape[1]):
        total = 0.0
        for p in range(x.shape[0]):
            for s in range(x.shape[2]):
                total += float(x[p, q, s])
        mean[q] = total / count
        for p in range(x.shape[0]):
            for s in range(x.shape[2]):
                deviation = float(x[p, q, s]) - mean[q]
                m2[q] += deviation * deviation
    return mean, m2


def dot_moments(dy, x, mean):
    """Per q: ``sum(dy)`` and ``sum(dy * (x - mean[q]))`` over (p, s), in float64."""
    sum_dy = np.zeros(x.shape[1])
    sum_dy_centred = np.zeros(x.shape[1])
    for p in range(x.shape[0]):
        for q in range(x.shape[1]):
            for s in range(x.shape[2]):
                sum_dy[q] += float(dy[p, q, s])
                sum_dy_centred[q] += float(dy[p, q, s]) * (float(x[p, q, s]) - mean[q])
    return sum_dy, sum_dy_centred


def scale_shift(x, scale, shift):
    """``x * scale[q] + shift[q]``."""
    out = np.empty_like(x)
    for p in range(x.shape[0]):
        for q in range(x.shape[1]):
            for s in range(x.shape[2]):
                out[p, q, s] = x[p, q, s] * scale[q] + shift[q]
    return out


def axpby(dy, x, a, b, c):
    """``dy * a[q] + x * b[q] + c[q]``."""
    out = np.empty_like(x)
    for p in range(x.shape[0]):
        for q in range(x.shape[1]):
            for s in range(x.shape[2]):
                out[p, q, s] = dy[p, q, s] * a[q] + x[p, q, s] * b[q] + c[q]
    return out


def layer_normalize(x, mean, rstd, weight, bias):
    """Per row r: ``(x - mean[r]) * rstd[r] * weight + bias``, elementwise affine."""
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        for m in range(x.shape[1]):
            value = (x[r, m] - mean[r]) * rstd[r]
            if weight is not None:
                value = value * weight[m]
            if bias is not None:
                value = value + bias[m]
            out[r, m] = value
    return out


def layer_norm_backward(dy, x, mean, rstd, weight):
    """``(grad_input, sum_r dy * xhat, sum_r dy)`` for layer norm over rows."""
    rows, width = x.shape
    grad_input = np.empty_like(x)
    grad_weight = np.zeros(width)
    grad_bias = np.zeros(width)
    for r in range(rows):
        xhat = [(float(x[r, m]) - mean[r]) * rstd[r] for m in range(width)]
        g = [float(dy[r, m]) * (1.0 if weight is None else float(weight[m])) for m in range(width)]
        sum_g = sum(g)
        sum_g_xhat = sum(gi * xi for gi, xi in zip(g, xhat))
        for m in range(width):
            grad_input[r, m] = rstd[r] * (g[m] - sum_g / width - xhat[m] * sum_g_xhat / width)
            grad_weight[m] += float(dy[r, m]) * xhat[m]
            grad_bias[m] += float(dy[r, m])
    return grad_input, grad_weight, grad_bias
