"""argparse tuned to behave like Docker's CLI on bad input.

Docker answers a bad flag with a one-line error, a pointer to ``--help`` and exit code 125;
argparse would print a usage block and exit 2. :class:`Parser` raises :class:`UsageError`
instead, which :func:`berth.cli.main.main` turns into Docker's output.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from berth.errors import BerthError


class UsageError(BerthError):
    """Bad flags or arguments: Docker prints the message plus a help hint and exits 125."""

    exit_code = 125

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(f"{message}\nSee '{prog} --help'.")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting."""

    def __init__(self, prog: str, description: str | None = None, **kw) -> None:  # type: ignore[no-untyped-def]
        kw.setdefault("allow_abbrev", False)
        super().__init__(prog=prog, description=description, **kw)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            bad = message.split(": ", 1)[1].split()[0]
            message = f"unknown flag: {bad}" if bad.startswith("-") else \
                f"\"{self.prog}\" accepts no argument(s) like {bad!r}"
        raise UsageError(message, self.prog)

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse ``argv`` completely (no intermixed leftovers)."""
        return self.parse_args(list(argv))


def add_format(p: argparse.ArgumentParser) -> None:
    """The ``--format`` flag every listing command shares."""
    p.add_argument("--format", default=None,
                   help="Format output: 'table', 'json', or a Go template")


def add_filter(p: argparse.ArgumentParser, *, short: bool = True) -> None:
    """The repeatable ``-f/--filter key=value`` flag (prune commands use ``-f`` for force)."""
    names = ("-f", "--filter") if short else ("--filter",)
    p.add_argument(*names, action="append", default=[], metavar="FILTER",
                   help="Filter output based on conditions provided (key=value)")


def parse_filters(items: list[str], allowed: set[str], prog: str) -> dict[str, list[str]]:
    """Turn ``["dangling=true", "label=a"]`` into ``{"dangling": ["true"], "label": ["a"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise BerthError(f"bad format of filter (expected name=value): {item}")
        key = key.strip().lower()
        if key not in allowed:
            raise BerthError(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out
