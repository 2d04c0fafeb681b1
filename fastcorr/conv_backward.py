"""Gradients of the convolution, and the transposed convolution built on them.

Both adjoints of :func:`fastcorr.conv2d` are kernel entry points of their own:
``conv_transpose`` (in ``x``: scatter each output back through the kernel,
which is also ``conv_transpose2d``) and ``conv_weight_grad`` (in ``weight``:
the correlation of the padded input with ``grad_output``).  Two fused entry
points, with fallbacks here for the backends that lack them:

``conv_transpose_cropped(grad, weight, stride, dilation, groups, size, crop)``
    ``conv_transpose`` cut to ``out[..., before:size - after]`` per dimension
    (``crop`` holds the pairs): the gradient of zero padding, or
    ``conv_transpose2d``'s ``padding``, is then never computed nor copied.
``conv_weight_grad_padded(x, grad, kernel_size, stride, dilation, groups, pads)``
    ``conv_weight_grad`` of ``x`` zero-padded by ``pads`` (pairs), the
    padding written by the backend (in parallel) rather than by NumPy.
``conv_bias_grad(grad)``
    ``grad`` summed over all axes but the channels, accumulated in float64.
``conv_transpose_cropped_bias(grad, weight, stride, dilation, groups, size, crop)``
    ``(conv_transpose_cropped(...), conv_bias_grad(grad))``: a backend may
    sum ``grad`` while it reads it for the transposed convolution.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _arrays, _dispatch
from ._checks import as_array, floating, int_tuple, int_value
from ._shapes import valid_shape
from .conv import _batched, _lift, _lift3, conv_args


def _transpose_cropped(func, backend, grad, weight, stride, dilation, groups, size, crop):
    """``conv_transpose_cropped`` from ``conv_transpose``: the whole result, then the inner part."""
    full = _dispatch.run(func, "conv_transpose", backend, grad, weight, stride, dilation, groups,
                         size, what="transposed convolution")
    inner = tuple(slice(before, n - after) for n, (before, after) in zip(size, crop))
    return _arrays.ascontiguousarray(full[(slice(None), slice(None)) + inner])


def _weight_grad_padded(func, backend, x, grad, kernel_size, stride, dilation, groups, pads):
    """``conv_weight_grad_padded`` from ``conv_weight_grad``: ``x`` padded with zeros first."""
    padded = _arrays.ascontiguousarray(_arrays.pad(x, ((0, 0), (0, 0)) + tuple(pads)))
    return _dispatch.run(func, "conv_weight_grad", backend, padded, grad, kernel_size, stride,
                         dilation, groups, what="weight gradient")


def _bias_grad(grad):
    """``conv_bias_grad``: ``grad`` summed over all but its channel axis, in float64."""
    return grad.sum(axis=(0, 2, 3, 4), dtype=np.float64).astype(grad.dtype)


def _transpose_cropped_bias(func, backend, grad, weight, stride, dilation, groups, size, crop):
    """``conv_transpose_cropped_bias`` from ``conv_transpose_cropped`` and ``conv_bias_grad``."""
    grad_input = _dispatch.run(func, "conv_transpose_cropped", backend, grad, weight, stride,
                               dilation, groups, size, crop, what="transposed convolution",
                               fallback=functools.partial(_transpose_cropped, func, backend))
    return grad_input, _dispatch.run(func, "conv_bias_grad", backend, grad,
                                     what="bias gradient", fallback=_bias_grad)


@_arrays.device_aware
def conv2d_backward(grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", output_mask=(True, True, True), *, backend=None):
    """Gradients of :func:`fastcorr.conv2d`: ``(grad_input, grad_weight, grad_bias)``.

    As torch autograd gives them for ``conv2d(x, weight, bias, ...)``; the
    bias itself does not enter the gradients.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to conv2d's output.
    x, weight, stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    output_mask : tuple of 3 bools, default (True, True, True)
        Which of the three gradients to compute; the others are ``None``.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    (ndarray or None, ndarray or None, ndarray or None)
        ``grad_input`` shaped like ``x``, ``grad_weight`` like ``weight``,
        ``grad_bias`` of shape ``(out_channels,)``.

    See Also
    --------
    conv2d, conv_transpose2d

    Examples
    --------
    Seed 003: the weight gradient is the correlation of the input with the
    output gradient.

    >>> import numpy as np, fastcorr
    >>> a = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> delta = np.ones((1, 1, 2, 2))
    >>> _, grad_weight, grad_bias = fastcorr.conv2d_backward(delta, a, np.zeros((1, 1, 2, 2)))
    >>> grad_weight
    array([[[[12., 16.],
             [24., 28.]]]])
    >>> grad_bias
    array([4.])
    """
    func = "conv2d_backward"
    if not isinstance(output_mask, tuple | list) or len(output_mask) != 3:
        raise ValueError(f"{func}: parameter 'output_mask' must be 3 bools, got {output_mask!r}")
    args = conv_args(func, 2, x, weight, None, stride, padding, dilation, groups, padding_mode)
    pads = ((0, 0),) + tuple(args.pads)  # lifted to (D, H, W)
    # Zero padding is left to the kernels; the other modes pad here (which also checks
    # that the padding fits the mode).
    padded = None if args.pad_mode == "constant" else args.padded(func)
    padded_size = tuple(n + before + after for n, (before, after) in zip(args.x.shape[2:], pads))
    out_shape = args.x.shape[:1] + args.weight.shape[:1] + valid_shape(
        padded_size, args.weight.shape[2:], args.dilation, args.stride)
    grad = as_array(func, "grad_output", grad_output)
    expected = args.unlift(np.empty(out_shape, dtype=np.bool_)).shape
    if grad.shape != expected:
        raise ValueError(f"{func}: parameter 'grad_output' must have conv2d's output shape "
                         f"{expected}, got {grad.shape}")
    grad = _arrays.reshape(_arrays.ascontiguousarray(grad, args.x.dtype), out_shape)

    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        transpose_args = (grad, args.weight, args.stride, args.dilation, args.groups, padded_size)
        if args.pad_mode == "constant" and output_mask[2]:
            # Zero padding: its gradient is dropped, so it is not computed at all; the bias
            # gradient may come from the same pass over `grad`.
            fallback = functools.partial(_transpose_cropped_bias, func, backend)
            grad_input, grad_bias = _dispatch.run(
                func, "conv_transpose_cropped_bias", backend, *transpose_args, pads,
                what="transposed convolution", fallback=fallback)
        elif args.pad_mode == "constant":
            fallback = functools.partial(_transpose_cropped, func, backend)
            grad_input = _dispatch.run(func, "conv_transpose_cropped", backend, *transpose_args,
                                       pads, what="transposed convolution", fallback=fallback)
        else:
            grad_padded = _dispatch.run(func, "conv_transpose", backend, *transpose_args,
                                        what="transposed convolution")
            shape = tuple(grad_padded.shape)
            grad_padded = _arrays.reshape(grad_padded, shape[:2] + shape[3:])
            grad_input = _lift(_arrays.ascontiguousarray(_arrays.pad_adjoint(
                grad_padded, ((0, 0), (0, 0)) + tuple(args.pads), args.pad_mode)), 2)
        grad_input = args.unlift(grad_input)
    if output_mask[1]:
        weight_args = (grad, args.weight.shape[2:], args.stride, args.dilation, args.groups)
        if args.pad_mode == "constant":
            fallback = functools.partial(_weight_grad_padded, func, backend)
            grad_weight = _dispatch.run(func, "conv_weight_grad_padded", backend, args.x,
                                        *weight_args, pads, what="weight gradient",
                                        fallback=fallback)
        else:
            grad_weight = _dispatch.run(func, "conv_weight_grad", backend, padded,
                                        *weight_args, what="weight gradient")
        shape = tuple(grad_weight.shape)
        grad_weight = _arrays.reshape(grad_weight, shape[:2] + shape[3:])
    if output_mask[2] and grad_bias is None:
        grad_bias = _dispatch.run(func, "conv_bias_grad", backend, grad, what="bias gradient",
                                  fallback=_bias_grad)
    return grad_input, grad_weight, grad_bias


@_arrays.device_aware
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None):
    """Transposed 2-D convolution, like ``torch.nn.functional.conv_transpose2d``.

    The adjoint of :func:`fastcorr.conv2d` with the same ``weight``: each
    input element scatters ``weight`` into the output.  The output size is
    ``(in - 1) * stride - 2 * padding + dilation * (kernel - 1) +
    output_padding + 1``.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
    weight : array_like
        ``(C_in, C_out / groups, kh, kw)``.
    bias : array_like, optional
        ``(C_out,)``.
    stride, padding, dilation : int or tuple of 2 ints
        ``padding`` crops that many elements from each side of the full
        result, as torch does.
    output_padding : int or tuple of 2 ints, default 0
        Extra size at the end of each dimension; smaller than stride or
        dilation.
    groups : int, default 1
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    See Also
    --------
    conv2d, conv2d_backward

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.conv_transpose2d(np.ones((1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2)
    array([[[1., 1., 1., 1.],
            [1., 1., 1., 1.],
            [1., 1., 1., 1.],
            [1., 1., 1., 1.]]])
    """
    func = "conv_transpose2d"
    x, unbatched = _batched(func, as_array(func, "x", x), 2)
    weight = as_array(func, "weight", weight)
    if weight.ndim != 4:
        raise ValueError(f"{func}: parameter 'weight' must be 4-D (in_channels, "
                         f"out_channels / groups, kh, kw), got shape {weight.shape}")
    groups = int_value(func, "groups", groups, minimum=1)
    channels = x.shape[1]
    if weight.shape[0] != channels or channels % groups:
        raise ValueError(f"{func}: parameter 'x' has {channels} channels but 'weight' has "
                         f"{weight.shape[0]} input channels (groups={groups} must divide them)")
    arrays = [x, weight]
    if bias is not None:
        bias = as_array(func, "bias", bias)
        if bias.shape != (weight.shape[1] * groups,):
            raise ValueError(f"{func}: parameter 'bias' must have shape "
                             f"({weight.shape[1] * groups},), got {bias.shape}")
        arrays.append(bias)
    dtype = floating(func, *arrays)
    stride = int_tuple(func, "stride", stride, 2, minimum=1)
    padding = int_tuple(func, "padding", padding, 2, minimum=0)
    dilation = int_tuple(func, "dilation", dilation, 2, minimum=1)
    output_padding = int_tuple(func, "output_padding", output_padding, 2, minimum=0)
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{func}: parameter 'output_padding' {output_padding} must be smaller "
                         f"than stride {stride} or dilation {dilation}")
    kernel = weight.shape[2:]
    full = tuple((n - 1) * s + d * (k - 1) + 1 + op for n, s, d, k, op in
                 zip(x.shape[2:], stride, dilation, kernel, output_padding))
    if any(size - 2 * p < 1 for size, p in zip(full, padding)):
        raise ValueError(f"{func}: parameter 'padding' {padding} leaves no output: the "
                         f"uncropped output is {full}")
    out = _dispatch.run(func, "conv_transpose_cropped", backend,
                        _lift(_arrays.ascontiguousarray(x, dtype), 2),
                        _lift(_arrays.ascontiguousarray(weight, dtype), 2),
                        _lift3(stride, 1), _lift3(dilation, 1), groups, (1,) + full,
                        ((0, 0),) + tuple((p, p) for p in padding),
                        what="transposed convolution",
                        fallback=functools.partial(_transpose_cropped, func, backend))
    if bias is not None:
        _arrays.add_channels(out, bias)
    out = out[:, :, 0]
    return out[0] if unbatched else out
