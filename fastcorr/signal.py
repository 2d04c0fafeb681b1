"""The signal family: SciPy-compatible correlation and convolution, and template matching.

Every function here checks and normalises its arguments, reduces the call to
a 'valid' cross-correlation of a padded array with a kernel, and hands that
to the backend through :mod:`fastcorr._dispatch`.  SciPy's quirks are kept on
purpose so that results match ``scipy.signal`` exactly: operands swap in
'valid' mode when the second is the larger, ``correlate2d`` conjugates
``in2``, integer inputs give integer results computed in integer arithmetic.
"""

from __future__ import annotations

import numpy as np

from . import _arrays, _dispatch, _tuning
from ._checks import as_array, choice

_MODES = {"full": "full", "valid": "valid", "same": "same"}
_METHODS = {"auto": "auto", "direct": "direct", "fft": "fft"}
# SciPy's boundary names and aliases, mapped to numpy.pad modes.
_BOUNDARIES = {"fill": "constant", "pad": "constant", "wrap": "wrap", "circular": "wrap",
               "symm": "symmetric", "symmetric": "symmetric"}


def _signal_inputs(func: str, in1, in2, *, small_types: bool):
    """Arrays and their common result dtype, as SciPy computes it.

    ``small_types``: accept bool and float16 (``correlate``/``convolve``; SciPy
    computes them in 1-d and by FFT) rather than refuse them
    (``correlate2d``/``convolve2d``, as SciPy always does).
    """
    in1 = as_array(func, "in1", in1)
    in2 = as_array(func, "in2", in2)
    if in1.ndim != in2.ndim:
        raise ValueError(
            f"{func}: in1 and in2 should have the same dimensionality, "
            f"got in1.ndim={in1.ndim} and in2.ndim={in2.ndim}"
        )
    dtype = np.result_type(in1.dtype, in2.dtype)
    if not small_types and (dtype.kind == "b" or dtype == np.float16):
        raise TypeError(f"{func}: dtype {dtype} is not supported (as in SciPy); "
                        f"convert in1 and in2 to float32 or float64")
    return in1, in2, dtype


# bool and float16 are computed in a wider type and converted back: bool as
# counts (a product sum is True where any product is), float16 in float32.
_COMPUTE_TYPES = {np.dtype(np.bool_): np.dtype(np.int64),
                  np.dtype(np.float16): np.dtype(np.float32)}


def _to_result(out, dtype: np.dtype):
    """The computed ``out`` in the result ``dtype`` (a bool is True where the count is not 0)."""
    return _arrays.asarray(out, dtype)


def _valid_swap_needed(func: str, shape1, shape2) -> bool:
    """SciPy's rule: in 'valid' mode one operand must contain the other in every dimension."""
    in1_larger = all(a >= b for a, b in zip(shape1, shape2, strict=True))
    in2_larger = all(b >= a for a, b in zip(shape1, shape2, strict=True))
    if not (in1_larger or in2_larger):
        raise ValueError(
            f"{func}: for 'valid' mode, one must be at least as large as the other in every "
            f"dimension, got in1.shape={tuple(shape1)} and in2.shape={tuple(shape2)}"
        )
    return not in1_larger


def _correlate_valid(func: str, x: np.ndarray, kernel: np.ndarray, method: str, backend,
                     pad_width=None, fillvalue=0):
    """Dispatch one 'valid' correlation ``sum_j x[i + j] * kernel[j]`` (no conjugation).

    ``pad_width`` ((before, after) per axis) pads ``x`` with ``fillvalue``
    first; where the backend has ``correlate_padded`` (direct) or
    ``correlate_fft_padded``, it pads tile by tile or strip by strip instead
    of copying the whole padded image.
    """
    x = _arrays.ascontiguousarray(x)
    kernel = _arrays.ascontiguousarray(kernel)
    if pad_width is None or all(before == after == 0 for before, after in pad_width):
        pad_width = None
    padded_shape = x.shape if pad_width is None else tuple(
        n + before + after for n, (before, after) in zip(x.shape, pad_width))
    if method == "auto":
        name = _dispatch.resolved_backend(backend, func)
        method = _tuning.choose_correlate_method(name, padded_shape, kernel.shape, x.dtype)

    def pad_and_correlate(x, kernel, pad_width=None, fillvalue=0):
        if pad_width is not None:
            x = _arrays.pad(x, pad_width, "constant", fillvalue)
        if method == "fft":
            return _dispatch.run(func, "correlate_fft", backend, x, kernel,
                                 what="FFT correlation (method='fft')")
        return _dispatch.run(func, "correlate_valid", backend, x, kernel,
                             what="direct correlation")

    if pad_width is None:
        return pad_and_correlate(x, kernel)
    fused = "correlate_fft_padded" if method == "fft" else "correlate_padded"
    return _dispatch.run(func, fused, backend, x, kernel, pad_width,
                         np.asarray(fillvalue, dtype=x.dtype)[()], fallback=pad_and_correlate)


def _pad(array, pad_width, mode: str):
    if all(before == after == 0 for before, after in pad_width):
        return array
    return _arrays.pad(array, pad_width, mode)


def _correlate_nd(func, in1, in2, mode, method, backend, *, flip: bool):
    in1, in2, result_dtype = _signal_inputs(func, in1, in2, small_types=True)
    mode = choice(func, "mode", mode, _MODES)
    method = choice(func, "method", method, _METHODS)
    scalar = in1.ndim == 0
    dtype = _COMPUTE_TYPES.get(result_dtype, result_dtype)
    in1 = _arrays.asarray(in1 if in1.ndim else _arrays.reshape(in1, (1,)), dtype)
    in2 = _arrays.asarray(in2 if in2.ndim else _arrays.reshape(in2, (1,)), dtype)
    # convolve(a, b) is correlate(a, reversed b); correlate conjugates in2.
    kernel = _arrays.flip(in2) if flip else _arrays.conj(in2)
    if mode == "valid":
        if _valid_swap_needed(func, in1.shape, in2.shape):
            if flip:  # convolution commutes
                out = _correlate_valid(func, in2, _arrays.flip(in1), method, backend)
            else:  # SciPy: reverse and conjugate correlate(in2, in1)
                out = _correlate_valid(func, _arrays.conj(in2), in1, method, backend)
                out = _arrays.flip(out)
        else:
            out = _correlate_valid(func, in1, kernel, method, backend)
    else:
        if mode == "full":
            pad_width = [(k - 1, k - 1) for k in in2.shape]
        else:  # 'same': the centre of 'full', as scipy.signal._centered takes it
            pad_width = [(k - 1 - (k - 1) // 2, (k - 1) // 2) for k in in2.shape]
        out = _correlate_valid(func, in1, kernel, method, backend, pad_width)
    out = _to_result(out, result_dtype)
    return _arrays.reshape(out, ()) if scalar else out


@_arrays.device_aware
def correlate(in1, in2, mode="full", method="auto", *, backend=None):
    """Cross-correlate two N-dimensional arrays, like ``scipy.signal.correlate``.

    ``z[k] = sum_l in1[l] * conj(in2[l - k + N - 1])`` in 'full' mode, where
    ``N = in2.shape``: ``in2`` slides over ``in1``.

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions (int, float or complex).
    mode : {'full', 'valid', 'same'}, default 'full'
        Output size: all overlaps, only complete overlaps (either operand
        may be the larger, as in SciPy), or the size of ``in1`` centred on
        'full'.
    method : {'auto', 'direct', 'fft'}, default 'auto'
        'direct' sums products; 'fft' uses FFTs (integers are rounded back);
        'auto' picks the cheaper for the shapes.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    ndarray
        Of dtype ``np.result_type(in1, in2)``.

    See Also
    --------
    convolve, correlate2d, scipy.signal.correlate

    Notes
    -----
    bool and float16 inputs are computed as int64 and float32 and converted
    back (a bool result is True where any product is).  SciPy computes them
    only in 1-d or with ``method='fft'``; fastcorr in every case.

    Examples
    --------
    Seed 000: the seed's ``[3, 2, 1] ⋆ [4, 6, 3, 9]`` slides the first over
    the second, which is ``correlate(in1=[4, 6, 3, 9], in2=[3, 2, 1])``.

    >>> import fastcorr
    >>> fastcorr.correlate([4, 6, 3, 9], [3, 2, 1])
    array([ 4, 14, 27, 33, 27, 27])
    >>> fastcorr.correlate([4, 6, 3, 9], [3, 2, 1], mode="valid")
    array([27, 33])
    """
    return _correlate_nd("correlate", in1, in2, mode, method, backend, flip=False)


@_arrays.device_aware
def convolve(in1, in2, mode="full", method="auto", *, backend=None):
    """Convolve two N-dimensional arrays, like ``scipy.signal.convolve``.

    ``z[k] = sum_l in1[l] * in2[k - l]``: correlation with ``in2`` reversed
    and not conjugated.  Parameters as in :func:`correlate`.

    See Also
    --------
    correlate, convolve2d, scipy.signal.convolve

    Examples
    --------
    >>> import fastcorr
    >>> fastcorr.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    return _correlate_nd("convolve", in1, in2, mode, method, backend, flip=True)


def _correlate_2d(func, in1, in2, mode, boundary, fillvalue, backend, *, flip: bool):
    in1, in2, dtype = _signal_inputs(func, in1, in2, small_types=False)
    if in1.ndim != 2:
        raise ValueError(f"{func}: in1 and in2 must both be 2-D arrays, got in1.ndim={in1.ndim}")
    mode = choice(func, "mode", mode, _MODES)
    pad_mode = choice(func, "boundary", boundary, _BOUNDARIES)
    fill = np.asarray(fillvalue)
    if fill.size != 1 or fill.dtype.kind not in "biufc":
        raise ValueError(f"{func}: parameter 'fillvalue' must be a number (or an array with one "
                         f"element), got {fillvalue!r}")
    fill = fill.reshape(())
    if dtype.kind != "c" and fill.dtype.kind == "c":  # SciPy refuses even 3+0j
        raise ValueError(f"{func}: parameter 'fillvalue' {fillvalue!r} is complex but the "
                         f"inputs are real ({dtype})")
    fill = fill.astype(dtype)
    in1 = _arrays.asarray(in1, dtype)
    in2 = _arrays.asarray(in2, dtype)
    swapped = mode == "valid" and _valid_swap_needed(func, in1.shape, in2.shape)
    if swapped:  # as SciPy: swap, and for correlation reverse the result afterwards
        in1, in2 = in2, in1
    kernel = _arrays.flip(in2) if flip else _arrays.conj(in2)
    if mode == "valid":
        pad_width = [(0, 0), (0, 0)]
    elif mode == "full":
        pad_width = [(k - 1, k - 1) for k in in2.shape]
    elif flip:  # convolve2d 'same': the centre of 'full'
        pad_width = [(k - 1 - (k - 1) // 2, (k - 1) // 2) for k in in2.shape]
    else:  # correlate2d 'same': SciPy centres the unflipped kernel, extra element after
        pad_width = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in in2.shape]
    if pad_mode == "constant":
        out = _correlate_valid(func, in1, kernel, "auto", backend, pad_width, fill)
    else:
        out = _correlate_valid(func, _pad(in1, pad_width, pad_mode), kernel, "auto", backend)
    return _arrays.flip(out) if swapped and not flip else out


@_arrays.device_aware
def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None):
    """Cross-correlate two 2-D arrays, like ``scipy.signal.correlate2d``.

    Parameters
    ----------
    in1, in2 : array_like
        2-D arrays; ``in2`` (conjugated) slides over ``in1``.
    mode : {'full', 'valid', 'same'}, default 'full'
        As in :func:`correlate`; 'same' places the kernel centre as SciPy
        does for correlation (for even kernel sizes this differs by one from
        :func:`convolve2d`).
    boundary : {'fill', 'wrap', 'symm'}, default 'fill'
        How ``in1`` is extended: with ``fillvalue``, periodically, or
        mirrored including the edge.  Aliases 'pad', 'circular', 'symmetric'.
    fillvalue : scalar, default 0
        Value outside ``in1`` for ``boundary='fill'``, cast to the result dtype.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    ndarray
        Of dtype ``np.result_type(in1, in2)``.

    See Also
    --------
    convolve2d, correlate, scipy.signal.correlate2d

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> image = np.arange(9.0).reshape(3, 3)
    >>> fastcorr.correlate2d(image, np.ones((2, 2)), mode="valid")
    array([[ 8., 12.],
           [20., 24.]])
    """
    return _correlate_2d("correlate2d", in1, in2, mode, boundary, fillvalue, backend, flip=False)


@_arrays.device_aware
def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None):
    """Convolve two 2-D arrays, like ``scipy.signal.convolve2d``.

    Correlation with ``in2`` flipped on both axes; parameters as in
    :func:`correlate2d`.

    See Also
    --------
    correlate2d, convolve, scipy.signal.convolve2d

    Examples
    --------
    Seed 001: the 3x3 vertical-gradient filter convolved with 1..25.

    >>> import numpy as np, fastcorr
    >>> x = np.arange(1, 26).reshape(5, 5)
    >>> h = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    >>> fastcorr.convolve2d(x, h, mode="valid")
    array([[-40, -40, -40],
           [-40, -40, -40],
           [-40, -40, -40]])
    """
    return _correlate_2d("convolve2d", in1, in2, mode, boundary, fillvalue, backend, flip=True)


def _window_sums(values: np.ndarray, window: tuple) -> np.ndarray:
    """Sums over every complete window, from cumulative sums (O(1) per output)."""
    for axis, size in enumerate(window):
        cumulative = np.cumsum(values, axis=axis)
        zero = np.zeros_like(np.take(cumulative, [0], axis=axis))
        cumulative = np.concatenate([zero, cumulative], axis=axis)
        count = cumulative.shape[axis] - size
        values = (np.take(cumulative, range(size, size + count), axis=axis)
                  - np.take(cumulative, range(count), axis=axis))
    return values


@_arrays.device_aware
def match_template(image, template, pad_input=False, *, backend=None):
    """Zero-normalised cross-correlation, like ``skimage.feature.match_template``.

    For each placement of ``template`` on ``image`` the Pearson correlation
    of the template with the window beneath it, in [-1, 1]; windows of zero
    variance give 0.  The cross-correlation comes from the backend; the
    window means and variances from running sums (cumulative sums), or, on
    the cuda backend, from each window summed directly (in float64 either way).

    Parameters
    ----------
    image : array_like
        2-D or 3-D image.
    template : array_like
        Same number of dimensions, no larger than ``image`` in any.
    pad_input : bool, default False
        If True, zero-pad ``image`` so the result has its shape and each
        value refers to the template's centre; else the result has shape
        ``image.shape - template.shape + 1`` and values refer to the
        template's top-left corner.
    backend : str, optional
        See :func:`fastcorr.use_backend`.

    Returns
    -------
    ndarray
        float32 for float32 (or float16) images, else float64.

    See Also
    --------
    correlate, skimage.feature.match_template

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> image = np.zeros((6, 6)); image[1, 1] = 1; image[4, 4] = -1
    >>> template = np.zeros((3, 3)); template[1, 1] = 1
    >>> result = fastcorr.match_template(image, template)
    >>> np.unravel_index(np.argmax(result), result.shape)
    (np.int64(0), np.int64(0))
    >>> float(result.max()), float(result.min())
    (1.0, -1.0)
    """
    func = "match_template"
    image = as_array(func, "image", image)
    template = as_array(func, "template", template)
    if image.ndim not in (2, 3):
        raise ValueError(f"{func}: parameter 'image' must be 2-D or 3-D, got {image.ndim}-D")
    if template.ndim != image.ndim:
        raise ValueError(f"{func}: parameter 'template' must have image's {image.ndim} "
                         f"dimensions, got {template.ndim}")
    if any(t > i for t, i in zip(template.shape, image.shape, strict=True)):
        raise ValueError(f"{func}: parameter 'template' {template.shape} must be no larger than "
                         f"'image' {image.shape} in every dimension")
    if image.dtype.kind == "c" or template.dtype.kind == "c":
        raise TypeError(f"{func}: complex images are not supported")
    small_float = image.dtype.kind == "f" and image.dtype.itemsize <= 4  # any byte order
    dtype = np.float32 if small_float else np.float64
    image = _arrays.asarray(image, dtype)
    template = _arrays.asarray(template, dtype)
    if pad_input:
        image = _pad(image, [(t // 2, (t - 1) // 2) for t in template.shape], "constant")
    xcorr = _arrays.asarray(_correlate_valid(func, image, template, "auto", backend), np.float64)
    return _dispatch.run(func, "template_response", backend, image, template, xcorr,
                         what="template matching", fallback=_template_response)


def _template_response(image, template, xcorr):
    """``template_response``: the Pearson correlation per placement, from ``xcorr`` (float64).

    The window means and variances come from running sums (cumulative sums)
    in float64; the result has ``image``'s dtype.
    """
    dtype = image.dtype
    # Sums in float64: the variance is a difference of large sums.
    wide = image.astype(np.float64)
    window_sum = _window_sums(wide, template.shape)
    window_sum_sq = _window_sums(wide * wide, template.shape)
    template = template.astype(np.float64)
    count = template.size
    template_centred = template - template.mean()
    numerator = xcorr - window_sum * template.mean()
    window_ssd = np.maximum(window_sum_sq - window_sum * window_sum / count, 0.0)
    denominator = np.sqrt(window_ssd * np.sum(template_centred * template_centred))
    response = np.zeros(numerator.shape, dtype=dtype)
    mask = denominator > np.finfo(dtype).eps
    response[mask] = numerator[mask] / denominator[mask]
    return response
