"""Normalisation kernels in NumPy on ``(P, Q, S)`` views (see fastcorr.norm)."""

from __future__ import annotations

import numpy as np


def moments(x):
    """Two passes in float64: the mean, then squared deviations from it."""
    wide = x.astype(np.float64)
    mean = wide.mean(axis=(0, 2))
    deviation = wide - mean[:, None]
    return mean, np.einsum("pqs,pqs->q", deviation, deviation)


def dot_moments(dy, x, mean):
    wide_dy = dy.astype(np.float64)
    centred = x.astype(np.float64) - mean[:, None]
    return wide_dy.sum(axis=(0, 2)), np.einsum("pqs,pqs->q", wide_dy, centred)


def scale_shift(x, scale, shift):
    return x * scale[:, None] + shift[:, None]


def axpby(dy, x, a, b, c):
    return dy * a[:, None] + x * b[:, None] + c[:, None]


def layer_normalize(x, mean, rstd, weight, bias):
    out = (x - mean[:, None].astype(x.dtype)) * rstd[:, None].astype(x.dtype)
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias
    return out


def layer_norm_backward(dy, x, mean, rstd, weight):
    width = x.shape[1]
    wide_dy = dy.astype(np.float64)
    xhat = (x.astype(np.float64) - mean[:, None]) * rstd[:, None]
    g = wide_dy if weight is None else wide_dy * weight
    sum_g = g.sum(axis=1, keepdims=True)
    sum_g_xhat = np.einsum("rm,rm->r", g, xhat)[:, None]
    grad_input = rstd[:, None] * (g - sum_g / width - xhat * sum_g_xhat / width)
    return (grad_input.astype(x.dtype), np.einsum("rm,rm->m", wide_dy, xhat),
            wide_dy.sum(axis=0))
