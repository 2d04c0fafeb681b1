"""Bad input: ValueError / TypeError naming the function and the parameter (SPEC section 5).

Each case is (call, exception, words the message must contain).  Every case
runs on every backend: validation happens before dispatch, so the backend
must not change the error.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from helpers import ALL_BACKENDS

import fastcorr

X4 = np.ones((2, 4, 6, 6))
W4 = np.ones((3, 4, 3, 3))
SIG = np.ones((5, 5))
KER = np.ones((2, 2))
OBJ = np.array([1, "a", None], dtype=object)
STR = np.array(["ab", "cd"])


def conv2d(**kwargs):
    args = dict(x=X4, weight=W4)
    args.update(kwargs)
    return lambda backend: fastcorr.conv2d(**args, backend=backend)


CASES = {
    # --- seed 003: a 3-channel weight on an 8-channel image
    "conv2d-channels": (
        lambda b: fastcorr.conv2d(np.ones((8, 12, 10), np.float32),
                                  np.ones((16, 3, 5, 5), np.float32), stride=2, padding=1,
                                  backend=b),
        ValueError, ["conv2d", "channels", "8", "3"]),
    "conv2d-channels-batched": (conv2d(weight=np.ones((3, 2, 3, 3))), ValueError,
                                ["conv2d", "channels"]),
    "conv1d-channels": (lambda b: fastcorr.conv1d(np.ones((1, 3, 8)), np.ones((2, 2, 3)),
                                                  backend=b), ValueError, ["conv1d", "channels"]),
    "conv3d-channels": (lambda b: fastcorr.conv3d(np.ones((1, 3, 4, 4, 4)),
                                                  np.ones((2, 2, 2, 2, 2)), backend=b),
                        ValueError, ["conv3d", "channels"]),
    # --- groups
    "groups-not-dividing-C": (conv2d(weight=np.ones((3, 2, 3, 3)), groups=3), ValueError,
                              ["conv2d", "groups"]),
    "groups-not-dividing-F": (conv2d(weight=np.ones((3, 2, 3, 3)), groups=2), ValueError,
                              ["conv2d", "groups"]),
    "groups-zero": (conv2d(groups=0), ValueError, ["conv2d", "groups"]),
    "groups-float": (conv2d(groups=1.0), TypeError, ["conv2d", "groups"]),
    # --- stride, dilation, padding
    "stride-zero": (conv2d(stride=0), ValueError, ["conv2d", "stride"]),
    "stride-negative": (conv2d(stride=(1, -2)), ValueError, ["conv2d", "stride"]),
    "stride-float": (conv2d(stride=1.5), TypeError, ["conv2d", "stride"]),
    "stride-wrong-length": (conv2d(stride=(1, 1, 1)), ValueError, ["conv2d", "stride"]),
    "dilation-zero": (conv2d(dilation=0), ValueError, ["conv2d", "dilation"]),
    "padding-negative": (conv2d(padding=-1), ValueError, ["conv2d", "padding"]),
    "padding-negative-tuple": (conv2d(padding=(0, -1)), ValueError, ["conv2d", "padding"]),
    "padding-negative-pair": (conv2d(padding=((0, 1), (-1, 0))), ValueError,
                              ["conv2d", "padding"]),
    "padding-bad-pairs": (conv2d(padding=((0, 1, 2), (1, 0))), ValueError, ["conv2d", "padding"]),
    "padding-unknown-string": (conv2d(padding="sane"), ValueError, ["conv2d", "padding", "sane"]),
    "padding-same-stride-2": (conv2d(padding="same", stride=2), ValueError,
                              ["conv2d", "padding", "stride"]),
    "padding-float": (conv2d(padding=1.5), TypeError, ["conv2d", "padding"]),
    "padding-mode-unknown": (conv2d(padding=1, padding_mode="mirror"), ValueError,
                             ["conv2d", "padding_mode", "mirror"]),
    "reflect-padding-too-large": (conv2d(padding=6, padding_mode="reflect"), ValueError,
                                  ["conv2d", "padding"]),
    "kernel-larger-than-input": (conv2d(weight=np.ones((3, 4, 7, 3))), ValueError,
                                 ["conv2d", "kernel"]),
    "kernel-larger-dilated": (conv2d(dilation=3), ValueError, ["conv2d", "kernel"]),
    # --- arrays
    "x-wrong-ndim": (conv2d(x=np.ones((4, 6))), ValueError, ["conv2d", "x"]),
    "x-5d": (conv2d(x=np.ones((1, 2, 4, 6, 6))), ValueError, ["conv2d", "x"]),
    "weight-wrong-ndim": (conv2d(weight=np.ones((3, 4, 3))), ValueError, ["conv2d", "weight"]),
    "bias-wrong-shape": (conv2d(bias=np.ones(4)), ValueError, ["conv2d", "bias"]),
    "bias-2d": (conv2d(bias=np.ones((3, 1))), ValueError, ["conv2d", "bias"]),
    "x-empty": (conv2d(x=np.ones((0, 4, 6, 6))), ValueError, ["conv2d", "x"]),
    "weight-empty": (conv2d(weight=np.ones((0, 4, 3, 3))), ValueError, ["conv2d", "weight"]),
    "x-object": (conv2d(x=np.empty((2, 4, 6, 6), dtype=object)), TypeError, ["conv2d", "x"]),
    "weight-str": (conv2d(weight=np.full((3, 4, 3, 3), "a")), TypeError, ["conv2d", "weight"]),
    "x-complex": (conv2d(x=X4 + 1j), TypeError, ["conv2d", "complex"]),
    "weight-complex": (conv2d(weight=W4.astype(np.complex64)), TypeError, ["conv2d", "complex"]),
    "conv1d-padding-same-stride": (
        lambda b: fastcorr.conv1d(np.ones((1, 1, 8)), np.ones((1, 1, 3)), stride=2,
                                  padding="same", backend=b),
        ValueError, ["conv1d", "padding"]),
    "conv3d-bias": (lambda b: fastcorr.conv3d(np.ones((1, 1, 3, 3, 3)), np.ones((2, 1, 2, 2, 2)),
                                              bias=np.ones(3), backend=b),
                    ValueError, ["conv3d", "bias"]),
    # --- signal family
    "correlate-mode": (lambda b: fastcorr.correlate(SIG, KER, mode="ful", backend=b),
                       ValueError, ["correlate", "mode", "ful"]),
    "correlate-method": (lambda b: fastcorr.correlate(SIG, KER, method="fast", backend=b),
                         ValueError, ["correlate", "method", "fast"]),
    "convolve-mode": (lambda b: fastcorr.convolve(SIG, KER, mode=1, backend=b),
                      ValueError, ["convolve", "mode"]),
    "correlate-ndim-mismatch": (lambda b: fastcorr.correlate(SIG, np.ones(2), backend=b),
                                ValueError, ["correlate", "in1", "in2"]),
    "correlate-empty-in1": (lambda b: fastcorr.correlate(np.array([]), np.ones(2), backend=b),
                            ValueError, ["correlate", "in1"]),
    "correlate-empty-in2": (lambda b: fastcorr.correlate(np.ones(3), np.zeros(0), backend=b),
                            ValueError, ["correlate", "in2"]),
    "correlate-object": (lambda b: fastcorr.correlate(OBJ, np.ones(2), backend=b),
                         TypeError, ["correlate", "in1"]),
    "correlate-str": (lambda b: fastcorr.correlate(np.ones(2), STR, backend=b),
                      TypeError, ["correlate", "in2"]),
    "correlate-valid-neither-larger": (
        lambda b: fastcorr.correlate(np.ones((3, 7)), np.ones((5, 2)), mode="valid", backend=b),
        ValueError, ["correlate", "valid"]),
    "correlate2d-mode": (lambda b: fastcorr.correlate2d(SIG, KER, mode="Full", backend=b),
                         ValueError, ["correlate2d", "mode", "Full"]),
    "correlate2d-boundary": (lambda b: fastcorr.correlate2d(SIG, KER, boundary="reflect",
                                                            backend=b),
                             ValueError, ["correlate2d", "boundary", "reflect"]),
    "convolve2d-boundary": (lambda b: fastcorr.convolve2d(SIG, KER, boundary=None, backend=b),
                            ValueError, ["convolve2d", "boundary"]),
    "correlate2d-1d": (lambda b: fastcorr.correlate2d(np.ones(5), np.ones(2), backend=b),
                       ValueError, ["correlate2d", "2"]),
    "correlate2d-3d": (lambda b: fastcorr.correlate2d(np.ones((3, 3, 3)), np.ones((2, 2, 2)),
                                                      backend=b),
                       ValueError, ["correlate2d", "2"]),
    "convolve2d-ndim-mismatch": (lambda b: fastcorr.convolve2d(SIG, np.ones(2), backend=b),
                                 ValueError, ["convolve2d", "in2"]),
    "correlate2d-bool": (lambda b: fastcorr.correlate2d(SIG > 0, KER > 0, backend=b),
                         TypeError, ["correlate2d", "bool"]),
    "convolve2d-bool": (lambda b: fastcorr.convolve2d(SIG > 0, KER > 0, backend=b),
                        TypeError, ["convolve2d", "bool"]),
    "correlate2d-empty": (lambda b: fastcorr.correlate2d(np.ones((0, 3)), KER, backend=b),
                          ValueError, ["correlate2d", "in1"]),
    "correlate2d-object": (lambda b: fastcorr.correlate2d(SIG.astype(object), KER, backend=b),
                           TypeError, ["correlate2d", "in1"]),
    "correlate2d-complex-fill-real-input": (
        lambda b: fastcorr.correlate2d(SIG, KER, fillvalue=1 + 1j, backend=b),
        ValueError, ["correlate2d", "fillvalue"]),
    "correlate2d-fill-array": (lambda b: fastcorr.correlate2d(SIG, KER, fillvalue=[1, 2],
                                                              backend=b),
                               ValueError, ["correlate2d", "fillvalue"]),
    "correlate2d-fill-str": (lambda b: fastcorr.correlate2d(SIG, KER, fillvalue="0", backend=b),
                             (ValueError, TypeError), ["correlate2d", "fillvalue"]),
    "correlate2d-valid-neither-larger": (
        lambda b: fastcorr.correlate2d(np.ones((3, 7)), np.ones((5, 2)), mode="valid",
                                       backend=b),
        ValueError, ["correlate2d", "valid"]),
    "match_template-larger-template": (
        lambda b: fastcorr.match_template(np.ones((4, 4)), np.ones((5, 2)), backend=b),
        ValueError, ["match_template", "template"]),
    "match_template-ndim": (lambda b: fastcorr.match_template(np.ones((4, 4)), np.ones(2),
                                                              backend=b),
                            ValueError, ["match_template", "template"]),
    "match_template-1d": (lambda b: fastcorr.match_template(np.ones(6), np.ones(2), backend=b),
                          ValueError, ["match_template", "image"]),
    "match_template-empty": (lambda b: fastcorr.match_template(np.ones((4, 4)),
                                                               np.ones((0, 2)), backend=b),
                             ValueError, ["match_template", "template"]),
    "match_template-object": (lambda b: fastcorr.match_template(np.ones((4, 4), dtype=object),
                                                                np.ones((2, 2)), backend=b),
                              TypeError, ["match_template", "image"]),
    # --- unfold / fold
    "unfold-2d-input": (lambda b: fastcorr.unfold(np.ones((5, 5)), 2, backend=b),
                        ValueError, ["unfold", "x"]),
    "unfold-kernel-zero": (lambda b: fastcorr.unfold(np.ones((1, 1, 5, 5)), 0, backend=b),
                           ValueError, ["unfold", "kernel_size"]),
    "unfold-kernel-too-large": (lambda b: fastcorr.unfold(np.ones((1, 1, 3, 3)), 4, backend=b),
                                ValueError, ["unfold", "kernel"]),
    "unfold-stride-zero": (lambda b: fastcorr.unfold(np.ones((1, 1, 5, 5)), 2, stride=0,
                                                     backend=b),
                           ValueError, ["unfold", "stride"]),
    "unfold-padding-negative": (lambda b: fastcorr.unfold(np.ones((1, 1, 5, 5)), 2, padding=-1,
                                                          backend=b),
                                ValueError, ["unfold", "padding"]),
    "unfold-complex": (lambda b: fastcorr.unfold(np.ones((1, 1, 5, 5)) * 1j, 2, backend=b),
                       TypeError, ["unfold", "complex"]),
    "fold-inconsistent-L": (lambda b: fastcorr.fold(np.ones((1, 4, 8)), (4, 4), 2, backend=b),
                            ValueError, ["fold", "cols"]),
    "fold-bad-channel-dim": (lambda b: fastcorr.fold(np.ones((1, 5, 9)), (4, 4), 2, backend=b),
                             ValueError, ["fold", "cols"]),
    "fold-4d-cols": (lambda b: fastcorr.fold(np.ones((1, 1, 4, 9)), (4, 4), 2, backend=b),
                     ValueError, ["fold", "cols"]),
    "fold-output-size-zero": (lambda b: fastcorr.fold(np.ones((1, 4, 9)), (0, 4), 2, backend=b),
                              ValueError, ["fold", "output_size"]),
    # --- conv_output_shape / conv_matrix
    "conv_output_shape-kernel-too-large": (
        lambda b: fastcorr.conv_output_shape(3, 5, backend=b), ValueError,
        ["conv_output_shape", "kernel"]),
    "conv_output_shape-stride-zero": (
        lambda b: fastcorr.conv_output_shape(8, 3, stride=0, backend=b), ValueError,
        ["conv_output_shape", "stride"]),
    "conv_output_shape-negative-padding": (
        lambda b: fastcorr.conv_output_shape(8, 3, padding=-1, backend=b), ValueError,
        ["conv_output_shape", "padding"]),
    "conv_output_shape-tuple-lengths": (
        lambda b: fastcorr.conv_output_shape((8, 8), (3, 3, 3), backend=b), ValueError,
        ["conv_output_shape"]),
    "conv_output_shape-input-zero": (
        lambda b: fastcorr.conv_output_shape(0, 1, backend=b), ValueError,
        ["conv_output_shape", "input_size"]),
    "conv_output_shape-same-stride": (
        lambda b: fastcorr.conv_output_shape(8, 3, stride=2, padding="same", backend=b),
        ValueError, ["conv_output_shape", "padding"]),
    "conv_matrix-format": (
        lambda b: fastcorr.conv_matrix(np.ones((2, 2)), (4, 4), format="sparse", backend=b),
        ValueError, ["conv_matrix", "format"]),
    "conv_matrix-channels": (
        lambda b: fastcorr.conv_matrix(np.ones((2, 3, 2, 2)), (4, 5, 5), backend=b),
        ValueError, ["conv_matrix", "channels"]),
    "conv_matrix-kernel-too-large": (
        lambda b: fastcorr.conv_matrix(np.ones((5, 5)), (4, 4), backend=b),
        ValueError, ["conv_matrix", "kernel"]),
    "conv_matrix-input-shape": (
        lambda b: fastcorr.conv_matrix(np.ones((2, 2)), 16, backend=b),
        TypeError, ["conv_matrix", "input_shape"]),
    "conv_matrix-same-stride": (
        lambda b: fastcorr.conv_matrix(np.ones((3, 3)), (6, 6), stride=2, padding="same",
                                       backend=b),
        ValueError, ["conv_matrix", "padding"]),
    "conv_matrix-complex": (
        lambda b: fastcorr.conv_matrix(np.ones((3, 3)) * 1j, (6, 6), backend=b),
        TypeError, ["conv_matrix", "complex"]),
}


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, backend):
    call, exception, words = CASES[case]
    with pytest.raises(exception) as excinfo:
        call(backend)
    message = str(excinfo.value)
    for word in words:
        assert word in message, f"{case}: message {message!r} does not name {word!r}"
    # never NotImplementedError / AssertionError / IndexError: a clear ValueError or TypeError
    assert type(excinfo.value) in (ValueError, TypeError), type(excinfo.value)


# Cases where SciPy itself raises: fastcorr raises the same kind of error (ValueError for these)
SCIPY_REFUSES = [
    ("correlate2d", (np.ones((3, 7)), np.ones((5, 2))), dict(mode="valid")),
    ("convolve2d", (np.ones((3, 7)), np.ones((5, 2))), dict(mode="valid")),
    ("correlate", (np.ones((3, 7)), np.ones((5, 2))), dict(mode="valid")),
    ("correlate2d", (SIG, KER), dict(boundary="bogus")),
    ("correlate2d", (SIG, KER), dict(fillvalue=1j)),
    ("correlate2d", (SIG, KER), dict(fillvalue=[1, 2])),
    ("correlate", (SIG, np.ones(2)), {}),
    ("correlate2d", (np.ones(4), np.ones(2)), {}),
]


@pytest.mark.parametrize("func,args,kwargs", SCIPY_REFUSES,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(SCIPY_REFUSES)])
def test_raises_where_scipy_raises(func, args, kwargs):
    with pytest.raises(ValueError):
        getattr(scipy.signal, func)(*args, **kwargs)
    with pytest.raises(ValueError) as excinfo:
        getattr(fastcorr, func)(*args, **kwargs)
    assert func in str(excinfo.value)
