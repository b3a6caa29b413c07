"""Argument checks shared by every value object: one wording, the bad value named.

Non-finite and absurdly large durations are refused here, at construction, rather than
failing later inside a refresher thread (``OverflowError`` from a timer) or freezing a
view forever.
"""

from __future__ import annotations

import math
from typing import Final

from .errors import InvalidArgument, InvalidName

__all__ = ["MAX_SECONDS", "count", "seconds"]

#: The longest duration any setting accepts: one day. Longer means "never" in practice,
#: and timers overflow long before infinity.
MAX_SECONDS: Final = 86_400.0


def seconds(
    name: str,
    value: object,
    *,
    minimum: float = 0.0,
    allow_minimum: bool = False,
    maximum: float = MAX_SECONDS,
) -> float:
    """*value* as a float number of seconds in ``(minimum, maximum]`` (``[minimum, ...]``
    with *allow_minimum*).

    Raises:
        InvalidArgument: not a number.
        InvalidName: NaN, infinite, out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name} must be a number of seconds, not {type(value).__name__}: {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise InvalidName(f"{name} must be a finite number of seconds: {value!r}")
    low_ok = number >= minimum if allow_minimum else number > minimum
    if not low_ok:
        bound = f">= {minimum:g}" if allow_minimum else f"> {minimum:g}"
        raise InvalidName(f"{name} must be {bound} seconds: {value!r}")
    if number > maximum:
        raise InvalidName(f"{name} must be at most {maximum:g} seconds: {value!r}")
    return number


def count(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """*value* as an int in ``[minimum, maximum]``.

    Raises:
        InvalidArgument: not an int (``bool`` included).
        InvalidName: out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an int, not {type(value).__name__}: {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise InvalidName(f"{name} must be an int >= {minimum}{upper}: {value!r}")
    return value
