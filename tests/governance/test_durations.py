"""Duration strings, key expiry and budget period resets (rolling and calendar-aligned)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from llmux.governance.durations import Duration, expires_at, next_reset, parse_duration


def at(text: str) -> datetime:
    """A UTC instant from an ISO string."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", Duration(30, "s")),
        ("10m", Duration(10, "m")),
        ("24h", Duration(24, "h")),
        ("7d", Duration(7, "d")),
        ("2w", Duration(2, "w")),
        ("1mo", Duration(1, "mo")),
        ("1y", Duration(1, "y")),
        (" 3mo ", Duration(3, "mo")),
    ],
)
def test_every_unit_parses(text: str, expected: Duration) -> None:
    """Each unit is recognised, and surrounding spaces are ignored."""
    assert parse_duration(text) == expected


def test_duration_prints_back_as_its_text() -> None:
    """`str()` gives the canonical form, for storing `budget_duration`."""
    assert str(parse_duration("1mo")) == "1mo"


@pytest.mark.parametrize("text", ["", "7", "d", "1.5h", "-1d", "0d", "5x", "1 month", "1M", "7dd"])
def test_bad_strings_are_refused_naming_the_value(text: str) -> None:
    """Anything but a positive whole number and a known unit is a ValueError naming it."""
    with pytest.raises(ValueError, match="Invalid duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_absurdly_long_durations_are_refused() -> None:
    """More than a hundred years is refused rather than overflowing a datetime later."""
    with pytest.raises(ValueError, match="100 years"):
        parse_duration("1000y")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", "2026-03-10T15:42:37"),
        ("10m", "2026-03-10T15:52:07"),
        ("24h", "2026-03-11T15:42:07"),
        ("7d", "2026-03-17T15:42:07"),
        ("2w", "2026-03-24T15:42:07"),
        ("1mo", "2026-04-10T15:42:07"),
        ("1y", "2027-03-10T15:42:07"),
    ],
)
def test_rolling_reset_is_now_plus_the_duration(text: str, expected: str) -> None:
    """Rolling periods end exactly one duration after now."""
    assert next_reset(parse_duration(text), at("2026-03-10T15:42:07"), aligned=False) == at(
        expected
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", "2026-03-10T15:42:30"),
        ("10m", "2026-03-10T15:50:00"),
        ("1h", "2026-03-10T16:00:00"),
        ("1d", "2026-03-11T00:00:00"),
        ("7d", "2026-03-16T00:00:00"),
        ("1w", "2026-03-16T00:00:00"),
        ("1mo", "2026-04-01T00:00:00"),
        ("3mo", "2026-04-01T00:00:00"),
        ("1y", "2027-01-01T00:00:00"),
    ],
)
def test_aligned_reset_is_the_next_calendar_boundary(text: str, expected: str) -> None:
    """Aligned periods end at the next unit boundary (2026-03-10 is a Tuesday)."""
    assert next_reset(parse_duration(text), at("2026-03-10T15:42:07"), aligned=True) == at(expected)


def test_aligned_reset_exactly_on_a_boundary_is_the_next_one() -> None:
    """At midnight, a daily budget resets at the following midnight, not now."""
    now = at("2026-03-10T00:00:00")
    assert next_reset(parse_duration("1d"), now, aligned=True) == at("2026-03-11T00:00:00")


def test_aligned_weekly_reset_on_sunday_is_the_next_day() -> None:
    """A weekly budget checked on Sunday resets on Monday 00:00 UTC."""
    now = at("2026-03-15T23:59:59")
    assert next_reset(parse_duration("7d"), now, aligned=True) == at("2026-03-16T00:00:00")


def test_aligned_monthly_reset_crosses_the_year() -> None:
    """A monthly budget in December resets on January 1st."""
    now = at("2026-12-31T23:00:00")
    assert next_reset(parse_duration("1mo"), now, aligned=True) == at("2027-01-01T00:00:00")


def test_rolling_month_from_january_31_ends_on_the_last_day_of_february() -> None:
    """Jan 31 + 1mo clamps to Feb 28 in a common year."""
    now = at("2026-01-31T12:00:00")
    assert next_reset(parse_duration("1mo"), now, aligned=False) == at("2026-02-28T12:00:00")


def test_rolling_month_in_a_leap_year_ends_on_february_29() -> None:
    """Jan 31 + 1mo clamps to Feb 29 in a leap year."""
    now = at("2028-01-31T12:00:00")
    assert next_reset(parse_duration("1mo"), now, aligned=False) == at("2028-02-29T12:00:00")


def test_rolling_year_from_february_29_ends_on_february_28() -> None:
    """A leap day plus one year is Feb 28 of the next (common) year."""
    now = at("2028-02-29T08:00:00")
    assert next_reset(parse_duration("1y"), now, aligned=False) == at("2029-02-28T08:00:00")


def test_rolling_months_cross_year_ends() -> None:
    """Nov 30 + 3mo is Feb 28 of the next year."""
    now = at("2026-11-30T00:00:00")
    assert next_reset(parse_duration("3mo"), now, aligned=False) == at("2027-02-28T00:00:00")


def test_other_time_zones_are_converted_to_utc() -> None:
    """`now` in another zone gives the same UTC boundary."""
    now = datetime(2026, 3, 10, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert next_reset(parse_duration("1d"), now, aligned=True) == at("2026-03-12T00:00:00")


def test_naive_now_is_refused() -> None:
    """A naive datetime is ambiguous and refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        next_reset(parse_duration("1d"), datetime(2026, 3, 10), aligned=True)


def test_expires_at_is_rolling() -> None:
    """Key expiry counts the full duration from creation."""
    now = at("2026-03-10T15:42:07")
    assert expires_at(parse_duration("30s"), now) == at("2026-03-10T15:42:37")


def test_fixed_durations_know_their_seconds_and_calendar_ones_their_months() -> None:
    """`seconds` is set for s..w and `months` for mo and y."""
    assert (parse_duration("2w").seconds, parse_duration("2w").months) == (1_209_600, None)
    assert (parse_duration("2y").seconds, parse_duration("2y").months) == (None, 24)
