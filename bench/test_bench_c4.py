"""C4: pooling of 32x64x112x112 float32: max k2 s2, max k3 s2 p1, avg k2 s2, global avg and max.

One group per case; one benchmark per implementation (``conftest.py``
parametrises): fastcorr's backends and torch.
"""

OP = "c4"


def test_c4(measure, case, impl):
    measure(case, impl)
