"""Read container logs written by conmon in the ``k8s-file`` format.

One record per line: ``<RFC 3339 nano timestamp> <stdout|stderr> <P|F> <content>\\n``, e.g.
``2024-05-01T12:00:00.123456789+00:00 stdout F hello``. ``F`` ends a line; ``P`` is a
partial chunk (conmon flushes what it has after 8 KiB or at exit) continued by the next
record of the same stream. A tty container logs everything as ``stdout``. The reader
joins partials back into lines, so ``logs`` shows what the program wrote.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime


def parse_time(ts: str) -> datetime:
    """RFC 3339 with nanoseconds (Python keeps microseconds)."""
    date, _, rest = ts.partition("T")
    frac = ""
    tz = "+00:00"
    clock = rest
    for sep in ("Z", "+", "-"):
        i = rest.find(sep, 8)
        if i > 0:
            clock, tz = rest[:i], ("+00:00" if sep == "Z" else rest[i:])
            break
    if "." in clock:
        clock, frac = clock.split(".", 1)
    return datetime.fromisoformat(f"{date}T{clock}.{(frac + '000000')[:6]}{tz}")


def _records(f, partial: dict[str, list]) -> Iterator[tuple[str, str, bytes]]:
    """(stream, timestamp text, full line) from complete records at the file position."""
    while True:
        pos = f.tell()
        raw = f.readline()
        if not raw:
            return
        if not raw.endswith(b"\n"):
            f.seek(pos)  # a record still being written; retry later
            return
        parts = raw[:-1].split(b" ", 3)
        if len(parts) < 3:
            continue
        ts, stream, tag = parts[0].decode(), parts[1].decode(), parts[2]
        content = parts[3] if len(parts) > 3 else b""
        if tag == b"P":
            acc = partial.setdefault(stream, [ts, b""])
            acc[1] += content
            continue
        if stream in partial:
            first_ts, acc = partial.pop(stream)
            yield stream, first_ts, acc + content + b"\n"
        else:
            yield stream, ts, content + b"\n"


def _leftovers(partial: dict[str, list]) -> list[tuple[str, str, bytes]]:
    """Partial records nothing completed: a last line the program wrote without a newline.

    conmon logs it as ``P`` and never follows it with ``F`` once the container has exited,
    so once the file is drained it is a line of its own, printed as written (no newline).
    """
    rest = sorted(((ts, stream, acc) for stream, (ts, acc) in partial.items()),
                  key=lambda r: parse_time(r[0]))
    partial.clear()
    return [(stream, ts, acc) for ts, stream, acc in rest]


def read_logs(path: str, *, follow: bool = False, tail: int | None = None,
              since: datetime | None = None, until: datetime | None = None,
              stop: Callable[[], bool] | None = None, poll: float = 0.1,
              ) -> Iterator[tuple[str, datetime, bytes]]:
    """Yield ``(stream, timestamp, line)``; lines keep their trailing newline.

    ``tail`` keeps the last N lines of what exists now; ``since``/``until`` filter by time.
    With ``follow`` the reader keeps waiting for new records until ``stop()`` returns true
    (e.g. "the container has exited") and the file has been drained. A file that shrinks
    (conmon truncates at ``--log-size-max``) is re-read from the start.
    """
    def keep(ts: datetime) -> bool:
        return (since is None or ts >= since) and (until is None or ts <= until)

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        if not follow:
            return
        while not os.path.exists(path):
            if stop and stop():
                return
            time.sleep(poll)
        f = open(path, "rb")
    with f:
        partial: dict[str, list] = {}
        complete = _records(f, partial)
        if not follow:  # the file as it is now: a trailing partial counts as a line
            complete = itertools.chain(complete, _LazyLeftovers(partial))
        first = ((s, parse_time(t), line) for s, t, line in complete)
        if tail is not None:
            buf: deque = deque(maxlen=max(tail, 0))
            for rec in first:
                if keep(rec[1]):
                    buf.append(rec)
            yield from buf
        else:
            for rec in first:
                if until is not None and rec[1] > until:
                    return
                if keep(rec[1]):
                    yield rec
        if not follow:
            return
        while True:
            done = bool(stop and stop())
            try:
                if os.fstat(f.fileno()).st_size < f.tell():
                    f.seek(0)
            except OSError:
                return
            got = False
            records = _records(f, partial)
            if done:  # the container has exited: nothing will complete a partial now
                records = itertools.chain(records, _LazyLeftovers(partial))
            for s, t, line in records:
                got = True
                ts = parse_time(t)
                if until is not None and ts > until:
                    return
                if keep(ts):
                    yield s, ts, line
            if done and not got:
                return
            if not got:
                time.sleep(poll)


class _LazyLeftovers:
    """Iterates :func:`_leftovers` only when reached, i.e. after the records before it."""

    def __init__(self, partial: dict[str, list]) -> None:
        self.partial = partial

    def __iter__(self) -> Iterator[tuple[str, str, bytes]]:
        return iter(_leftovers(self.partial))


def now_utc() -> datetime:
    return datetime.now(UTC)
