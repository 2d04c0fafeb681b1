"""The libraries fastcorr is measured against, and the float64 references results are checked with.

Each ``bind_*`` function takes a workload case and its inputs, converts what
needs converting once, and returns a zero-argument callable that does only the
work being timed.  Peers that are not installed are imported only when bound.

Examples
--------
>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> im2col_matmul(x, np.ones((1, 1, 2, 2)), stride=2, padding=0)[0, 0]
array([[10., 18.],
       [42., 50.]])
"""

from __future__ import annotations

import importlib

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view


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
    pad = 0 if padding == "valid" else padding
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    filters, channels, kernel_height, kernel_width = weight.shape
    windows = sliding_window_view(padded, (kernel_height, kernel_width), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]  # (N, C, out_height, out_width, kh, kw)
    batch, _, out_height, out_width = windows.shape[:4]
    columns = windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch * out_height * out_width, -1)
    out = columns @ weight.reshape(filters, -1).T
    return out.reshape(batch, out_height, out_width, filters).transpose(0, 3, 1, 2)


def reference_c1(case, image, kernel) -> np.ndarray:
    """``correlate2d(image, kernel, case.mode)`` in float64, by FFT (real inputs, odd kernels)."""
    flipped = kernel[::-1, ::-1].astype(np.float64)
    return scipy.signal.fftconvolve(image.astype(np.float64), flipped, mode=case.mode)


def reference_c2(case, x, weight) -> np.ndarray:
    """``conv2d(x, weight, stride, padding)`` in float64."""
    return im2col_matmul(x.astype(np.float64), weight.astype(np.float64),
                         case.stride, case.padding)


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
    torch = importlib.import_module("torch")
    x = torch.from_numpy(image)[None, None]
    weight = torch.from_numpy(kernel)[None, None]
    padding = {"full": case.kernel_size - 1, "valid": 0, "same": case.kernel_size // 2}[case.mode]
    conv2d = torch.nn.functional.conv2d
    return lambda: conv2d(x, weight, padding=padding)[0, 0]


def bind_torch_conv2d(case, x, weight):
    torch = importlib.import_module("torch")
    x_tensor, weight_tensor = torch.from_numpy(x), torch.from_numpy(weight)
    conv2d = torch.nn.functional.conv2d
    return lambda: conv2d(x_tensor, weight_tensor, stride=case.stride, padding=case.padding)


def bind_im2col_matmul(case, x, weight):
    return lambda: im2col_matmul(x, weight, case.stride, case.padding)
