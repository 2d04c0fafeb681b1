"""The network family: torch.nn.functional's convolutions on NumPy arrays.

Layout is channels-first, ``(N, C, *spatial)``, with 1, 2 or 3 spatial
dimensions; unbatched ``(C, *spatial)`` inputs give unbatched results.  The
front ends here check and normalise arguments once, pad the input
(``padding_mode``), lift every case to three spatial dimensions and call one
kernel entry point per operation through :mod:`fastcorr._dispatch`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _arrays, _dispatch
from ._checks import as_array, choice, floating, int_tuple, int_value
from ._shapes import resolve_padding, window_count

# torch.nn.Conv*d padding modes, mapped to numpy.pad modes.
_PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                  "circular": "wrap"}


def _lift(array: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """View ``(N, C, *spatial)`` as ``(N, C, D, H, W)`` by inserting unit axes."""
    shape = tuple(array.shape)
    return _arrays.reshape(array, shape[:2] + (1,) * (3 - spatial_ndim) + shape[2:])


def _lift3(values: tuple, fill: int) -> tuple:
    return (fill,) * (3 - len(values)) + tuple(values)


def _batched(func: str, x: np.ndarray, spatial_ndim: int, name: str = "x"):
    """``x`` with a batch axis, and whether one had to be added."""
    if x.ndim == spatial_ndim + 2:
        return x, False
    if x.ndim == spatial_ndim + 1:
        return _arrays.new_axis(x), True
    raise ValueError(
        f"{func}: parameter {name!r} must be {spatial_ndim + 2}-D (N, C, *spatial) or "
        f"{spatial_ndim + 1}-D (C, *spatial), got shape {x.shape}"
    )


def _pad_spatial(func: str, x: np.ndarray, pads: tuple, mode: str, dtype) -> np.ndarray:
    """Pad the spatial axes of a batched array and return a contiguous copy of ``dtype``."""
    sizes = x.shape[2:]
    if mode == "reflect" and any(max(p) >= n for p, n in zip(pads, sizes)):
        raise ValueError(f"{func}: padding {pads} with padding_mode='reflect' must be smaller "
                         f"than the input's spatial size {sizes}")
    if mode == "wrap" and any(max(p) > n for p, n in zip(pads, sizes)):
        raise ValueError(f"{func}: padding {pads} with padding_mode='circular' must not exceed "
                         f"the input's spatial size {sizes}")
    x = _arrays.asarray(x, dtype)
    if all(p == (0, 0) for p in pads):
        return _arrays.ascontiguousarray(x)
    return _arrays.ascontiguousarray(_arrays.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode))


class ConvArgs(NamedTuple):
    """A convolution's canonical arguments: arrays lifted to 3 spatial dimensions."""

    x: np.ndarray          # (N, C, D, H, W), not yet padded, compute dtype
    weight: np.ndarray     # (F, C / groups, kd, kh, kw), contiguous, compute dtype
    bias: np.ndarray | None
    stride: tuple          # 3 ints
    dilation: tuple        # 3 ints
    pads: tuple            # the spatial_ndim (before, after) pairs, not lifted
    pad_mode: str          # a numpy.pad mode
    groups: int
    unbatched: bool
    spatial_ndim: int

    def padded(self, func: str) -> np.ndarray:
        """The input with its padding, contiguous, ``(N, C, D, H, W)``."""
        spatial = tuple(self.x.shape[5 - self.spatial_ndim:])
        x = _arrays.reshape(self.x, tuple(self.x.shape[:2]) + spatial)
        return _lift(_pad_spatial(func, x, self.pads, self.pad_mode, self.x.dtype),
                     self.spatial_ndim)

    def unlift(self, out: np.ndarray) -> np.ndarray:
        """A lifted ``(N, C, D, H, W)`` result in the caller's layout."""
        shape = tuple(out.shape)
        out = _arrays.reshape(out, shape[:2] + shape[5 - self.spatial_ndim:])
        return out[0] if self.unbatched else out


def conv_args(func, spatial_ndim, x, weight, bias, stride, padding, dilation, groups,
              padding_mode) -> ConvArgs:
    """Check and normalise a convolution's arguments once, for forward and backward."""
    x = as_array(func, "x", x)
    weight = as_array(func, "weight", weight)
    if weight.ndim != spatial_ndim + 2:
        raise ValueError(f"{func}: parameter 'weight' must be {spatial_ndim + 2}-D "
                         f"(out_channels, in_channels / groups, *kernel), got shape {weight.shape}")
    x, unbatched = _batched(func, x, spatial_ndim)
    arrays = [x, weight]
    if bias is not None:
        bias = as_array(func, "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"{func}: parameter 'bias' must have shape ({weight.shape[0]},) "
                             f"(one per output channel), got {bias.shape}")
        arrays.append(bias)
    dtype = floating(func, *arrays)
    groups = int_value(func, "groups", groups, minimum=1)
    channels, filters = x.shape[1], weight.shape[0]
    if filters % groups:
        raise ValueError(f"{func}: parameter 'groups'={groups} must divide the output channels "
                         f"(weight.shape[0]={filters})")
    if weight.shape[1] * groups != channels:
        raise ValueError(
            f"{func}: parameter 'x' has {channels} channels but 'weight' expects "
            f"{weight.shape[1] * groups} (weight.shape[1]={weight.shape[1]} x groups={groups})"
        )
    kernel = weight.shape[2:]
    stride = int_tuple(func, "stride", stride, spatial_ndim, minimum=1)
    dilation = int_tuple(func, "dilation", dilation, spatial_ndim, minimum=1)
    pads = resolve_padding(func, padding, kernel, dilation, stride)
    pad_mode = choice(func, "padding_mode", padding_mode, _PADDING_MODES)
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, pads, dilation, strict=True):
        window_count(func, size, k, s, p, d)  # raises if the kernel does not fit
    return ConvArgs(
        x=_lift(_arrays.asarray(x, dtype), spatial_ndim),
        weight=_lift(_arrays.ascontiguousarray(weight, dtype), spatial_ndim),
        bias=None if bias is None else _arrays.ascontiguousarray(bias, dtype),
        stride=_lift3(stride, 1), dilation=_lift3(dilation, 1), pads=pads, pad_mode=pad_mode,
        groups=groups, unbatched=unbatched, spatial_ndim=spatial_ndim,
    )


def _conv(func, spatial_ndim, x, weight, bias, stride, padding, dilation, groups, padding_mode,
          backend):
    args = conv_args(func, spatial_ndim, x, weight, bias, stride, padding, dilation, groups,
                     padding_mode)
    out = _dispatch.run(func, "conv_forward", backend, args.padded(func), args.weight, args.bias,
                        args.stride, args.dilation, args.groups, what="convolution")
    return args.unlift(out)


_CONV_DOC = """{dims}-D convolution (cross-correlation), like ``torch.nn.functional.conv{n}d``.

    ``out[n, f, o] = bias[f] + sum_{{c, k}} weight[f, c, k] * x_padded[n, g * C_g + c,
    o * stride + k * dilation]`` where ``g`` is ``f``'s group: no kernel flip.

    Parameters
    ----------
    x : array_like
        ``{shape}`` or unbatched ``{unbatched}``.
    weight : array_like
        ``(out_channels, in_channels / groups, {kernel})``.
    bias : array_like, optional
        ``(out_channels,)``.
    stride, dilation : int or tuple of {n} ints, default 1
    padding : int, tuple, 'valid', 'same' or 'full', default 0
        Per spatial dimension: an int, or a ``(before, after)`` pair for
        asymmetric padding.  'same' keeps the size (stride 1 only; the odd
        element goes after, as torch does); 'full' pads
        ``dilation * (kernel - 1)`` on both sides, the full correlation.
    groups : int, default 1
        Splits channels into groups convolved separately (``in_channels``
        for depthwise).
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        As ``torch.nn.Conv{n}d``'s ``padding_mode``.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    ndarray
        ``(N, out_channels, *out)``, unbatched if ``x`` was; float32 when every
        input is float32, else float64.  ``out`` per dimension is
        :func:`fastcorr.conv_output_shape`.

    See Also
    --------
    conv1d, conv2d, conv3d, conv_output_shape, conv_matrix

    Examples
    --------
{example}
"""


@_arrays.device_aware
def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, backend=None):
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                 backend)


@_arrays.device_aware
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, backend=None):
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                 backend)


@_arrays.device_aware
def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, backend=None):
    return _conv("conv3d", 3, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                 backend)


conv1d.__doc__ = _CONV_DOC.format(dims="1", n=1, shape="(N, C, L)", unbatched="(C, L)",
                                  kernel="k", example="""\
    >>> import numpy as np, fastcorr
    >>> x = np.array([[[4.0, 6.0, 3.0, 9.0]]])      # (N=1, C=1, L=4)
    >>> w = np.array([[[3.0, 2.0, 1.0]]])           # (F=1, C=1, k=3)
    >>> fastcorr.conv1d(x, w, padding="full")       # seed 000: [3,2,1] slides over x
    array([[[ 4., 14., 27., 33., 27., 27.]]])""")
conv2d.__doc__ = _CONV_DOC.format(dims="2", n=2, shape="(N, C, H, W)", unbatched="(C, H, W)",
                                  kernel="kh, kw", example="""\
    Seed 001: the 5x5 image 1..25 with a flipped Sobel-like kernel, padding 1, stride 2.

    >>> import numpy as np, fastcorr
    >>> x = np.arange(1.0, 26.0).reshape(1, 5, 5)              # unbatched (C, H, W)
    >>> h = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    >>> fastcorr.conv2d(x, h[::-1, ::-1][None, None], padding=1, stride=2)
    array([[[-19., -32., -29.],
            [-30., -40., -30.],
            [ 49.,  72.,  59.]]])""")
conv3d.__doc__ = _CONV_DOC.format(dims="3", n=3, shape="(N, C, D, H, W)",
                                  unbatched="(C, D, H, W)", kernel="kd, kh, kw", example="""\
    >>> import numpy as np, fastcorr
    >>> x = np.ones((1, 2, 4, 4, 4), dtype=np.float32)
    >>> w = np.ones((3, 2, 2, 2, 2), dtype=np.float32)
    >>> out = fastcorr.conv3d(x, w, stride=2)
    >>> out.shape, out.dtype, float(out[0, 0, 0, 0, 0])
    ((1, 3, 2, 2, 2), dtype('float32'), 16.0)""")


def _window_args(func, kernel_size, dilation, padding, stride):
    kernel = int_tuple(func, "kernel_size", kernel_size, 2, minimum=1)
    dilation = int_tuple(func, "dilation", dilation, 2, minimum=1)
    stride = int_tuple(func, "stride", stride, 2, minimum=1)
    pads = resolve_padding(func, padding, kernel, dilation, stride)
    return kernel, dilation, pads, stride


@_arrays.device_aware
def unfold(x, kernel_size, dilation=1, padding=0, stride=1, *, backend=None):
    """Extract sliding blocks as columns (im2col), like ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)`` or unbatched ``(C, H, W)``.
    kernel_size, dilation, stride : int or tuple of 2 ints
    padding : int, tuple or pairs, default 0
        Zero padding, as in :func:`conv2d`.
    backend : str, optional
        See :func:`fastcorr.use_backend`.  SciPy has no im2col: ``'scipy'``
        raises NotImplementedError.

    Returns
    -------
    ndarray
        ``(N, C * kh * kw, L)`` (or ``(C * kh * kw, L)``): row ``c * kh * kw +
        i * kw + j`` holds channel ``c`` at kernel offset ``(i, j)``, column
        ``l`` the ``l``-th output position in row-major order.

    See Also
    --------
    fold, conv2d

    Examples
    --------
    Seed 003's 3x3 input A with a 2x2 kernel: each column is one window.

    >>> import numpy as np, fastcorr
    >>> a = np.arange(1.0, 10.0).reshape(1, 3, 3)
    >>> fastcorr.unfold(a, 2)
    array([[1., 2., 4., 5.],
           [2., 3., 5., 6.],
           [4., 5., 7., 8.],
           [5., 6., 8., 9.]])
    """
    func = "unfold"
    x, unbatched = _batched(func, as_array(func, "x", x), 2)
    kernel, dilation, pads, stride = _window_args(func, kernel_size, dilation, padding, stride)
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, pads, dilation, strict=True):
        window_count(func, size, k, s, p, d)
    padded = _lift(_pad_spatial(func, x, pads, "constant", floating(func, x)), 2)
    cols = _dispatch.run(func, "unfold", backend, padded, (1,) + kernel, (1,) + dilation,
                         (1,) + stride, what="im2col")
    return cols[0] if unbatched else cols


@_arrays.device_aware
def fold(cols, output_size, kernel_size, dilation=1, padding=0, stride=1, *, backend=None):
    """Sum columns of blocks back into an image (col2im), like ``torch.nn.functional.fold``.

    The adjoint of :func:`unfold`: where blocks overlap, their entries add.

    Parameters
    ----------
    cols : array_like
        ``(N, C * kh * kw, L)`` or unbatched ``(C * kh * kw, L)``.
    output_size : int or tuple of 2 ints
        ``(H, W)`` of the result.
    kernel_size, dilation, padding, stride
        As in :func:`unfold`.
    backend : str, optional
        See :func:`fastcorr.use_backend`; ``'scipy'`` raises NotImplementedError.

    Returns
    -------
    ndarray
        ``(N, C, H, W)`` or ``(C, H, W)``.

    See Also
    --------
    unfold

    Examples
    --------
    Folding the unfolded blocks counts how many windows cover each pixel.

    >>> import numpy as np, fastcorr
    >>> cols = fastcorr.unfold(np.ones((1, 3, 3)), 2)
    >>> fastcorr.fold(cols, (3, 3), 2)
    array([[[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]]])
    """
    func = "fold"
    cols = as_array(func, "cols", cols)
    if cols.ndim not in (2, 3):
        raise ValueError(f"{func}: parameter 'cols' must be 3-D (N, C * kh * kw, L) or 2-D, "
                         f"got shape {cols.shape}")
    unbatched = cols.ndim == 2
    if unbatched:
        cols = _arrays.new_axis(cols)
    size = int_tuple(func, "output_size", output_size, 2, minimum=1)
    kernel, dilation, pads, stride = _window_args(func, kernel_size, dilation, padding, stride)
    kernel_volume = math.prod(kernel)
    if cols.shape[1] % kernel_volume:
        raise ValueError(f"{func}: parameter 'cols' dimension 1 ({cols.shape[1]}) must be "
                         f"divisible by the product of kernel_size {kernel} ({kernel_volume})")
    blocks = [window_count(func, n, k, s, p, d)
              for n, k, s, p, d in zip(size, kernel, stride, pads, dilation, strict=True)]
    if cols.shape[2] != math.prod(blocks):
        raise ValueError(f"{func}: parameter 'cols' has {cols.shape[2]} blocks (dimension 2) but "
                         f"output_size {size} with these kernel_size, dilation, padding and "
                         f"stride gives {blocks[0]} x {blocks[1]} = {math.prod(blocks)}")
    padded_size = (1,) + tuple(n + p[0] + p[1] for n, p in zip(size, pads))
    out = _dispatch.run(func, "fold", backend,
                        _arrays.ascontiguousarray(cols, floating(func, cols)),
                        padded_size, (1,) + kernel, (1,) + dilation, (1,) + stride,
                        what="col2im")
    out = out[:, :, 0, pads[0][0]:pads[0][0] + size[0], pads[1][0]:pads[1][0] + size[1]]
    out = _arrays.ascontiguousarray(out)
    return out[0] if unbatched else out



_SPARSE_FORMATS = {name: name for name in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")}


@_arrays.device_aware
def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1, format="csr",
                *, backend=None):
    """The sparse matrix ``A`` of a convolution: ``conv(x).ravel() == A @ x.ravel()``.

    Built by unfolding an image of input indices (padding marked -1), so the
    matrix follows exactly the windows the convolution uses.

    Parameters
    ----------
    weight : array_like
        A plain kernel ``(k,)`` or ``(kh, kw)`` when ``input_shape`` has the
        same number of dimensions (one channel, no batch); otherwise network
        weights ``(F, C / groups, *kernel)`` with 1 to 3 spatial dimensions.
    input_shape : tuple of int
        ``(*spatial)`` for a plain kernel; else ``(C, *spatial)`` or
        ``(N, C, *spatial)``.
    stride, padding, dilation, groups
        As in :func:`conv2d` (zero padding; 'full' gives the full correlation).
    format : str, default 'csr'
        Any scipy.sparse format name ('csr', 'csc', 'coo', 'lil', ...).
    backend : str, optional
        Backend of the unfold that builds the index windows.

    Returns
    -------
    scipy.sparse matrix
        ``(prod(output shape), prod(input_shape))``, weight's float dtype.

    See Also
    --------
    conv1d, conv2d, unfold

    Examples
    --------
    Seed 000: ``w ⋆ x = C_w x`` for ``w`` of length 3 and ``x`` of length 4.

    >>> import numpy as np, fastcorr
    >>> fastcorr.conv_matrix(np.array([1.0, 2.0, 3.0]), (4,), padding="full").toarray()
    array([[3., 0., 0., 0.],
           [2., 3., 0., 0.],
           [1., 2., 3., 0.],
           [0., 1., 2., 3.],
           [0., 0., 1., 2.],
           [0., 0., 0., 1.]])
    """
    import scipy.sparse

    func = "conv_matrix"
    format = choice(func, "format", format, _SPARSE_FORMATS)
    # The matrix is a host (SciPy) matrix: a device weight is copied to the host.
    weight = _arrays.to_host(as_array(func, "weight", weight))
    if not isinstance(input_shape, tuple | list) or not input_shape:
        raise TypeError(f"{func}: parameter 'input_shape' must be a tuple of ints, "
                        f"got {input_shape!r}")
    shape = tuple(int_value(func, "input_shape", n, minimum=1) for n in input_shape)
    if weight.ndim == len(shape) and weight.ndim in (1, 2):
        weight, shape, batch = weight[np.newaxis, np.newaxis], (1,) + shape, None
    else:
        spatial_ndim = weight.ndim - 2
        if spatial_ndim not in (1, 2, 3) or len(shape) not in (spatial_ndim + 1, spatial_ndim + 2):
            raise ValueError(f"{func}: parameters 'weight' {weight.shape} and 'input_shape' "
                             f"{shape} do not describe a 1-3-D convolution")
        batch = shape[0] if len(shape) == spatial_ndim + 2 else None
        shape = shape[-(spatial_ndim + 1):]
    spatial_ndim = len(shape) - 1
    dtype = floating(func, weight)
    groups = int_value(func, "groups", groups, minimum=1)
    filters, group_channels = weight.shape[:2]
    channels = shape[0]
    if filters % groups or group_channels * groups != channels:
        raise ValueError(f"{func}: 'input_shape' has {channels} channels but 'weight' "
                         f"{weight.shape} with groups={groups} expects {group_channels * groups} "
                         f"(and groups must divide {filters} output channels)")
    kernel = weight.shape[2:]
    stride = int_tuple(func, "stride", stride, spatial_ndim, minimum=1)
    dilation = int_tuple(func, "dilation", dilation, spatial_ndim, minimum=1)
    pads = resolve_padding(func, padding, kernel, dilation, stride)
    out_spatial = [window_count(func, n, k, s, p, d)
                   for n, k, s, p, d in zip(shape[1:], kernel, stride, pads, dilation, strict=True)]

    # Unfold an image whose pixels hold their own flat index, padding -1.
    index_image = np.arange(math.prod(shape), dtype=np.float64).reshape((1,) + shape)
    index_image = np.pad(index_image, ((0, 0), (0, 0)) + tuple(pads), constant_values=-1)
    windows = _dispatch.run(func, "unfold", backend, _lift(index_image, spatial_ndim),
                            _lift3(kernel, 1), _lift3(dilation, 1), _lift3(stride, 1),
                            what="im2col")
    kernel_volume, positions = math.prod(kernel), math.prod(out_spatial)
    filters_per_group = filters // groups
    # Broadcast to (groups, filters per group, channels per group, kernel offset, position).
    columns = windows[0].reshape(groups, 1, group_channels, kernel_volume, positions)
    values = weight.astype(dtype).reshape(groups, filters_per_group, group_channels,
                                          kernel_volume, 1)
    filter_index = np.arange(filters).reshape(groups, filters_per_group, 1, 1, 1)
    rows = filter_index * positions + np.arange(positions)
    columns, values, rows = np.broadcast_arrays(columns, values, rows)
    keep = (columns >= 0) & (values != 0)
    matrix = scipy.sparse.coo_matrix(
        (values[keep], (rows[keep], columns[keep].astype(np.int64))),
        shape=(filters * positions, math.prod(shape)),
    )
    if batch is not None:
        matrix = scipy.sparse.kron(scipy.sparse.identity(batch, dtype=dtype), matrix)
    return matrix.asformat(format)
