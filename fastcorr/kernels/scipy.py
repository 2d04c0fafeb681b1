"""The 'scipy' backend: the operations SciPy itself has.

``scipy.signal.correlate`` covers correlation and, applied over the channel
axis too, multichannel convolution.  SciPy has no im2col: ``unfold`` and
``fold`` are absent here, which dispatch reports as NotImplementedError.
"""

from __future__ import annotations

import numpy as np
import scipy.signal


def correlate_valid(x, kernel):
    # scipy.signal.correlate conjugates its second operand; undo that.
    return scipy.signal.correlate(x, np.conj(kernel), mode="valid", method="direct")


def correlate_fft(x, kernel):
    reversed_kernel = kernel[(slice(None, None, -1),) * kernel.ndim]
    out = scipy.signal.fftconvolve(x, reversed_kernel, mode="valid")
    if x.dtype.kind in "iu":  # as scipy.signal.convolve does for integers
        out = np.around(out)
    return out.astype(x.dtype, copy=False)


def conv_forward(x, weight, bias, stride, dilation, groups):
    """Each output plane is a 'valid' correlation over (channels, *spatial) at once.

    SciPy has no strided or dilated correlation: dilation inserts zeros into
    the kernel and stride subsamples the stride-1 result.
    """
    batch, channels = x.shape[:2]
    filters, group_channels = weight.shape[:2]
    kernel_size = weight.shape[2:]
    if any(d > 1 for d in dilation):
        dilated = np.zeros(weight.shape[:2] + tuple(d * (k - 1) + 1
                                                    for k, d in zip(kernel_size, dilation)),
                           dtype=weight.dtype)
        dilated[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = weight
        weight = dilated
    filters_per_group = filters // groups
    sample = tuple(slice(None, None, s) for s in stride)
    planes = []
    for n in range(batch):
        for f in range(filters):
            g = f // filters_per_group
            x_group = x[n, g * group_channels:(g + 1) * group_channels]
            plane = scipy.signal.correlate(x_group, weight[f], mode="valid", method="direct")
            planes.append(plane[0][sample])
    out = np.stack(planes).reshape((batch, filters) + planes[0].shape)
    if bias is not None:
        out += bias.reshape((1, filters) + (1,) * (out.ndim - 2))
    return out
