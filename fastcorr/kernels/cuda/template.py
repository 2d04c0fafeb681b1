"""Template matching's normalisation on the GPU: the ``template_response`` entry point.

:func:`fastcorr.match_template` takes the cross-correlation of the image
with the template from ``correlate_valid``; what remains is, per placement,
the mean and variance of the image window under the template and the
Pearson quotient.  ``_response_kernel`` computes them with one thread per
placement, summing the window's values and squares directly in float64
(``kd * kh * kw`` reads, as many as the correlation itself made).  The
template's mean and sum of squared deviations come from the moments kernel
(one block, two passes) and stay on the device.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from . import _arrays, _device
from .norm import _moments_kernel, _reduce_threads


@cuda.jit
def _response_kernel(image, xcorr, template_mean, template_ssd, eps, out):
    """One thread per placement ``(z, r, c)``: the window's Pearson correlation with the template.

    ``numerator = xcorr - window_sum * template_mean``, ``denominator =
    sqrt(window_ssd * template_ssd)``; 0 where the denominator is at most
    ``eps`` (a window or template of no variance).
    """
    position = cuda.grid(1)
    depth, height, width = out.shape
    if position >= depth * height * width:
        return
    rest, c = divmod(position, width)
    z, r = divmod(rest, height)
    template_depth = image.shape[0] - depth + 1
    template_height = image.shape[1] - height + 1
    template_width = image.shape[2] - width + 1
    total = 0.0
    squares = 0.0
    for a in range(template_depth):
        for b in range(template_height):
            for d in range(template_width):
                value = float64(image[z + a, r + b, c + d])
                total += value
                squares += value * value
    count = template_depth * template_height * template_width
    numerator = xcorr[z, r, c] - total * template_mean[0]
    window_ssd = max(squares - total * total / count, 0.0)
    denominator = math.sqrt(window_ssd * template_ssd[0])
    out[z, r, c] = numerator / denominator if denominator > eps else 0.0


def template_response(image, template, xcorr):
    """Per placement of ``template`` on ``image``: Pearson correlation from ``xcorr``.

    Parameters
    ----------
    image : ndarray or device array, 2-D or 3-D, float32 or float64
    template : ndarray or device array, same ndim and dtype, no larger
    xcorr : ndarray or device array, float64
        The 'valid' correlation of ``image`` with ``template``.

    Returns
    -------
    ndarray or device array (as ``image``), shape of ``xcorr``, dtype of ``image``
    """
    out = _device.empty(xcorr.shape, image.dtype)
    if out.size:
        template = _device.to_device(template)
        if not template.is_c_contiguous():
            template = _arrays.copy(template)
        mean = _device.empty((1,), np.float64)
        m2 = _device.empty((1,), np.float64)
        _moments_kernel[1, _reduce_threads()](template.reshape((1, 1, template.size)), mean, m2)
        blocks, threads = _device.grid_1d(out.size)
        _response_kernel[blocks, threads](
            _arrays.lift(_device.to_device(image), 3), _arrays.lift(_device.to_device(xcorr), 3),
            mean, m2, float(np.finfo(image.dtype).eps), _arrays.lift(out, 3))
    return _device.finish(out, image)
