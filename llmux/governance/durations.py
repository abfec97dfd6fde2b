"""Duration strings ("30s", "7d", "1mo") and the instants they lead to: key expiry, budget resets.

Two kinds of budget period, both in UTC:

* rolling: the period ends one duration after `now` (`1mo` from Jan 31 ends on the last day of
  February: the day is clamped to the month's length);
* calendar-aligned: the period ends at the next boundary of a fixed grid of period-sized steps.
  Seconds, minutes, hours and days count from the Unix epoch (so `1d` ends at the next midnight
  and `10m` at the next :00, :10, :20 ...); weeks count from Monday 1970-01-05 (`1w` and `7d` end
  at the next Monday 00:00); months and years count from January 1970 (`1mo` ends on the first of
  next month, `3mo` at the next quarter, `1y` on January 1st).

Imports the standard library only.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast, get_args

__all__ = ["Duration", "Unit", "expires_at", "next_reset", "parse_duration"]

Unit = Literal["s", "m", "h", "d", "w", "mo", "y"]
"""Seconds, minutes, hours, days, weeks, calendar months, calendar years."""

_PATTERN = re.compile(r"^\s*(\d+)\s*(mo|s|m|h|d|w|y)\s*$")
_SECONDS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONTHS: dict[str, int] = {"mo": 1, "y": 12}
_MAX_SECONDS = 100 * 366 * 86400
"""The longest duration accepted: a hundred years, far from datetime's range."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
_MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Duration:
    """A positive whole number of one unit; `str()` gives back the canonical text ("7d")."""

    count: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    @property
    def months(self) -> int | None:
        """Calendar months for `mo` and `y` durations; `None` for fixed-length ones."""
        per = _MONTHS.get(self.unit)
        return None if per is None else self.count * per

    @property
    def seconds(self) -> int | None:
        """Seconds for fixed-length durations (`s` to `w`); `None` for months and years."""
        per = _SECONDS.get(self.unit)
        return None if per is None else self.count * per


def parse_duration(text: str) -> Duration:
    """Parse "30s", "10m", "24h", "7d", "2w", "1mo" or "1y".

    Raises:
        ValueError: naming the text, when it is not a positive whole number followed by one of
            the units, or is longer than a hundred years.
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"Invalid duration {text!r}: expected a positive whole number and a unit "
            f"({', '.join(get_args(Unit))}), e.g. '30s', '24h', '7d' or '1mo'."
        )
    count, unit = int(match.group(1)), match.group(2)
    duration = Duration(count, cast(Unit, unit))  # the pattern admits Units only
    approx = duration.seconds or (duration.months or 0) * 31 * 86400
    if count <= 0 or approx > _MAX_SECONDS:
        raise ValueError(
            f"Invalid duration {text!r}: must be more than zero and at most 100 years."
        )
    return duration


def expires_at(duration: Duration, now: datetime) -> datetime:
    """When something created at `now` with a lifetime of `duration` expires (e.g. a key)."""
    return next_reset(duration, now, aligned=False)


def next_reset(duration: Duration, now: datetime, aligned: bool) -> datetime:
    """The end of the budget period that contains `now`, in UTC (strictly after `now`).

    Rolling (`aligned=False`): `now + duration`. Calendar-aligned: the next grid boundary (see
    the module docstring).

    Raises:
        ValueError: when `now` carries no time zone (a naive time is ambiguous).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    months = duration.months
    if months is not None:
        return _next_month_boundary(now, months) if aligned else _add_months(now, months)
    seconds = duration.seconds or 0
    if not aligned:
        return now + timedelta(seconds=seconds)
    origin = _FIRST_MONDAY if seconds % _SECONDS["w"] == 0 else _EPOCH
    return _next_boundary(now, origin, seconds)


def _add_months(now: datetime, months: int) -> datetime:
    index = now.month - 1 + months
    year, month = now.year + index // 12, index % 12 + 1
    day = min(now.day, calendar.monthrange(year, month)[1])
    return now.replace(year=year, month=month, day=day)


def _next_month_boundary(now: datetime, months: int) -> datetime:
    index = (now.year - _EPOCH.year) * 12 + now.month - 1
    boundary = (index // months + 1) * months
    return datetime(_EPOCH.year + boundary // 12, boundary % 12 + 1, 1, tzinfo=UTC)


def _next_boundary(now: datetime, origin: datetime, seconds: int) -> datetime:
    # Integer microseconds: float timestamps would misplace boundaries far from the epoch.
    step = seconds * _MICROS
    elapsed = (now - origin) // timedelta(microseconds=1)
    return origin + timedelta(microseconds=(elapsed // step + 1) * step)
