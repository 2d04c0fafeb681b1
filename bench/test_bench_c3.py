"""C3: ``unfold`` (im2col) of the L1 and L4 inputs, one image, float32.

One group per case; one benchmark per implementation (``conftest.py``
parametrises): fastcorr's backends and the peers torch ``unfold`` and a copy
of NumPy's ``sliding_window_view``.
"""

OP = "c3"


def test_c3(measure, case, impl):
    measure(case, impl)
