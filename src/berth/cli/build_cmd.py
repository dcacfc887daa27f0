"""``build`` and ``builder prune``: flags in, progress rendered, image ID out.

Two renderings of the same progress events (:mod:`berth.build.progress`):
``--progress auto`` (the default) and ``tty`` print Docker's classic builder text on stdout
(``Step 2/5 : RUN ...``, ``---> Using cache``, ``Successfully built``), which scripts grep;
``--progress plain`` prints BuildKit's plain text on stderr (``#3 [2/5] RUN ...``,
``#3 CACHED``, ``#3 DONE 0.1s``). ``-q`` prints only the image ID, and a failed RUN's
output then goes to stderr with the error, so a quiet build still says why it failed.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from typing import Any, BinaryIO

from berth.build.progress import BuildProgress, StepRef
from berth.cli.main import Ctx
from berth.cli.common import confirm
from berth.cli.parser import Parser, parse_filters
from berth.errors import BerthError, InvalidArgument

_TAR_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class ClassicProgress(BuildProgress):
    """Docker's classic builder output (stdout)."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self._line_open = False

    def _w(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _close_line(self) -> None:
        if self._line_open:
            self._w("\n")
            self._line_open = False

    def step(self, ref: StepRef) -> None:
        self._w(f"Step {ref.number}/{ref.total} : {ref.text}\n")

    def base(self, ref: StepRef, image_id: str | None) -> None:
        if image_id:
            self._w(f" ---> {_short(image_id)}\n")

    def cached(self, ref: StepRef, image_id: str) -> None:
        self._w(f" ---> Using cache\n ---> {_short(image_id)}\n")

    def running(self, ref: StepRef, container_id: str) -> None:
        self._w(f" ---> Running in {container_id}\n")
        self._cid = container_id

    def output(self, ref: StepRef, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        self._w(text)
        self._line_open = not text.endswith("\n")

    def done(self, ref: StepRef, image_id: str, seconds: float) -> None:
        self._close_line()
        cid = getattr(self, "_cid", None)
        if cid:
            self._w(f"Removing intermediate container {cid}\n")
            self._cid = None
        if image_id:
            self._w(f" ---> {_short(image_id)}\n")

    def warning(self, message: str) -> None:
        self._w(message + "\n")

    def built(self, image_id: str, tags: list[str]) -> None:
        self._w(f"Successfully built {_short(image_id)}\n")
        for t in tags:
            self._w(f"Successfully tagged {t}\n")


class PlainProgress(BuildProgress):
    """BuildKit's ``--progress=plain`` text (stderr)."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stderr
        self.n = 0
        self.t0 = 0.0
        self._partial = b""

    def _w(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def step(self, ref: StepRef) -> None:
        self.n += 1
        self.t0 = time.monotonic()
        label = f"{ref.stage} {ref.index}/{ref.stage_total}" if ref.stage else \
            f"{ref.index}/{ref.stage_total}"
        self._w(f"#{self.n} [{label}] {ref.text}\n")

    def base(self, ref: StepRef, image_id: str | None) -> None:
        self._w(f"#{self.n} DONE {time.monotonic() - self.t0:.1f}s\n\n")

    def cached(self, ref: StepRef, image_id: str) -> None:
        self._w(f"#{self.n} CACHED\n\n")

    def output(self, ref: StepRef, data: bytes) -> None:
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        stamp = time.monotonic() - self.t0
        for line in lines:
            self._w(f"#{self.n} {stamp:.3f} {line.decode('utf-8', 'replace')}\n")

    def done(self, ref: StepRef, image_id: str, seconds: float) -> None:
        if self._partial:
            self.output(ref, b"\n")
        self._w(f"#{self.n} DONE {seconds:.1f}s\n\n")

    def warning(self, message: str) -> None:
        self._w(f"WARNING: {message}\n")

    def built(self, image_id: str, tags: list[str]) -> None:
        self.n += 1
        self._w(f"#{self.n} exporting to image\n#{self.n} writing image {image_id} done\n")
        for t in tags:
            self._w(f"#{self.n} naming to {t} done\n")
        self._w(f"#{self.n} DONE 0.0s\n")


class QuietProgress(BuildProgress):
    """``-q``: keep the current RUN's output in case it fails, print nothing."""

    def __init__(self) -> None:
        self.buf = b""

    def step(self, ref: StepRef) -> None:
        self.buf = b""

    def output(self, ref: StepRef, data: bytes) -> None:
        self.buf = (self.buf + data)[-65536:]


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _read_head(stream: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _looks_like_tar(head: bytes) -> bool:
    return any(head.startswith(m) for m in _TAR_MAGIC) or head[257:262] == b"ustar"


def _kv(items: list[str], flag: str, env_fallback: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag} value: {item!r}")
        if not eq:
            if not env_fallback:
                out[key] = ""
                continue
            if key not in os.environ:
                continue  # Docker: an unset --build-arg NAME is simply not passed
            value = os.environ[key]
        out[key] = value
    return out


def _secrets(items: list[str], tmp: list[str]) -> dict[str, str]:
    """``--secret id=x,src=path`` / ``id=x,env=VAR`` → id → a file holding the value."""
    out: dict[str, str] = {}
    for item in items:
        fields = dict(f.partition("=")[::2] for f in item.split(","))
        sid = fields.get("id")
        src = fields.get("src") or fields.get("source")
        env = fields.get("env")
        if not sid:
            raise InvalidArgument(f"invalid secret {item!r}: id is required")
        if src:
            out[sid] = os.path.abspath(src)
        else:
            value = os.environ.get(env or sid)
            if value is None:
                raise InvalidArgument(f"secret {sid}: no src and no environment variable "
                                      f"{env or sid}")
            d = tempfile.mkdtemp(prefix="berth-secret-")
            tmp.append(d)
            path = os.path.join(d, "value")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(value)
            out[sid] = path
    return out


def build(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth build", "Build an image from a Dockerfile")
    p.add_argument("context", metavar="PATH | URL | -")
    p.add_argument("-t", "--tag", action="append", default=[],
                   help="Name and optionally a tag in the 'name:tag' format")
    p.add_argument("-f", "--file", default=None, help="Name of the Dockerfile")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--target", default=None, help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer image")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress the build output and print image ID on success")
    p.add_argument("--iidfile", default=None, help="Write the image ID to the file")
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty", "quiet"],
                   help="Type of progress output")
    p.add_argument("--secret", action="append", default=[],
                   help="Secret to expose to the build (id=mysecret,src=/local/secret)")
    p.add_argument("--network", default="default",
                   help="Networking mode for the RUN instructions (default: bridge, as run; "
                        "bridge|host|none|NETWORK)")
    p.add_argument("--platform", default=None, help="Set platform (only the host's)")
    p.add_argument("--rm", default="true", nargs="?", const="true", help=None)
    p.add_argument("--force-rm", action="store_true", help=None)
    a = p.parse(argv)
    for t in a.tag:
        from berth.images.ingest import parse_tag

        parse_tag(t)  # refuse a bad tag (or one with a digest) before any work
    if a.platform:
        from berth.build.plan import default_platform

        if a.platform != default_platform():
            raise InvalidArgument(f"platform {a.platform} is not supported: only "
                                  f"{default_platform()} (the host) can be built")
    if "://" in a.context or a.context.startswith("git@"):
        raise InvalidArgument(f"remote build contexts are not supported: {a.context}")
    build_args = _kv(a.build_arg, "--build-arg", env_fallback=True)
    epoch_text = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    epoch = None
    if epoch_text:
        try:
            epoch = int(epoch_text)
        except ValueError:
            raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {epoch_text!r}") from None
    quiet = a.quiet or a.progress == "quiet"
    progress: BuildProgress
    if quiet:
        progress = QuietProgress()
    elif a.progress == "plain":
        progress = PlainProgress()
    else:
        progress = ClassicProgress()

    dockerfile = a.file or "Dockerfile"
    dockerfile_text = None
    context: Any
    if a.context == "-":
        stdin = sys.stdin.buffer
        head = _read_head(stdin, 512)
        if _looks_like_tar(head):
            context = _Prefixed(head, stdin)
        else:
            context = None
            dockerfile_text = (head + stdin.read()).decode("utf-8", "surrogateescape")
    else:
        if not os.path.isdir(a.context):
            raise BerthError(f'unable to prepare context: path "{a.context}" not found')
        context = a.context
        if a.file == "-":
            dockerfile_text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        elif a.file and os.path.exists(a.file):
            dockerfile = os.path.abspath(a.file)
    tmp: list[str] = []
    try:
        result = ctx.engine.build(
            context, dockerfile=dockerfile, dockerfile_text=dockerfile_text,
            progress=progress, tags=a.tag, build_args=build_args, target=a.target,
            no_cache=a.no_cache, pull=a.pull, labels=_kv(a.label, "--label"),
            secrets=_secrets(a.secret, tmp), network=a.network, source_date_epoch=epoch)
    except BerthError as e:
        if quiet and isinstance(progress, QuietProgress) and getattr(e, "output", None):
            sys.stderr.write(e.output.decode("utf-8", "replace"))  # type: ignore[attr-defined]
            sys.stderr.flush()
        raise
    finally:
        import shutil

        for d in tmp:
            shutil.rmtree(d, ignore_errors=True)
    if a.iidfile:
        with open(a.iidfile, "w", encoding="ascii") as f:
            f.write(result.image_id)
    if quiet:
        print(result.image_id)
    return 0


def builder(ctx: Ctx, argv: list[str]) -> int:
    """``berth builder prune|build``."""
    subs = {"prune": prune, "build": build}
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  berth builder COMMAND\n\nManage builds\n\nCommands:\n" +
              "\n".join(f"  {n}" for n in sorted(subs)))
        return 0
    if argv[0] not in subs:
        raise InvalidArgument(f"unknown command: berth builder {argv[0]}")
    return subs[argv[0]](ctx, argv[1:])


def prune(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import human_size

    p = Parser("berth builder prune", "Remove build cache")
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove all unused build cache, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values")
    a = p.parse(argv)
    parse_filters(a.filter, set(), p.prog)  # no filters are supported: refuse, don't ignore
    if not a.force:
        what = "all build cache" if a.all else "all dangling build cache"
        if not confirm(f"WARNING! This will remove {what}."):
            return 0
    res = ctx.engine.builder_prune(all=a.all)
    if res.removed:
        print("Deleted build cache objects:\n" + "\n".join(
            k.split(":", 1)[-1][:25] for k in res.removed) + "\n")
    print(f"Total:\t{human_size(res.reclaimed)}")
    return 0
