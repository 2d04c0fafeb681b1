"""The cuda backend: ``numba.cuda`` kernels (numba-cuda, or numba's built-in target).

The same entry points as the CPU backends (see :mod:`fastcorr._dispatch`),
by family: correlation (:func:`correlate_valid`; :func:`correlate_fft`,
through CuPy's cuFFT where CuPy is installed, else the direct kernel, since
numba.cuda has no FFT; :func:`template_response`,
the normalisation of template matching), convolution (:func:`conv_forward`,
:func:`unfold`, :func:`fold`, :func:`conv_transpose`, :func:`conv_weight_grad`,
:func:`conv_bias_grad`), pooling (:func:`max_pool`, :func:`avg_pool` and
their backward) and normalisation (:func:`moments`, :func:`dot_moments`,
:func:`scale_shift`, :func:`axpby`, :func:`layer_normalize`,
:func:`layer_norm_backward`).  The other fused entry points of the numba
backend are absent: the front ends compose the plain ones instead.

Each entry point takes host (NumPy) or device arrays: host inputs are copied
to the device and the result back, device inputs are used in place and give
a device result (:mod:`._device`).  The public functions send every call
with a device array among its arguments here, under ``'auto'`` too, and
keep its data on the device between kernels: :mod:`._arrays` casts, copies,
pads and reverses device arrays for the front ends (see
:mod:`fastcorr._arrays`).  Results are deterministic: no kernel
adds floats atomically; the adjoints and reductions are gathers and
fixed-order tree sums.  Importing this module compiles nothing and needs no
GPU; each kernel compiles on its first launch for the dtypes it meets.
"""

from .correlate import (
    conv_forward,
    conv_transpose,
    conv_weight_grad,
    correlate_valid,
    fold,
    unfold,
)
from .fft import correlate_fft
from .norm import (
    axpby,
    conv_bias_grad,
    dot_moments,
    layer_norm_backward,
    layer_normalize,
    moments,
    scale_shift,
)
from .pool import avg_pool, avg_pool_backward, max_pool, max_pool_backward
from .template import template_response

__all__ = [
    "avg_pool",
    "avg_pool_backward",
    "axpby",
    "conv_bias_grad",
    "conv_forward",
    "conv_transpose",
    "conv_weight_grad",
    "correlate_fft",
    "correlate_valid",
    "dot_moments",
    "fold",
    "layer_norm_backward",
    "layer_normalize",
    "max_pool",
    "max_pool_backward",
    "moments",
    "scale_shift",
    "template_response",
    "unfold",
]
