"""Sizes, durations and timestamps spelled exactly as Docker's go-units spells them."""

from __future__ import annotations

import calendar
import time

import pytest

from berth.errors import InvalidArgument
from berth.units import (
    bytes_size,
    human_duration,
    human_size,
    parse_duration,
    parse_size,
    parse_timestamp,
    rfc3339_nano,
    time_ago,
)

MIN, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1234, "1.23kB"),
        (1_234_567, "1.23MB"),
        (4_860_000, "4.86MB"),
        (12_345_678_901, "12.3GB"),
        (77_800_000.0, "77.8MB"),
        (999.9, "1e+03B"),  # Go's %.3g rounds into exponent form too
        (10**27, "1e+03YB"),
    ],
)
def test_human_size(n: float, text: str) -> None:
    assert human_size(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0B"), (1023, "1023B"), (1024, "1KiB"), (1536 * 1024, "1.5MiB"), (3 * 2**30, "3GiB")],
)
def test_bytes_size(n: int, text: str) -> None:
    assert bytes_size(n) == text


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("1024", 1024),
        ("512k", 512 * 1024),
        ("32m", 32 * 2**20),
        ("32M", 32 * 2**20),
        ("1g", 2**30),
        ("1.5G", int(1.5 * 2**30)),
        ("2gb", 2 * 2**30),
        ("2GiB", 2 * 2**30),
        ("10 m", 10 * 2**20),
        ("7b", 7),
    ],
)
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "junk", "-1m", "1x", "1.2.3m", "m", "1mbb"])
def test_parse_size_rejects_junk(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("secs", "text"),
    [
        (0.45, "Less than a second"),
        (1, "1 second"),
        (47, "47 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (3 * MIN, "3 minutes"),
        (35 * MIN + 40, "35 minutes"),
        (59 * MIN, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MIN, "About an hour"),
        (HOUR + 31 * MIN, "2 hours"),  # hours round, everything else floors
        (3 * HOUR + 29 * MIN, "3 hours"),
        (3 * HOUR + 31 * MIN, "4 hours"),
        (DAY, "24 hours"),
        (DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
    ],
)
def test_human_duration(secs: float, text: str) -> None:
    assert human_duration(secs) == text


def test_time_ago() -> None:
    assert time_ago(1000.0, now=1000.0 + 2 * WEEK) == "2 weeks ago"
    assert time_ago(time.time() - 5) in ("5 seconds ago", "6 seconds ago")


@pytest.mark.parametrize(
    ("text", "secs"),
    [("10m", 600), ("1h30m", 5400), ("2h45m3.5s", 9903.5), ("48h", 172800), ("300ms", 0.3),
     ("-5m", -300), ("0", 0), ("1.5h", 5400)],
)
def test_parse_duration(text: str, secs: float) -> None:
    assert parse_duration(text) == pytest.approx(secs)


@pytest.mark.parametrize("text", ["", "10", "h", "1x", "1h 2m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)


NOW = 1_700_000_000.0
JAN2 = calendar.timegm((2024, 1, 2, 15, 4, 5, 0, 0, 0))


@pytest.mark.parametrize(
    ("text", "secs"),
    [
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("2h45m3.5s", NOW - 9903.5),
        ("48h", NOW - 172800),
        ("2024-01-02T15:04:05Z", JAN2),
        ("2024-01-02T15:04:05.5Z", JAN2 + 0.5),
        ("2024-01-02T15:04:05.123456789Z", JAN2 + 0.123456789),
        ("2024-01-02T17:04:05+02:00", JAN2),
        ("2024-01-02T10:04:05-05:00", JAN2),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        ("0", 0.0),
    ],
)
def test_parse_timestamp(text: str, secs: float) -> None:
    assert parse_timestamp(text, now=NOW) == pytest.approx(secs)


def test_parse_timestamp_without_zone_is_local_time() -> None:
    local = time.mktime((2024, 1, 2, 0, 0, 0, 0, 0, -1))
    assert parse_timestamp("2024-01-02", now=NOW) == local
    assert parse_timestamp("2024-01-02T15:04", now=NOW) == time.mktime(
        (2024, 1, 2, 15, 4, 0, 0, 0, -1))


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "2024-01-02T25:00:00Z", "1h2", ""])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_timestamp(text, now=NOW)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (JAN2, "2024-01-02T15:04:05Z"),
        (int(JAN2), "2024-01-02T15:04:05Z"),
        (JAN2 + 0.5, "2024-01-02T15:04:05.5Z"),
        (1_700_000_000.123456, "2023-11-14T22:13:20.123456Z"),
        (0, "1970-01-01T00:00:00Z"),
    ],
)
def test_rfc3339_nano(ts: float, text: str) -> None:
    assert rfc3339_nano(ts) == text
