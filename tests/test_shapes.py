"""conv_output_shape: torch's output-size arithmetic, int in -> int out, tuple in -> tuple out."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_reference as tref

import fastcorr

CONV_GRID = list(itertools.product(
    [5, 8, 9],               # input size
    [1, 2, 3],               # kernel
    [1, 2, 3],               # stride
    [0, 1, 2],               # padding
    [1, 2],                  # dilation
))


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", CONV_GRID)
def test_conv_output_shape_vs_torch_conv(size, kernel, stride, padding, dilation):
    got = fastcorr.conv_output_shape(size, kernel, stride, padding, dilation)
    ref = tref.output_size_of(1, (1, 1, size), (1, 1, kernel), stride=stride,
                              padding=padding, dilation=dilation)[0]
    assert type(got) is int
    assert got == ref
    # formula of seed 001 (3a) / seed 003 (Q2), with dilation
    assert got == (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    g for g in CONV_GRID if g[3] <= g[1] // 2  # torch pooling: padding <= kernel / 2
])
def test_conv_output_shape_ceil_mode_vs_torch_pooling(size, kernel, stride, padding, dilation):
    x = torch.zeros(1, 1, size, size)
    ref = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=True).shape[2]
    assert fastcorr.conv_output_shape(size, kernel, stride, padding, dilation,
                                      ceil_mode=True) == ref
    ref_floor = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=False).shape[2]
    assert fastcorr.conv_output_shape(size, kernel, stride, padding, dilation) == ref_floor


def test_conv_output_shape_tuples():
    got = fastcorr.conv_output_shape((7, 6), (3, 2), stride=(2, 1), padding=(1, 0),
                                     dilation=(1, 2))
    assert got == tref.output_size_of(2, (1, 1, 7, 6), (1, 1, 3, 2), stride=(2, 1),
                                      padding=(1, 0), dilation=(1, 2))
    assert isinstance(got, tuple)
    # one tuple argument makes the result a tuple
    assert fastcorr.conv_output_shape((9,), 3) == (7,)
    assert fastcorr.conv_output_shape(9, (3,)) == (7,)
    assert fastcorr.conv_output_shape((9, 8), 3, stride=2) == (4, 3)
    # numpy integers are ints
    assert fastcorr.conv_output_shape(np.int64(9), np.int32(3)) == 7


@pytest.mark.parametrize("kernel,dilation", [(1, 1), (2, 1), (3, 2), (4, 1), (4, 3)])
def test_conv_output_shape_string_paddings(kernel, dilation):
    for size in (7, 8, 11):
        assert fastcorr.conv_output_shape(size, kernel, padding="same", dilation=dilation) == size
        if size >= dilation * (kernel - 1) + 1:
            assert fastcorr.conv_output_shape(size, kernel, padding="valid",
                                              dilation=dilation) == size - dilation * (kernel - 1)
        else:
            with pytest.raises(ValueError, match="conv_output_shape"):
                fastcorr.conv_output_shape(size, kernel, padding="valid", dilation=dilation)
        assert fastcorr.conv_output_shape(size, kernel, padding="full",
                                          dilation=dilation) == size + dilation * (kernel - 1)
        ref = tref.output_size_of(1, (1, 1, size), (1, 1, kernel), padding="same",
                                  dilation=dilation)
        assert (fastcorr.conv_output_shape(size, kernel, padding="same", dilation=dilation),) \
            == ref


def test_conv_output_shape_pairs():
    assert fastcorr.conv_output_shape((7, 6), 3, padding=((1, 0), (0, 2))) == (6, 6)
    assert fastcorr.conv_output_shape((7,), 3, padding=((2, 0),), stride=2) == (4,)


def test_seed_003_output_shapes():
    """Seed 003 Q10: 5x5 kernel, padding 1, stride 2, 16 filters."""
    assert fastcorr.conv_output_shape((1024, 768), 5, stride=2, padding=1) == (511, 383)
    assert fastcorr.conv_output_shape((1920, 1080), 5, stride=2, padding=1) == (959, 539)
    assert fastcorr.conv_output_shape(1024, 5, stride=2, padding=1) == 511


def test_seed_001_parameter_table():
    """Seed 001 (3e): CONV3 (pad 1, stride 1) keeps 28 and 14; POOL2 (stride 2) halves."""
    size = 28
    size = fastcorr.conv_output_shape(size, 3, padding=1)
    assert size == 28
    size = fastcorr.conv_output_shape(size, 2, stride=2)
    assert size == 14
    size = fastcorr.conv_output_shape(size, 3, padding=1)
    assert size == 14
    size = fastcorr.conv_output_shape(size, 2, stride=2)
    assert size == 7
    # and the bias count of (3a): floor((W + 2P - K) / S + 1) per spatial dimension
    for w, p, k, s in [(32, 1, 3, 1), (32, 0, 5, 2), (7, 2, 3, 3)]:
        assert fastcorr.conv_output_shape(w, k, s, p) == (w + 2 * p - k) // s + 1
