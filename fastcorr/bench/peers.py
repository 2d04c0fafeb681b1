"""The libraries fastcorr is measured against.

Each ``bind_*`` function takes a workload case and its inputs, converts what
needs converting once, and returns a zero-argument callable that does only the
work being timed: the call a user of that library would write.  Peers that
are not installed are imported only when bound.  torch's backward passes are
``torch.autograd.grad`` of a forward output recorded once at bind time, with
the case's output gradient.

Examples
--------
>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> im2col_matmul(x, np.ones((1, 1, 2, 2)), stride=2, padding=0)[0, 0]
array([[10., 18.],
       [42., 50.]])
>>> sliding_window_unfold(x, 2, stride=2, padding=0)[0]
array([[ 0.,  2.,  8., 10.],
       [ 1.,  3.,  9., 11.],
       [ 4.,  6., 12., 14.],
       [ 5.,  7., 13., 15.]])
"""

from __future__ import annotations

import importlib

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

from .environment import best_seconds


def _windows(x: np.ndarray, kernel_size: int, stride: int, padding: int) -> np.ndarray:
    """View ``(N, C, out_height, out_width, kh, kw)`` of the zero-padded ``x``."""
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    windows = sliding_window_view(padded, (kernel_size, kernel_size), axis=(2, 3))
    return windows[:, :, ::stride, ::stride]


def sliding_window_unfold(x: np.ndarray, kernel_size: int, stride: int, padding: int):
    """``unfold`` (im2col) as a NumPy user writes it: a copy of ``sliding_window_view``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, padding : int

    Returns
    -------
    ndarray, shape (N, C * kernel_size**2, out_height * out_width)
        torch's ``unfold`` layout.
    """
    windows = _windows(x, kernel_size, stride, padding)
    batch, channels, out_height, out_width = windows.shape[:4]
    columns = windows.transpose(0, 1, 4, 5, 2, 3)
    return columns.reshape(batch, channels * kernel_size**2, out_height * out_width)


def im2col_matmul(x: np.ndarray, weight: np.ndarray, stride: int, padding) -> np.ndarray:
    """``conv2d`` as a NumPy user writes it: copy the windows (im2col), then one matmul.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    weight : ndarray, shape (F, C, kh, kw)
    stride : int
    padding : int or 'valid'

    Returns
    -------
    ndarray, shape (N, F, out_height, out_width)
    """
    filters, _, kernel_size, _ = weight.shape
    windows = _windows(x, kernel_size, stride, 0 if padding == "valid" else padding)
    batch, _, out_height, out_width = windows.shape[:4]
    columns = windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch * out_height * out_width, -1)
    out = columns @ weight.reshape(filters, -1).T
    return out.reshape(batch, out_height, out_width, filters).transpose(0, 3, 1, 2)


def fastest(*calls, repeat: int = 3):
    """The fastest of equivalent calls (best of ``repeat`` after one warm call each)."""
    return min(calls, key=lambda call: best_seconds(call, repeat))


def _torch():
    return importlib.import_module("torch")


# C1 ---------------------------------------------------------------------------------------

def bind_scipy_correlate2d(case, image, kernel):
    return lambda: scipy.signal.correlate2d(image, kernel, mode=case.mode)


def bind_scipy_fftconvolve(case, image, kernel):
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    return lambda: scipy.signal.fftconvolve(image, flipped, mode=case.mode)


def bind_cv2_filter2d(case, image, kernel):
    """``cv2.filter2D`` centres the (odd) kernel: 'same' directly, 'full' on a zero-padded
    copy, 'valid' as the interior of 'same'."""
    cv2 = importlib.import_module("cv2")
    radius = case.kernel_size // 2

    def same(source):
        return cv2.filter2D(source, -1, kernel, borderType=cv2.BORDER_CONSTANT)

    if case.mode == "same":
        return lambda: same(image)
    if case.mode == "full":
        return lambda: same(cv2.copyMakeBorder(image, *(4 * [radius]),
                                               cv2.BORDER_CONSTANT, value=0))
    interior = slice(radius, case.image_size - radius)
    return lambda: same(image)[interior, interior]


def bind_torch_correlate2d(case, image, kernel):
    torch = _torch()
    x = torch.from_numpy(image)[None, None]
    weight = torch.from_numpy(kernel)[None, None]
    padding = {"full": case.kernel_size - 1, "valid": 0, "same": case.kernel_size // 2}[case.mode]
    conv2d = torch.nn.functional.conv2d
    return lambda: conv2d(x, weight, padding=padding)[0, 0]


# C2 ---------------------------------------------------------------------------------------

def bind_torch_conv2d(case, x, weight):
    torch = _torch()
    x_tensor, weight_tensor = torch.from_numpy(x), torch.from_numpy(weight)
    conv2d = torch.nn.functional.conv2d
    return lambda: conv2d(x_tensor, weight_tensor, stride=case.stride, padding=case.padding)


def bind_im2col_matmul(case, x, weight):
    return lambda: im2col_matmul(x, weight, case.stride, case.padding)


# C3 ---------------------------------------------------------------------------------------

def _layer_padding(layer) -> int:
    return 0 if layer.padding == "valid" else layer.padding


def bind_torch_unfold(case, x):
    unfold = _torch().nn.functional.unfold
    layer, x_tensor = case.layer, _torch().from_numpy(x)
    return lambda: unfold(x_tensor, layer.kernel_size, padding=_layer_padding(layer),
                          stride=layer.stride)


def bind_sliding_window_unfold(case, x):
    layer = case.layer
    return lambda: sliding_window_unfold(x, layer.kernel_size, layer.stride,
                                         _layer_padding(layer))


# C4 ---------------------------------------------------------------------------------------

def bind_torch_pool(case, x):
    """``F.max_pool2d`` / ``F.avg_pool2d``; global pooling: the faster of
    ``adaptive_*_pool2d(x, 1)`` and ``x.amax/mean((2, 3))``."""
    functional = _torch().nn.functional
    x_tensor = _torch().from_numpy(x)
    if case.kind == "global_avg":
        return fastest(lambda: functional.adaptive_avg_pool2d(x_tensor, 1)[..., 0, 0],
                       lambda: x_tensor.mean((2, 3)))
    if case.kind == "global_max":
        return fastest(lambda: functional.adaptive_max_pool2d(x_tensor, 1)[..., 0, 0],
                       lambda: x_tensor.amax((2, 3)))
    pool = functional.max_pool2d if case.kind == "max" else functional.avg_pool2d
    return lambda: pool(x_tensor, case.kernel_size, case.stride, case.padding)


# C5 ---------------------------------------------------------------------------------------

def torch_norm(case, x, weight, bias):
    """torch's forward call of the case's normalisation on tensors."""
    functional = _torch().nn.functional
    if case.kind == "batch":
        return functional.batch_norm(x, None, None, weight, bias, training=True)
    if case.kind == "layer":
        return functional.layer_norm(x, case.shape[1:], weight, bias)
    if case.kind == "instance":
        return functional.instance_norm(x, weight=weight, bias=bias)
    return functional.group_norm(x, case.groups, weight, bias)


def bind_torch_norm(case, *inputs):
    """Forward under ``torch.no_grad()``; backward: autograd for ``x``, weight and bias."""
    torch = _torch()
    if case.direction == "forward":
        tensors = [torch.from_numpy(array) for array in inputs]

        def forward():
            with torch.no_grad():
                return torch_norm(case, *tensors)
        return forward
    grad, *leaves = (torch.from_numpy(array) for array in inputs)
    leaves = [leaf.requires_grad_() for leaf in leaves]
    out = torch_norm(case, *leaves)
    return lambda: torch.autograd.grad(out, leaves, grad, retain_graph=True)


# C6 ---------------------------------------------------------------------------------------

def bind_torch_conv2d_backward(case, grad, x, weight):
    """Autograd of ``conv2d(x, weight, bias)``: the input, weight and bias gradients."""
    torch = _torch()
    layer = case.layer
    x_tensor = torch.from_numpy(x).requires_grad_()
    leaves = [x_tensor, torch.from_numpy(weight).requires_grad_(),
              torch.zeros(layer.out_channels, dtype=x_tensor.dtype, requires_grad=True)]
    out = torch.nn.functional.conv2d(*leaves, stride=layer.stride, padding=layer.padding)
    grad_tensor = torch.from_numpy(grad)
    return lambda: torch.autograd.grad(out, leaves, grad_tensor, retain_graph=True)

