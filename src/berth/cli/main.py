"""Entry point: global flags, command dispatch, and the one place errors are printed.

Commands are looked up in :data:`COMMANDS` and their module imported on demand: the table
is the whole cost of start-up. Every :class:`~berth.errors.BerthError` becomes
``Error: <message>`` on stderr with Docker's exit code; anything else is an internal error,
reported in one line (with a traceback only under ``--debug``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from berth.engine import Engine

# command -> "module:function"; the function takes (Ctx, argv) and returns an exit code.
COMMANDS: dict[str, str] = {
    "version": "berth.cli.system_cmd:version",
    "info": "berth.cli.system_cmd:info",
    "system": "berth.cli.system_cmd:system",
    "volume": "berth.cli.volume_cmd:volume",
    "images": "berth.cli.images_cmd:images",
    "image": "berth.cli.images_cmd:image",
    "import": "berth.cli.images_cmd:import_",
    "load": "berth.cli.images_cmd:load",
    "save": "berth.cli.images_cmd:save",
    "tag": "berth.cli.images_cmd:tag",
    "rmi": "berth.cli.images_cmd:rmi",
    "history": "berth.cli.images_cmd:history",
    "inspect": "berth.cli.inspect_cmd:inspect",
    "registry": "berth.cli.registry_cmd:registry",
    "run": "berth.cli.container_cmd:run",
    "create": "berth.cli.container_cmd:create",
    "start": "berth.cli.container_cmd:start",
    "stop": "berth.cli.container_cmd:stop",
    "restart": "berth.cli.container_cmd:restart",
    "kill": "berth.cli.container_cmd:kill",
    "rm": "berth.cli.container_cmd:rm",
    "ps": "berth.cli.container_cmd:ps",
    "logs": "berth.cli.container_cmd:logs",
    "attach": "berth.cli.container_cmd:attach",
    "wait": "berth.cli.container_cmd:wait",
    "rename": "berth.cli.container_cmd:rename",
    "pause": "berth.cli.container_cmd:pause",
    "unpause": "berth.cli.container_cmd:unpause",
    "port": "berth.cli.network_cmd:port",
    "network": "berth.cli.network_cmd:network",
    "container": "berth.cli.container_cmd:container",
    "exec": "berth.cli.container_cmd:exec_",
    "cp": "berth.cli.container_extra_cmd:cp",
    "diff": "berth.cli.container_extra_cmd:diff",
    "export": "berth.cli.container_extra_cmd:export",
    "stats": "berth.cli.container_extra_cmd:stats",
    "top": "berth.cli.container_extra_cmd:top",
    "commit": "berth.cli.container_extra_cmd:commit",
    "build": "berth.cli.build_cmd:build",
    "builder": "berth.cli.build_cmd:builder",
    "pull": "berth.cli.registry_client_cmd:pull",
    "push": "berth.cli.registry_client_cmd:push",
    "login": "berth.cli.registry_client_cmd:login",
    "logout": "berth.cli.registry_client_cmd:logout",
}

GROUP_HELP = """Usage:  berth [OPTIONS] COMMAND

A container engine with Docker's workflow and formats

Options:
      --root string      Root of the store (default /var/lib/berth, env BERTH_ROOT)
      --runroot string   Root of run state (default /run/berth, env BERTH_RUNROOT)
  -D, --debug            Show tracebacks and debug output
  -v, --version          Print version information and quit

Commands:
{commands}

Run 'berth COMMAND --help' for more information on a command.
"""


@dataclass
class Ctx:
    """What every command gets: global options and a lazily built :class:`Engine`."""

    root: str | None = None
    runroot: str | None = None
    debug: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from berth.engine import Engine

            self._engine = Engine(root=self.root, runroot=self.runroot)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def _split_globals(argv: list[str]) -> tuple[Ctx, list[str]]:
    ctx = Ctx(root=os.environ.get("BERTH_ROOT"), runroot=os.environ.get("BERTH_RUNROOT"))
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        a = argv[i]
        name, eq, val = a.partition("=")
        if name in ("--root", "--runroot"):
            if not eq:
                i += 1
                if i >= len(argv):
                    raise _usage(f"flag needs an argument: {name}")
                val = argv[i]
            setattr(ctx, name[2:], val)
        elif a in ("-D", "--debug"):
            ctx.debug = True
        elif a in ("-v", "--version"):
            return ctx, ["version", "--short"]
        elif a in ("-h", "--help"):
            return ctx, ["--help"]
        else:
            raise _usage(f"unknown flag: {a}")
        i += 1
    return ctx, argv[i:]


def _usage(msg: str) -> Exception:
    from berth.cli.parser import UsageError

    return UsageError(msg, "berth")


def _resolve(name: str) -> Callable[[Ctx, list[str]], int]:
    import importlib

    mod, _, fn = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(mod), fn)


def main(argv: list[str] | None = None) -> int:
    """Run one berth command; return its exit code (never raises for user errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    ctx = Ctx()
    try:
        ctx, args = _split_globals(args)
        if not args or args[0] in ("--help", "help"):
            cmds = "\n".join(f"  {n}" for n in sorted(COMMANDS))
            print(GROUP_HELP.format(commands=cmds))
            return 0
        if args[0] not in COMMANDS:
            raise _usage(f"unknown command: berth {args[0]}")
        return _resolve(args[0])(ctx, args[1:]) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except Exception as e:  # noqa: BLE001 - last line of defence: never a traceback
        return report(e, debug=ctx.debug)
    finally:
        try:
            ctx.close()
        except Exception:  # noqa: BLE001
            pass


def report(e: BaseException, *, debug: bool = False) -> int:
    """Print ``e`` as one ``Error: ...`` line and return its exit code.

    Typed errors print their message; a full disk (ENOSPC, EDQUOT, SQLite's full-disk
    errors) becomes ``no space left on device`` through :func:`berth.errors.translate`;
    anything else is an ``internal error`` (its traceback only under ``--debug``).
    Multi-container commands call this for each failed name, so they go on like Docker.
    """
    from berth.errors import BerthError, translate

    t = translate(e)
    if isinstance(t, BerthError):
        _print_error(str(t))
        return t.exit_code
    if debug:
        import traceback

        traceback.print_exception(e)
    _print_error(f"internal error: {type(e).__name__}: {e}")
    return 1


def _print_error(msg: str) -> None:
    sys.stderr.write(f"Error: {msg}\n" if not msg.startswith("Error") else msg + "\n")
    sys.stderr.flush()
