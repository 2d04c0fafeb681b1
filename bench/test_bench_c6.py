"""C6: ``conv2d_backward`` (input, weight and bias gradients) of layers L1, L2 and L7.

One group per layer; one benchmark per implementation (``conftest.py``
parametrises): fastcorr's backends and torch autograd.
"""

OP = "c6"


def test_c6(measure, case, impl):
    measure(case, impl)
