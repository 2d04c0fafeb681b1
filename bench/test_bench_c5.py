"""C5: batch, layer, instance and group norm, forward and backward, on 32x64x56x56 and 20x20x50x50.

One group per case; one benchmark per implementation (``conftest.py``
parametrises): fastcorr's backends and torch (forward under ``no_grad``,
backward by autograd).
"""

OP = "c5"


def test_c5(measure, case, impl):
    measure(case, impl)
