"""Time units: the one place that knows how long a day, a week and a month are.

RFM, horizons and discount rates are in a time unit (``features.time_unit``); the log counts
calendar days. A month is a twelfth of a Julian year (365.25 / 12 days), never a hidden 30-day
month. Windows cut from the log (holdouts, churn horizons) are whole days: :func:`whole_days`.
"""

from __future__ import annotations

from typing import Literal

TimeUnit = Literal["day", "week", "month"]

#: Length of each time unit in days.
DAYS_PER_UNIT: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 365.25 / 12.0}


def days(length: float, unit: str) -> float:
    """``length`` units in days.

    >>> days(2, "week")
    14.0
    """
    return length * DAYS_PER_UNIT[unit]


def whole_days(length: float, unit: str) -> int:
    """``length`` units as a whole number of days (rounded): the length of a window on the log.

    >>> whole_days(26, "week"), whole_days(1, "month")
    (182, 30)
    """
    return round(days(length, unit))


def in_units(n_days: float, unit: str) -> float:
    """``n_days`` days in ``unit``.

    >>> in_units(14, "week")
    2.0
    """
    return n_days / DAYS_PER_UNIT[unit]


def conversion(unit: str, into: str) -> float:
    """Length of one ``unit`` in ``into`` (e.g. a month is 4.35 weeks): multiply by it.

    >>> round(conversion("month", "week"), 4)
    4.3482
    """
    return DAYS_PER_UNIT[unit] / DAYS_PER_UNIT[into]


def check_unit(unit: str) -> str:
    """``unit`` if it is a time unit; else ``ValueError`` naming the known ones."""
    if unit not in DAYS_PER_UNIT:
        raise ValueError(f"time unit must be one of {list(DAYS_PER_UNIT)}, got {unit!r}.")
    return unit
