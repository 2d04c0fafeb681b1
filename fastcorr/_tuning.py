"""Dispatch constants (provisional; re-measured by tools/measure_crossovers.py)."""

import math


def choose_correlate_method(backend, x_shape, kernel_shape, dtype):
    """'direct' or 'fft' for one valid correlation, by a simple operation count."""
    if backend == "naive" or dtype.kind not in "fc":
        return "direct"
    out = math.prod(n - k + 1 for n, k in zip(x_shape, kernel_shape))
    direct = out * math.prod(kernel_shape)
    size = math.prod(x_shape)
    fft = 30 * size * max(1.0, math.log2(size))
    return "fft" if fft < direct else "direct"
