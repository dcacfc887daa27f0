"""Sizes, durations and timestamps written and read the way Docker's CLI does.

Users compare berth's output with Docker's by eye and by script (`awk '{print $7}'`), so
the numbers must be spelled exactly as Docker's ``go-units`` package and its CLI spell them:
``1.23MB`` (decimal, three significant digits) in listings, ``1.5MiB`` (binary) in ``stats``,
``About an hour ago`` in CREATED columns. Flags that take sizes or times (``--memory 32m``,
``--since 10m``, ``until=2024-01-02``) accept what Docker accepts.

Pure functions, stdlib only: the engine and every CLI command import this module.
"""

from __future__ import annotations

import re
import time
from datetime import UTC

from berth.errors import InvalidArgument

__all__ = [
    "bytes_size",
    "human_duration",
    "human_size",
    "parse_duration",
    "parse_size",
    "parse_timestamp",
    "rfc3339_nano",
    "time_ago",
]

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scale(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    """Divide by ``base`` until below it (go-units' getSizeAndUnit, same stopping rule)."""
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(n: int | float) -> str:
    """``docker images`` SIZE: go-units ``HumanSizeWithPrecision(n, 3)``, e.g. ``1.23MB``.

    Go's ``%.3g`` and Python's agree (both switch to exponent form at the same point), so
    ``999.9`` bytes prints ``1e+03B`` here exactly as Docker does.
    """
    size, unit = _scale(float(n), 1000.0, _DECIMAL_UNITS)
    return "%.3g%s" % (size, unit)


def bytes_size(n: int | float) -> str:
    """``docker stats`` memory: go-units ``BytesSize`` (binary units, 4 digits), ``1.5MiB``."""
    size, unit = _scale(float(n), 1024.0, _BINARY_UNITS)
    return "%.4g%s" % (size, unit)


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)
_BINARY_MULT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """Docker's ``RAMInBytes``: ``512k``, ``32m``, ``1.5G``, ``1024``, ``2gb`` -> bytes.

    Units are binary whatever their spelling (``1k`` is 1024), the trailing ``b`` and the
    ``i`` are optional and case does not matter; fractions are truncated like Go's int64().
    """
    m = _SIZE_RE.match(text)
    try:
        if m is None:
            raise ValueError(text)
        size = float(m.group(1))
    except ValueError:
        raise InvalidArgument(f"invalid size: '{text}'") from None
    if m.group(2):
        size *= _BINARY_MULT[m.group(2).lower()]
    return int(size)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: the words of ``Up 3 hours`` and ``2 weeks ago``.

    The thresholds are Docker's, including the rounding of hours (``1h31m`` is ``2 hours``)
    and the floor of everything else (``13d5h`` is ``13 days``, ``24 months`` before years).
    """
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def time_ago(ts: float, now: float | None = None) -> str:
    """CREATED column: ``human_duration(now - ts) + " ago"`` (``2 weeks ago``)."""
    if now is None:
        now = time.time()
    return human_duration(now - ts) + " ago"


_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
    "s": 1.0, "m": 60.0, "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds: ``10m``, ``1h30m``, ``-1.5h``, ``300ms``.

    Exposed because ``--since``/``--until`` and health-check flags take Go durations;
    raises :class:`InvalidArgument` (``time: invalid duration "x"``) like Go would.
    """
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise InvalidArgument(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise InvalidArgument(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(\.\d+)?)?)?)?"
    r"([zZ]|[+-]\d{2}:\d{2})?$"
)
_UNIX_RE = re.compile(r"^\d+(?:\.\d+)?$")


def parse_timestamp(text: str, now: float | None = None) -> float:
    """``--since``/``--until``/``until=``: a time as Unix seconds, as Docker's GetTimestamp.

    Accepts a Go duration relative to ``now`` (``10m`` means ten minutes ago), RFC 3339
    with or without fraction and zone (no zone = local time, as Docker), a bare date
    ``2024-01-02``, and Unix seconds (``1700000000.5``).
    """
    value = text.strip()
    if now is None:
        now = time.time()
    if value != "0":
        try:
            return _clamp_time(now - parse_duration(value))
        except InvalidArgument:
            pass
    m = _DATETIME_RE.match(value)
    if m is not None:
        return _datetime_seconds(value, m)
    if "-" in value:
        raise InvalidArgument(f'parsing time "{value}": not an RFC 3339 timestamp')
    if _UNIX_RE.match(value):
        return _clamp_time(float(value))
    raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')


_TIME_MIN, _TIME_MAX = -62135596800.0, 253402300799.0  # 0001-01-01 .. 9999-12-31 UTC


def _clamp_time(t: float) -> float:
    """Keep a timestamp where Python's datetime can follow (``--since 1e20`` means "never");
    the order of times, all a filter needs, is unchanged."""
    return min(max(t, _TIME_MIN), _TIME_MAX)


def _datetime_seconds(value: str, m: re.Match[str]) -> float:
    import calendar
    from datetime import datetime

    """Turn a matched RFC 3339-ish string into Unix seconds, honouring its zone or local."""
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hour, minute, sec = (int(m.group(i) or 0) for i in (4, 5, 6))
    frac = float(m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    try:
        fields = datetime(year, month, day, hour, minute, sec).timetuple()
    except ValueError as exc:
        raise InvalidArgument(f'parsing time "{value}": {exc}') from None
    if zone is None:
        return time.mktime(fields) + frac
    base = calendar.timegm(fields)
    if zone in ("Z", "z"):
        return base + frac
    sign = -1 if zone[0] == "-" else 1
    offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base - offset + frac


def rfc3339_nano(ts: float) -> str:
    """Docker's ``Created`` in inspect: Go's RFC3339Nano in UTC, trailing zeros trimmed.

    ``repr`` gives the shortest decimal that round-trips the float, so a timestamp stored
    as ``1700000000.123456`` prints ``.123456`` and not float noise like ``.123456001``.
    """
    from decimal import Decimal  # only inspect needs it; keep `import berth.units` cheap

    if isinstance(ts, int):
        total_ns = ts * 1_000_000_000
    else:
        total_ns = int((Decimal(repr(float(ts))) * 1_000_000_000).to_integral_value())
    secs, nanos = divmod(total_ns, 1_000_000_000)
    from datetime import datetime

    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        stamp += ("." + f"{nanos:09d}").rstrip("0")
    return stamp + "Z"
