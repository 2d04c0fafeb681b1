"""Kernel modules, one per backend: ``naive``, ``numpy``, ``scipy``, ``numba``.

Each implements entry points of :mod:`fastcorr._dispatch`; the public
functions never import them directly.
"""
