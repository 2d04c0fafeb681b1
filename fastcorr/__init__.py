"""fastcorr: compiled cross-correlation and convolution kernels on NumPy arrays.

Two families, one dispatch layer:

* the signal family, compatible with ``scipy.signal``: :func:`correlate`,
  :func:`convolve`, :func:`correlate2d`, :func:`convolve2d`, and
  :func:`match_template` (like ``skimage.feature.match_template``);
* the network family, with ``torch.nn.functional`` semantics on NumPy arrays:
  :func:`conv1d`, :func:`conv2d`, :func:`conv3d`, :func:`unfold` (``im2col``),
  :func:`fold` (``col2im``), :func:`conv_output_shape`, :func:`conv_matrix`.

Every function takes ``backend=`` (``'auto'``, ``'naive'``, ``'numpy'``,
``'scipy'``, ``'numba'``, ``'cuda'``); see :func:`use_backend` and
:func:`backends`.  Importing fastcorr compiles nothing: kernels compile on
first use and are cached on disk where possible.
"""

from ._dispatch import backends, get_num_threads, set_num_threads, use_backend
from ._shapes import conv_output_shape
from .conv import conv1d, conv2d, conv3d, conv_matrix, fold, unfold
from .conv_backward import conv2d_backward, conv_transpose2d
from .norm import (
    batch_norm,
    batch_norm_backward,
    group_norm,
    group_norm_backward,
    instance_norm,
    instance_norm_backward,
    layer_norm,
    layer_norm_backward,
    moments,
)
from .pool import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
    max_pool2d_backward,
)
from .signal import convolve, convolve2d, correlate, correlate2d, match_template

__version__ = "0.1.0"

im2col = unfold
col2im = fold

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool2d_backward",
    "backends",
    "batch_norm",
    "batch_norm_backward",
    "col2im",
    "conv1d",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv_matrix",
    "conv_output_shape",
    "conv_transpose2d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "fold",
    "get_num_threads",
    "global_avg_pool2d",
    "global_max_pool2d",
    "group_norm",
    "group_norm_backward",
    "im2col",
    "instance_norm",
    "instance_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "match_template",
    "max_pool1d",
    "max_pool2d",
    "max_pool2d_backward",
    "moments",
    "set_num_threads",
    "unfold",
    "use_backend",
]
