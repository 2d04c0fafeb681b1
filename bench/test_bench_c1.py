"""C1: ``correlate2d`` of a 1024 x 1024 image, k = 3, 7, 15, 31, modes full/valid/same, float32/64.

One group per case; one benchmark per implementation (``conftest.py``
parametrises): fastcorr's backends and the peers scipy.signal.correlate2d,
scipy.signal.fftconvolve, torch and cv2 (skipped where not installed).
"""

OP = "c1"


def test_c1(measure, case, impl):
    measure(case, impl)
