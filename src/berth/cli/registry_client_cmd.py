"""Registry client commands: ``pull``, ``push``, ``login``, ``logout``.

Thin adapters: parse Docker's flags, pick a progress renderer, call the Engine, print
Docker's lines. The two renderers live here because only the CLI prints: on a terminal,
one rich progress bar per layer; otherwise Docker's plain lines (``<id>: Pull complete``),
which is what scripts and CI logs see.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from berth.cli.parser import Parser, UsageError
from berth.errors import BerthError

if TYPE_CHECKING:  # pragma: no cover
    from berth.cli.main import Ctx


def _bool_flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "t", "true", "yes", "y"):
        return True
    if v in ("0", "f", "false", "no", "n"):
        return False
    raise ValueError(value)


def _add_tls_verify(p: Parser) -> None:
    p.add_argument("--tls-verify", type=_bool_flag, nargs="?", const=True, default=True,
                   metavar="bool", help="Require HTTPS and verify certificates (default true)")


# -- progress renderers -----------------------------------------------------------------------
class PlainProgress:
    """Docker's non-terminal output: one line per state change, no byte counts."""

    def __init__(self, out: Any = None) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def status(self, message: str, layer: str | None = None) -> None:
        self._line(f"{layer}: {message}" if layer else message)

    def layer_start(self, layer: str, action: str, total: int | None) -> None:
        pass

    def advance(self, layer: str, n: int) -> None:
        pass

    def done(self, layer: str, status: str) -> None:
        self._line(f"{layer}: {status}")


class RichProgress:
    """Per-layer bars on a terminal (rich is imported only when this is used)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._p = Progress(TextColumn("{task.fields[layer]}: {task.description:<18}"),
                           BarColumn(bar_width=40), DownloadColumn(), TransferSpeedColumn(),
                           transient=False)
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.stop()

    def _task(self, layer: str) -> Any:
        with self._lock:
            if layer not in self._tasks:
                self._tasks[layer] = self._p.add_task("", layer=layer, total=None, start=False)
            return self._tasks[layer]

    def status(self, message: str, layer: str | None = None) -> None:
        if layer is None:
            self._p.console.print(message, highlight=False, markup=False)
        else:
            self._p.update(self._task(layer), description=message)

    def layer_start(self, layer: str, action: str, total: int | None) -> None:
        t = self._task(layer)
        self._p.update(t, description=action, total=total)
        self._p.start_task(t)

    def advance(self, layer: str, n: int) -> None:
        self._p.advance(self._task(layer), n)

    def done(self, layer: str, status: str) -> None:
        t = self._task(layer)
        task = self._p._tasks.get(t)  # noqa: SLF001 - rich has no public getter
        total = task.total if task is not None and task.total else 1
        self._p.update(t, description=status, total=total, completed=total)


class _NoRender:
    def __enter__(self) -> _NoRender:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _renderer(quiet: bool) -> tuple[Any, Any]:
    """(progress object, context manager that runs it) for this terminal and ``-q``."""
    if quiet:
        return None, _NoRender()
    if sys.stdout.isatty():
        r = RichProgress()
        return r, r
    return PlainProgress(), _NoRender()


# -- commands ---------------------------------------------------------------------------------
def _transfer_start(p: Parser, argv: list[str], trust: str):  # type: ignore[no-untyped-def]
    """Flags and first output shared by pull and push: ``(args, ref, progress, running)``."""
    from berth.oci import reference

    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", type=_bool_flag, nargs="?", const=True,
                   default=True, help=f"Skip image {trust} (accepted, always true)")
    _add_tls_verify(p)
    a = p.parse(argv)
    ref = reference.parse(a.name)
    if not a.quiet and not a.all_tags and not ref.tag and not ref.digest:
        print("Using default tag: latest", flush=True)
    progress, running = _renderer(a.quiet)
    return a, ref, progress, running


def pull(ctx: Ctx, argv: list[str]) -> int:
    """``berth pull [OPTIONS] NAME[:TAG|@DIGEST]``."""
    p = Parser("berth pull", "Download an image from a registry")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true",
                   help="Download all tagged images in the repository")
    p.add_argument("--platform", default=None, help="Set platform if server is multi-platform")
    a, ref, progress, running = _transfer_start(p, argv, "verification")
    with running:
        results = ctx.engine.pull(a.name, platform=a.platform, all_tags=a.all_tags,
                                  tls_verify=a.tls_verify, progress=progress)
    if a.quiet:
        print(ref.repository if a.all_tags else str(results[0].reference))
        return 0
    for r in results:
        print(f"Digest: {r.digest}")
        if not a.all_tags:
            print(f"Status: {r.status}")
    if a.all_tags:
        fresh = any(not r.up_to_date for r in results)
        what = "Downloaded newer image" if fresh else "Image is up to date"
        print(f"Status: {what} for {ref.familiar_repository}")
        print(ref.repository)
    else:
        print(str(results[0].reference))
    return 0


def push(ctx: Ctx, argv: list[str]) -> int:
    """``berth push [OPTIONS] NAME[:TAG]``."""
    p = Parser("berth push", "Upload an image to a registry")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true",
                   help="Push all tags of an image to the repository")
    p.add_argument("--compression-format", choices=("gzip", "zstd"), default=None,
                   help="Compress uncompressed layers with this format (default gzip)")
    p.add_argument("--compression-level", type=int, default=None,
                   help="Compression level (gzip 1-9, zstd 1-22; default 3)")
    a, ref, progress, running = _transfer_start(p, argv, "signing")
    with running:
        results = ctx.engine.push(a.name, all_tags=a.all_tags, tls_verify=a.tls_verify,
                                  progress=progress, compression_format=a.compression_format,
                                  compression_level=a.compression_level)
    for r in results:
        print(r.reference.familiar if a.quiet else r.line)
    return 0


def login(ctx: Ctx, argv: list[str]) -> int:
    """``berth login [OPTIONS] [SERVER]``."""
    from berth.registry.client import credentials

    p = Parser("berth login", "Log in to a registry")
    p.add_argument("server", nargs="?", default=None, metavar="SERVER")
    p.add_argument("-u", "--username", default=None, help="Username")
    p.add_argument("-p", "--password", default=None, help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    _add_tls_verify(p)
    a = p.parse(argv)
    if a.password is not None and a.password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive", p.prog)
    password = a.password
    if a.password_stdin:
        if not a.username:
            raise UsageError("Must provide --username with --password-stdin", p.prog)
        password = sys.stdin.read().rstrip("\r\n")
    elif a.password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. "
                         "Use --password-stdin.\n")
    username = a.username
    if username is None and password is None:
        stored = credentials.load(credentials.normalize_server(a.server))
        if stored is not None:
            username, password = stored.username, stored.password
    if username is None or password is None:
        username, password = _prompt(username, password)
    ctx.engine.login(a.server, username, password, tls_verify=a.tls_verify)
    print("Login Succeeded")
    return 0


def _prompt(username: str | None, password: str | None) -> tuple[str, str]:
    """Ask on the terminal for what the flags did not give (never from a pipe)."""
    if not sys.stdin.isatty():
        raise BerthError("Cannot perform an interactive login from a non TTY device")
    import getpass

    if not username:
        username = input("Username: ").strip()
    if not username:
        raise BerthError("Username is required")
    if password is None:
        password = getpass.getpass("Password: ")
    if not password:
        raise BerthError("Password is required")
    return username, password


def logout(ctx: Ctx, argv: list[str]) -> int:
    """``berth logout [SERVER]``."""
    from berth.registry.client import credentials

    p = Parser("berth logout", "Log out from a registry")
    p.add_argument("server", nargs="?", default=None, metavar="SERVER")
    a = p.parse(argv)
    domain, removed = ctx.engine.logout(a.server)
    key = credentials.server_key(domain)
    print(f"Removing login credentials for {key}" if removed else f"Not logged in to {key}")
    return 0
