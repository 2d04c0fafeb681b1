"""Shape arithmetic, in one place: output sizes and padding."""

from __future__ import annotations

from ._checks import choice, int_tuple, int_value

_PADDING_WORDS = {"valid": "valid", "same": "same", "full": "full"}


def _spatial_count(*values) -> int:
    """How many spatial dimensions the tuple-valued arguments describe (1 for all ints)."""
    lengths = {len(v) for v in values if isinstance(v, tuple | list)}
    if len(lengths) > 1:
        raise ValueError(f"conv_output_shape: tuple arguments differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 1


def conv_output_shape(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False,
                      *, backend=None):
    """Spatial output size of a convolution or pooling window, as torch computes it.

    ``out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1``
    (``ceil`` with ``ceil_mode=True``, where as in torch's pooling the last
    window must start inside the input or its left padding).

    Parameters
    ----------
    input_size, kernel_size, stride, dilation : int or tuple of int
        Per spatial dimension; an int applies to every dimension.
    padding : int, tuple, or 'valid', 'same', 'full'
        As in :func:`fastcorr.conv2d`; a tuple entry may be a
        ``(before, after)`` pair.
    ceil_mode : bool, default False
        Round up, as pooling layers with ``ceil_mode=True`` do.
    backend : ignored
        Accepted for uniformity: this is arithmetic, the same on every backend.

    Returns
    -------
    int or tuple of int
        An int when every argument is an int, else a tuple.

    Examples
    --------
    Seed 003: a 5x5 kernel with padding 1 and stride 2 on a 1024x768 image.

    >>> from fastcorr import conv_output_shape
    >>> conv_output_shape((1024, 768), 5, stride=2, padding=1)
    (511, 383)
    >>> conv_output_shape(7, 3, padding='same')
    7
    """
    func = "conv_output_shape"
    ndim = _spatial_count(input_size, kernel_size, stride, dilation,
                          padding if not isinstance(padding, str) else 0)
    sizes = int_tuple(func, "input_size", input_size, ndim, minimum=1)
    kernel = int_tuple(func, "kernel_size", kernel_size, ndim, minimum=1)
    strides = int_tuple(func, "stride", stride, ndim, minimum=1)
    dilations = int_tuple(func, "dilation", dilation, ndim, minimum=1)
    pads = resolve_padding(func, padding, kernel, dilations, strides)
    out = tuple(
        window_count(func, n, k, s, p, d, bool(ceil_mode))
        for n, k, s, p, d in zip(sizes, kernel, strides, pads, dilations, strict=True)
    )
    scalar = not any(isinstance(v, tuple | list) for v in (input_size, kernel_size, stride,
                                                            padding, dilation))
    return out[0] if scalar else out


def window_count(func: str, size: int, kernel: int, stride: int, pad: tuple, dilation: int,
                ceil_mode: bool = False) -> int:
    """One spatial output size; ``pad`` is a ``(before, after)`` pair."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad[0] + pad[1]
    if span > padded:
        raise ValueError(
            f"{func}: kernel extent {span} (kernel_size {kernel}, dilation {dilation}) is larger "
            f"than the padded input size {padded}"
        )
    steps = padded - span
    count = (-(-steps // stride) if ceil_mode else steps // stride) + 1
    if ceil_mode and (count - 1) * stride >= size + pad[0]:
        count -= 1  # torch: the last window must start inside the input or the left padding
    return count


def resolve_padding(func: str, padding, kernel: tuple, dilation: tuple, stride: tuple) -> tuple:
    """Canonical padding: a ``(before, after)`` pair per spatial dimension.

    Accepts an int, a tuple of ints (symmetric, one per dimension), a tuple of
    ``(before, after)`` pairs, or 'valid', 'same' (stride 1 only, the extra
    element after, as torch does for even kernels) and 'full'.
    """
    ndim = len(kernel)
    if isinstance(padding, str):
        word = choice(func, "padding", padding, _PADDING_WORDS)
        if word == "same" and any(s != 1 for s in stride):
            raise ValueError(f"{func}: padding='same' needs stride 1, got stride {stride}")
        result = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            if word == "valid":
                result.append((0, 0))
            elif word == "same":
                result.append((total // 2, total - total // 2))
            else:
                result.append((total, total))
        return tuple(result)
    if isinstance(padding, tuple | list) and any(isinstance(p, tuple | list) for p in padding):
        if len(padding) != ndim or not all(isinstance(p, tuple | list) and len(p) == 2
                                           for p in padding):
            raise ValueError(
                f"{func}: parameter 'padding' as pairs needs {ndim} (before, after) pairs, "
                f"got {padding!r}"
            )
        return tuple(tuple(int_value(func, "padding", v, minimum=0) for v in p) for p in padding)
    pads = int_tuple(func, "padding", padding, ndim, minimum=0)
    return tuple((p, p) for p in pads)


def valid_shape(size, kernel_size, dilation, stride) -> tuple:
    """Window positions per dimension of an already padded input (kernels' canonical case)."""
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, d, s in zip(size, kernel_size, dilation, stride, strict=True))
