"""What every command module shares: writing output, the prune prompt, command groups.

Kept tiny and stdlib-only: it is imported on every command, ``run`` included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from berth.errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from berth.cli.main import Ctx

Command = Callable[["Ctx", list[str]], int]


def out(text: str) -> None:
    """Print ``text`` with one trailing newline; nothing at all for an empty listing."""
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def confirm(warning: str) -> bool:
    """Docker's prune prompt: only ``y``/``yes`` goes ahead."""
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run_group(ctx: Ctx, argv: list[str], *, group: str, title: str,
              subs: dict[str, Command], listed: Iterable[str] | None = None) -> int:
    """``berth GROUP SUBCOMMAND ...``: help for no/``--help`` argument, else dispatch."""
    if not argv or argv[0] in ("-h", "--help"):
        names = "\n".join(f"  {n}" for n in sorted(listed if listed is not None else subs))
        print(f"Usage:  berth {group} COMMAND\n\n{title}\n\nCommands:\n{names}")
        return 0
    fn = subs.get(argv[0])
    if fn is None:
        raise InvalidArgument(f"unknown command: berth {group} {argv[0]}")
    return fn(ctx, argv[1:])
