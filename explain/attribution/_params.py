"""Parameter checks shared by the attribution methods' constructors.

A count below 1 or a negative noise level used to run and give NaN, silently reported as a
flat map; each method now refuses it in its constructor with one message naming the method,
the parameter, the value given and what is allowed.
"""

from __future__ import annotations

import math
import numbers


def whole_at_least(method: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, checked to be a whole number of at least ``minimum``.

    Args:
        method: the method's class name, for the message (e.g. ``"IntegratedGradients"``).
        name: the parameter's name (e.g. ``"steps"``).
        value: the value given; an int, a NumPy integer or a float with no fractional part.
        minimum: the smallest allowed value.

    Returns:
        ``int(value)``.

    Raises:
        ValueError: not a whole number (``True``/``False`` and strings included), or below
            ``minimum``; e.g. "IntegratedGradients: steps must be at least 1, got 0."
    """
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise ValueError(f"{method}: {name} must be a whole number of at least {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{method}: {name} must be at least {minimum}, got {value!r}.")
    return int(value)


def finite_at_least_zero(method: str, name: str, value) -> float:
    """``value`` as a float, checked to be a finite number >= 0.

    Raises:
        ValueError: not a real number, not finite, or negative; e.g. "SmoothGrad: noise must
            be a finite number of at least 0 (a fraction of the 0-255 pixel range), got -0.1."
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok:
        raise ValueError(
            f"{method}: {name} must be a finite number of at least 0 (a fraction of the 0-255 pixel range), "
            f"got {value!r}."
        )
    return float(value)


def whole(method: str, name: str, value) -> int:
    """``value`` as an int, checked to be a whole number (any sign), e.g. a random seed.

    Raises:
        ValueError: not a whole number; the message names the method, parameter and value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{method}: {name} must be a whole number, got {value!r}.")
    return int(value)
