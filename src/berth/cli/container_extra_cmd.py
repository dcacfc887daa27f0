"""Commands that look into a container: cp, diff, export, stats, top, commit.

Thin adapters: parse Docker's flags, call the Engine, print Docker's output. Binary
streams (``cp -``, ``export``) go to and from ``sys.stdout.buffer``/``sys.stdin.buffer``.
"""

from __future__ import annotations

import sys
import time

from berth.cli.main import Ctx
from berth.cli.parser import Parser, add_format
from berth.errors import BerthError

STATS_COLUMNS = [("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"),
                 ("MEM USAGE / LIMIT", "MemUsage"), ("MEM %", "MemPerc"),
                 ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs")]
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


# -- cp ------------------------------------------------------------------------------------

def _split_cp_arg(arg: str) -> tuple[str | None, str]:
    """Docker's splitCpArg: ``CTR:PATH``; absolute, ``.``-relative and ``-`` are local."""
    if arg == "-" or arg.startswith("/") or arg.startswith("."):
        return None, arg
    ctr, sep, path = arg.partition(":")
    if not sep or not ctr:
        return None, arg
    return ctr, path or "/"


def cp(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth cp", "Copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true",
                   help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true",
                   help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy")
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dest", metavar="DEST_PATH")
    a = p.parse(argv)
    src_ctr, src = _split_cp_arg(a.src)
    dst_ctr, dst = _split_cp_arg(a.dest)
    if src_ctr and dst_ctr:
        raise BerthError("copying between containers is not supported")
    if not src_ctr and not dst_ctr:
        raise BerthError("must specify at least one container source")
    if src == "" or dst == "":
        raise BerthError("filepath can not be empty")
    if src_ctr:
        host = sys.stdout.buffer if dst == "-" else dst
        result = ctx.engine.container_cp(src_ctr, src, host, to_container=False,
                                         follow_link=a.follow_link, archive=a.archive)
        shown = dst
    else:
        assert dst_ctr is not None
        host = sys.stdin.buffer if src == "-" else src
        result = ctx.engine.container_cp(dst_ctr, dst, host, to_container=True,
                                         follow_link=a.follow_link, archive=a.archive)
        shown = a.dest
    if "-" not in (src, dst) and not a.quiet and sys.stderr.isatty():
        from berth.units import human_size

        sys.stderr.write(f"Successfully copied {human_size(result.size)} to {shown}\n")
    return 0


# -- diff / export ----------------------------------------------------------------------------

def diff(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth diff", "Inspect changes to files or directories on a container's "
               "filesystem")
    p.add_argument("container", metavar="CONTAINER")
    a = p.parse(argv)
    lines = [str(c) for c in ctx.engine.container_diff(a.container)]
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def export(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth export", "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")
    a = p.parse(argv)
    if a.output:
        ctx.engine.container_export(a.container, path=a.output)
        return 0
    if sys.stdout.isatty():
        raise BerthError("cowardly refusing to save to a terminal. Use the -o flag or "
                         "redirect")
    ctx.engine.container_export(a.container, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


# -- stats / top ---------------------------------------------------------------------------------

def stats(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth stats", "Display a live stream of container(s) resource usage "
               "statistics")
    p.add_argument("-a", "--all", action="store_true",
                   help="Show all containers (default shows just running)")
    add_format(p)
    p.add_argument("--no-stream", action="store_true",
                   help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    a = p.parse(argv)
    tty = sys.stdout.isatty()
    while True:
        text = _stats_table(ctx, a)
        if a.no_stream:
            sys.stdout.write(text + "\n")
            return 0
        sys.stdout.write(("\033[2J\033[H" if tty else "") + text + "\n")
        sys.stdout.flush()
        time.sleep(0.5)


def _stats_table(ctx: Ctx, a) -> str:  # type: ignore[no-untyped-def]
    from berth.cli.output import format_rows
    from berth.container.stats import format_row

    rows = ctx.engine.container_stats(a.containers or None, all=a.all)
    shown = a.containers or [r["record"].short_id for r in rows]
    cells = [format_row(row, name, trunc=not a.no_trunc) for row, name in zip(rows, shown)]
    return format_rows(cells, STATS_COLUMNS, a.format, headers=STATS_HEADERS)


def top(ctx: Ctx, argv: list[str]) -> int:
    import argparse

    from berth.cli.output import tabwrite

    p = Parser("berth top", "Display the running processes of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")
    a = p.parse(argv)
    titles, rows = ctx.engine.container_top(a.container, a.ps_args or None)
    sys.stdout.write(tabwrite([titles, *rows], padding=3, minwidth=20) + "\n")
    return 0


# -- commit ----------------------------------------------------------------------------------------

def _bool_flags(argv: list[str], names: tuple[str, ...]) -> tuple[list[str], bool]:
    """Go's ``--flag=false`` spelling for a boolean that defaults to true."""
    value = True
    out = []
    for arg in argv:
        name, eq, v = arg.partition("=")
        if name in names:
            if eq and v.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise BerthError(f"invalid argument \"{v}\" for \"{arg}\" flag: "
                                 f"strconv.ParseBool: parsing \"{v}\": invalid syntax")
            value = (v.lower() in ("true", "1", "t")) if eq else True
            continue
        out.append(arg)
    return out, value


def commit(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth commit", "Create a new image from a container's changes")
    p.add_argument("-a", "--author", default="",
                   help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[],
                   help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ref", nargs="?", default=None, metavar="REPOSITORY[:TAG]")
    argv, pause = _bool_flags(argv, ("-p", "--pause"))
    a = p.parse(argv)
    image_id = ctx.engine.commit(a.container, a.ref, author=a.author, message=a.message,
                                 changes=a.change, pause=pause)
    print(image_id)
    return 0
