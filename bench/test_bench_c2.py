"""C2: ``conv2d`` layers L1-L7 (NCHW, float32; L1 also float64).

One group per layer; one benchmark per implementation (``conftest.py``
parametrises): fastcorr's backends and the peers torch and NumPy
im2col + matmul.
"""

OP = "c2"


def test_c2(measure, case, impl):
    measure(case, impl)
