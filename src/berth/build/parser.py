"""Dockerfile text → typed, validated instructions.

Tokenising is delegated to the ``dockerfile`` package (BuildKit's own Go parser), so line
continuations, comments inside continuations, JSON (exec) form, ``# escape=`` and
here-documents behave exactly as in Docker. That parser only splits text, though: it does
not know which instructions exist, which flags they take, or how many arguments they need,
and its errors carry no line number. This module adds those rules, points every error at a
``file:line``, and fills the two gaps in its here-doc support: ``<<-`` tab stripping and
whether the delimiter was quoted (quoted → no expansion), both read from the instruction's
first line.

Nothing here expands variables; :mod:`berth.build.plan` does that with the right scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dockerfile as _gofile

from berth.errors import DockerfileError

__all__ = ["Dockerfile", "Heredoc", "Instruction", "parse_dockerfile", "parse_duration_ns",
           "check_ports", "INSTRUCTIONS", "FLAGS"]

INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
})

# Per-instruction flags and their kinds: "str" (once), "list" (repeatable), "bool".
FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str", "device": "list"},
    "COPY": {"from": "str", "chown": "str", "chmod": "str", "link": "bool",
             "parents": "bool", "exclude": "list"},
    "ADD": {"chown": "str", "chmod": "str", "link": "bool", "keep-git-dir": "bool",
            "checksum": "str", "unpack": "bool", "exclude": "list"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str",
                    "start-interval": "str", "retries": "str"},
}

_DIRECTIVE_RX = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_STAGE_NAME_RX = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_HEREDOC_RX = re.compile(r"(\d*)<<(-?)\s*((?:\"[^\"]*\"|'[^']*'|[^\s<>|&;()\"'])+)")
_PORT_RX = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")
_DURATION_RX = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6,
                   "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


@dataclass(frozen=True)
class Heredoc:
    """One here-document: ``content`` already has ``<<-`` leading tabs stripped.

    ``expand`` is False when the delimiter was quoted (``<<"EOF"``): the builder must then
    copy the body verbatim. ``fd`` is the redirected descriptor (``3<<EOF`` → 3).
    """

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0


@dataclass(frozen=True)
class Instruction:
    """One instruction as written, validated but not expanded.

    ``args`` are the parser's words: for JSON (exec) form the array elements; for RUN, CMD,
    ENTRYPOINT, SHELL, WORKDIR, USER ... in shell form the single raw string; for ENV and
    LABEL alternating keys and raw values (quotes still in); for HEALTHCHECK ``CMD`` or
    ``NONE`` first. ``flags`` maps ``--name`` (without dashes) to its values in order; bool
    flags given bare read ``"true"``. ONBUILD keeps its trigger parsed in ``trigger``.
    """

    name: str
    args: tuple[str, ...]
    json: bool
    flags: dict[str, list[str]]
    line: int
    end_line: int
    original: str
    heredocs: list[Heredoc] = field(default_factory=list)
    trigger: Instruction | None = None

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The last value of a single-valued flag (what BuildKit uses when repeated)."""
        values = self.flags.get(name)
        return values[-1] if values else default


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions plus the parser directives that shaped them."""

    instructions: list[Instruction]
    filename: str = "Dockerfile"
    escape: str = "\\"
    syntax: str | None = None
    check: str | None = None
    directives: dict[str, str] = field(default_factory=dict)


def _fail(filename: str, line: int | None, msg: str) -> DockerfileError:
    return DockerfileError(f"{filename}:{line}: {msg}" if line else msg)


def _read_directives(lines: list[str], filename: str) -> tuple[dict[str, str], dict[str, int]]:
    """Parser directives: only at the very top, each once, until any other line."""
    found: dict[str, str] = {}
    where: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        m = _DIRECTIVE_RX.match(line)
        if not m or m.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        key = m.group(1).lower()
        if key in found:
            raise _fail(filename, number, f"only one {key} parser directive can be used")
        found[key], where[key] = m.group(2), number
    if "escape" in found and found["escape"] not in ("\\", "`"):
        raise _fail(filename, where["escape"],
                    f"invalid escape token '{found['escape']}' does not match ` or \\")
    return found, where


def _locate_error(lines: list[str], escape: str) -> int | None:
    """Find the line of the instruction the Go parser rejected (it reports none).

    The longest prefix of the file that still parses ends just before the culprit; the
    culprit starts at the next line that is neither blank nor a comment (or at the last
    parsed instruction when that one was cut mid-continuation).
    """
    for k in range(len(lines) - 1, -1, -1):
        try:
            cmds = _gofile.parse_string("\n".join(lines[:k]) + "\n") if k else []
        except _gofile.GoParseError:
            continue
        last_end = 0
        if cmds:
            last = cmds[-1]
            last_end = last.end_line
            if lines[last_end - 1].rstrip().endswith(escape) and last_end == k:
                return last.start_line
        for n in range(last_end + 1, len(lines) + 1):
            text = lines[n - 1].strip()
            if text and not text.startswith("#"):
                return n
        return None
    return None


def parse_duration_ns(value: str) -> int:
    """Parse a Go ``time.Duration`` string (``1m30s``, ``500ms``, ``0``) to nanoseconds."""
    if value == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_RX.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise ValueError(f"time: invalid duration {value!r}")
    return int(total)


def _parse_flags(name: str, raw: tuple[str, ...]) -> dict[str, list[str]]:
    allowed = FLAGS.get(name, {})
    out: dict[str, list[str]] = {}
    for item in raw:
        body = item[2:] if item.startswith("--") else item
        key, eq, value = body.partition("=")
        kind = allowed.get(key)
        if not key or kind is None:
            raise DockerfileError(f"unknown flag: {key or item}")
        if kind == "bool":
            value = value if eq else "true"
            if value.lower() not in ("true", "false"):
                raise DockerfileError(f"expecting boolean value for flag {key}, not: {value}")
            value = value.lower()
        elif not eq:
            raise DockerfileError(f"missing a value on flag: {key}")
        if kind != "list" and key in out:
            raise DockerfileError(f"duplicate flag specified: {key}")
        out.setdefault(key, []).append(value)
    return out


def _heredocs(cmd: object, original: str) -> list[Heredoc]:
    docs = getattr(cmd, "heredocs", ()) or ()
    if not docs:
        return []
    markers = []
    for m in _HEREDOC_RX.finditer(original.split("\n", 1)[0]):
        token = m.group(3)
        markers.append((token.replace('"', "").replace("'", ""), m.group(2) == "-",
                        '"' not in token and "'" not in token))
    out = []
    for i, doc in enumerate(docs):
        chomp, expand = False, True
        match = [mk for mk in markers if mk[0] == doc.name]
        if i < len(markers) and markers[i][0] == doc.name:
            _, chomp, expand = markers[i]
        elif match:
            _, chomp, expand = match[0]
        content = doc.content
        if chomp:
            content = "".join(ln.lstrip("\t") for ln in content.splitlines(keepends=True))
        out.append(Heredoc(doc.name, content, expand, chomp, doc.file_descriptor))
    return out


def check_ports(words: tuple[str, ...]) -> None:
    """EXPOSE words must be `port[-port][/proto]`; words with `$` wait for expansion."""
    for word in words:
        if "$" in word:
            continue  # validated after expansion
        m = _PORT_RX.match(word)
        if not m:
            raise DockerfileError(f"invalid containerPort: {word.split('/')[0]}")
        if m.group(3) and m.group(3).lower() not in ("tcp", "udp", "sctp"):
            raise DockerfileError(f"invalid proto: {m.group(3)}")


def _validate_healthcheck(ins: Instruction) -> None:
    if not ins.args:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    kind = ins.args[0].upper()
    if kind == "NONE":
        if len(ins.args) > 1:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        if ins.flags:
            raise DockerfileError("options are not allowed with HEALTHCHECK NONE")
        return
    if kind != "CMD":
        raise DockerfileError(f'Unknown type "{ins.args[0]}" in HEALTHCHECK (try CMD)')
    if len(ins.args) < 2 or (not ins.json and not ins.args[1].strip()):
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    for key in ("interval", "timeout", "start-period", "start-interval"):
        value = ins.flag(key)
        if value is None:
            continue
        try:
            ns = parse_duration_ns(value)
        except ValueError as exc:
            raise DockerfileError(str(exc)) from None
        if ns < 0 or 0 < ns < 10**6:
            raise DockerfileError(f"{key.capitalize()} {value!r} cannot be less than 1ms")
    retries = ins.flag("retries")
    if retries is not None:
        try:
            n = int(retries)
        except ValueError:
            raise DockerfileError(f"invalid --retries value: {retries}") from None
        if n < 0:
            raise DockerfileError(f"--retries cannot be negative ({n})")


def _validate(ins: Instruction) -> None:
    """Argument-shape rules per instruction (messages follow BuildKit's)."""
    n, args = ins.name, ins.args
    if n == "FROM":
        if len(args) not in (1, 3):
            raise DockerfileError("FROM requires either one or three arguments")
        if len(args) == 3:
            if args[1].lower() != "as":
                raise DockerfileError('When using three arguments, the second argument '
                                      'must be "AS"')
            if not _STAGE_NAME_RX.match(args[2].lower()):
                raise DockerfileError(f'invalid name for build stage: "{args[2]}", name '
                                      "can't start with a number or contain symbols")
    elif n in ("ENV", "LABEL"):
        if len(args) < 2:
            raise DockerfileError(f"{n} requires at least one argument")
        if any(not k for k in args[0::2]):
            raise DockerfileError(f"{n} names can not be blank")
    elif n == "ARG":
        if not args:
            raise DockerfileError("ARG requires at least one argument")
        for word in args:
            if not word.partition("=")[0]:
                raise DockerfileError(f"ARG names can not be blank: {word}")
    elif n in ("COPY", "ADD"):
        if len(args) < 2:
            raise DockerfileError(f"{n} requires at least two arguments, but only one was "
                                  "provided. Destination could not be determined.")
    elif n in ("RUN", "EXPOSE", "VOLUME"):
        if not args or (not ins.json and not "".join(args).strip()):
            raise DockerfileError(f"{n} requires at least one argument")
        if n == "EXPOSE":
            check_ports(args)
        if n == "VOLUME" and any(not a.strip() for a in args):
            raise DockerfileError("VOLUME specified can not be an empty string")
    elif n in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"):
        if len(args) != 1 or not args[0].strip():
            raise DockerfileError(f"{n} requires exactly one argument")
    elif n == "SHELL":
        if not ins.json:
            raise DockerfileError("SHELL requires the arguments to be in JSON form")
        if not args:
            raise DockerfileError("SHELL requires at least one argument")
    elif n == "HEALTHCHECK":
        _validate_healthcheck(ins)
    elif n == "ONBUILD":
        if ins.trigger is None:
            raise DockerfileError("ONBUILD requires at least one argument")


def _onbuild_trigger(original: str, filename: str, line: int) -> Instruction | None:
    """Re-parse the trigger text on its own: the Go parser drops the trigger's flags."""
    body = original.split(None, 1)[1] if len(original.split(None, 1)) > 1 else ""
    if not body.strip():
        return None
    word = body.split(None, 1)[0].upper()
    if word == "ONBUILD":
        raise _fail(filename, line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if word in ("FROM", "MAINTAINER"):
        raise _fail(filename, line, f"{word} isn't allowed as an ONBUILD trigger")
    try:
        cmds = _gofile.parse_string(body + "\n")
    except _gofile.GoParseError as exc:
        raise _fail(filename, line, str(exc)) from None
    sub = _build(cmds[0], filename)
    return Instruction(sub.name, sub.args, sub.json, sub.flags, line, line, body,
                       sub.heredocs)


def _build(cmd: object, filename: str) -> Instruction:
    c = cmd  # a dockerfile.Command
    line = c.start_line  # type: ignore[attr-defined]
    name = c.cmd.upper()  # type: ignore[attr-defined]
    if name not in INSTRUCTIONS:
        raise _fail(filename, line, f"unknown instruction: {c.cmd}")  # type: ignore[attr-defined]
    try:
        flags = _parse_flags(name, c.flags)  # type: ignore[attr-defined]
    except DockerfileError as exc:
        raise _fail(filename, line, exc.message) from None
    original = c.original  # type: ignore[attr-defined]
    trigger = _onbuild_trigger(original, filename, line) if name == "ONBUILD" else None
    ins = Instruction(
        name=name, args=tuple(c.value), json=bool(c.json), flags=flags,  # type: ignore
        line=line, end_line=c.end_line, original=original,  # type: ignore[attr-defined]
        heredocs=_heredocs(c, original), trigger=trigger)
    try:
        _validate(ins)
    except DockerfileError as exc:
        raise _fail(filename, line, exc.message) from None
    return ins


_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def _check_text(text: str, filename: str) -> None:
    """Refuse what the Go parser cannot take: it dies with SIGSEGV on text that is not
    UTF-8 (bytes kept as surrogates by ``surrogateescape``, or lone surrogates from a base
    image's ONBUILD JSON) and silently cuts a line at a NUL byte."""
    m = _UNSAFE.search(text)
    if m is None:
        return
    line = text.count("\n", 0, m.start()) + 1
    col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    ch = m.group()
    if ch == "\x00":
        what = "a NUL byte"
    elif "\udc80" <= ch <= "\udcff":
        what = f"invalid UTF-8 (byte 0x{ord(ch) - 0xdc00:02x})"
    else:
        what = f"invalid UTF-8 (lone surrogate U+{ord(ch):04X})"
    raise _fail(filename, line, f"{what} at column {col}: a Dockerfile must be UTF-8 text")


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and validate a Dockerfile; every error names ``filename:line``."""
    _check_text(text, filename)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    directives, _ = _read_directives(lines, filename)
    escape = directives.get("escape", "\\")
    if not text.strip():
        raise DockerfileError(f"the Dockerfile ({filename}) cannot be empty")
    try:
        cmds = _gofile.parse_string(text if text.endswith("\n") else text + "\n")
    except _gofile.GoParseError as exc:
        msg = str(exc)
        if "no instructions" in msg:
            raise DockerfileError(f"the Dockerfile ({filename}) cannot be empty") from None
        raise _fail(filename, _locate_error(lines, escape), msg) from None
    instructions = [_build(c, filename) for c in cmds]
    for ins in instructions:
        if ins.name == "FROM":
            break
        if ins.name != "ARG":
            raise _fail(filename, ins.line, "no build stage in current context")
    else:
        raise _fail(filename, instructions[-1].line if instructions else 1,
                    "no build stage in current context")
    return Dockerfile(instructions=instructions, filename=filename, escape=escape,
                      syntax=directives.get("syntax"), check=directives.get("check"),
                      directives=directives)
