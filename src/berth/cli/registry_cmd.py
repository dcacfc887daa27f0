"""``berth registry serve|gc``: run berth's OCI distribution registry, and clean it.

The command is a thin adapter: it parses flags, resolves the default storage directory
(``<root>/registry``) and hands over to :mod:`berth.registry.server`. ``serve`` prints one
``listening on URL`` line to stderr (tests parse it to learn the port of ``--addr :0``).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from berth.cli.parser import Parser, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from berth.cli.main import Ctx

HELP = """Usage:  berth registry COMMAND

Run an OCI distribution registry

Commands:
  serve       Serve a registry in the foreground
  gc          Remove blobs no manifest references
"""


def _default_storage(ctx: Ctx) -> str:
    root = ctx.root or os.environ.get("BERTH_ROOT")
    if not root and os.geteuid() != 0:  # rootless: the user's store (berth.rootless)
        from berth.rootless.paths import default_root

        root = default_root()
    root = root or "/var/lib/berth"
    return os.path.join(root, "registry")


def registry(ctx: Ctx, argv: list[str]) -> int:
    """Dispatch ``registry serve`` / ``registry gc``."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    sub, rest = argv[0], argv[1:]
    if sub == "serve":
        return _serve(ctx, rest)
    if sub == "gc":
        return _gc(ctx, rest)
    raise UsageError(f"unknown command: berth registry {sub}", "berth registry")


def _serve(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth registry serve", description="Serve an OCI distribution registry")
    p.add_argument("--addr", default="127.0.0.1:5000", help="Address to listen on (HOST:PORT)")
    p.add_argument("--storage", default=None, help="Storage directory (default <root>/registry)")
    p.add_argument("--htpasswd", default=None, help="htpasswd file (bcrypt) enabling Basic auth")
    p.add_argument("--tls-cert", default=None, help="TLS certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="TLS private key (PEM)")
    p.add_argument("--read-only", action="store_true", help="Refuse every write")
    p.add_argument("--access-log", action="store_true", help="Log each request to stderr")
    a = p.parse(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        raise UsageError("--tls-cert and --tls-key must be given together", p.prog)

    import asyncio

    from berth.registry.server.serve import parse_addr, serve, tls_context

    parse_addr(a.addr)  # fail on a bad address before touching the disk
    tls = tls_context(a.tls_cert, a.tls_key) if a.tls_cert else None
    storage = a.storage or _default_storage(ctx)

    def announce(url: str) -> None:
        sys.stderr.write(f"listening on {url} (storage {storage})\n")
        sys.stderr.flush()

    try:
        asyncio.run(serve(storage, a.addr, htpasswd=a.htpasswd, tls=tls,
                          read_only=a.read_only, access_log=a.access_log, on_listen=announce))
    except OSError as e:  # storage not creatable/writable: a user error, not a crash
        from berth.errors import BerthError

        raise BerthError(f"cannot use storage {storage}: {e.strerror or e}") from None
    return 0


def _gc(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth registry gc", description="Remove blobs no manifest references")
    p.add_argument("--storage", default=None, help="Storage directory (default <root>/registry)")
    p.add_argument("--dry-run", action="store_true", help="Only print what would be removed")
    a = p.parse(argv)
    storage = a.storage or _default_storage(ctx)
    if not os.path.isdir(storage):
        from berth.errors import NotFound

        raise NotFound(f"no registry storage at {storage}")

    from berth.registry.server.gc import collect_garbage

    report = collect_garbage(storage, dry_run=a.dry_run)
    verb = "would remove" if a.dry_run else "removed"
    for kind, what, size in report.removed:
        print(f"{verb} {kind} {what}" + (f" ({size} bytes)" if size else ""))
    print(f"{'would reclaim' if a.dry_run else 'reclaimed'} {report.reclaimed} bytes")
    return 0
