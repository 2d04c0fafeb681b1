"""Argument checks shared by every front end.

Each helper takes the public function's name (``func``) and the parameter's
name, so that every error says which function, which parameter, what was
expected and what came.
"""

from __future__ import annotations

import operator

import numpy as np

from . import _arrays


def as_array(func: str, name: str, value, *, allow_empty: bool = False):
    """``np.asarray(value)``, refusing object, string and (by default) empty arrays.

    A GPU device array (see :mod:`fastcorr._arrays`) is not copied: the
    result is a numba device array on its memory, checked by its ``dtype``
    and ``shape`` with the same errors as a host array.
    """
    if _arrays.is_device(value):
        try:
            array = _arrays.as_device(value)
        except (TypeError, ValueError, NotImplementedError, KeyError) as exc:
            raise TypeError(f"{func}: parameter {name!r} must be a device array of numbers: "
                            f"{exc}") from None
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{func}: parameter {name!r} must be array-like of numbers: {exc}"
            ) from None
    if array.dtype.kind not in "biufc":
        raise TypeError(
            f"{func}: parameter {name!r} must hold numbers (bool, int, float or complex), "
            f"got an array of dtype {array.dtype}"
        )
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{func}: parameter {name!r} must not be empty, "
                         f"got shape {tuple(array.shape)}")
    return array


def choice(func: str, name: str, value, choices: dict) -> str:
    """Map ``value`` through ``choices`` (accepted spelling -> canonical name)."""
    if isinstance(value, str) and value in choices:
        return choices[value]
    accepted = ", ".join(repr(c) for c in choices)
    raise ValueError(f"{func}: parameter {name!r} must be one of {accepted}, got {value!r}")


def int_value(func: str, name: str, value, *, minimum: int | None = None) -> int:
    """An integer (bool refused) that is at least ``minimum``."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{func}: parameter {name!r} must be an int, got a bool")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{func}: parameter {name!r} must be an int, got {type(value).__name__} {value!r}"
        ) from None
    if minimum is not None and result < minimum:
        raise ValueError(f"{func}: parameter {name!r} must be >= {minimum}, got {result}")
    return result


def int_tuple(func: str, name: str, value, length: int, *, minimum: int | None = None) -> tuple:
    """An int (repeated ``length`` times) or a sequence of ``length`` ints, each >= ``minimum``."""
    if isinstance(value, tuple | list):
        if len(value) != length:
            raise ValueError(
                f"{func}: parameter {name!r} must be an int or a sequence of {length} ints, "
                f"got {len(value)} values {tuple(value)!r}"
            )
        return tuple(int_value(func, name, v, minimum=minimum) for v in value)
    return (int_value(func, name, value, minimum=minimum),) * length


def floating(func: str, *arrays) -> np.dtype:
    """The network family's compute dtype: float32 or float64 (the latter for all else).

    From the arrays' ``dtype`` alone (``np.result_type`` of a device array
    would copy it to the host).
    """
    dtype = np.result_type(*(array.dtype for array in arrays))
    if dtype.kind == "c":
        raise TypeError(f"{func}: complex inputs are not supported, got dtype {dtype}")
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
