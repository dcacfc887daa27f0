"""``--change`` lines (``import``/``commit``): Dockerfile instructions applied to a config.

Docker lets a handful of Dockerfile instructions edit an image's container config without a
build. We parse them the way the Dockerfile parser does — exec (JSON array) or shell form,
``K=V`` pairs with quotes or the legacy ``K V`` form — so a line means the same here as in a
Dockerfile. Anything that would need a build (RUN, COPY, FROM, ...) is refused.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from typing import Any

from berth.errors import InvalidArgument

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}
_PROTOCOLS = ("tcp", "udp", "sctp")


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument(msg)


def split_words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in each word for later."""
    words: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c == "\\" and i + 1 < len(text):
            cur.extend((c, text[i + 1]))
            i += 1
        elif c in "\"'":
            quote = c
            cur.append(c)
        elif c.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
        i += 1
    if quote:
        raise _bad(f"unexpected end of statement while looking for matching {quote}")
    if cur:
        words.append("".join(cur))
    return words


def unquote(word: str) -> str:
    """Remove shell quoting: single quotes literal, double quotes honour ``\\"`` ``\\\\``."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(word):
        c = word[i]
        if quote == "'":
            if c == "'":
                quote = None
            else:
                out.append(c)
        elif quote == '"':
            if c == '"':
                quote = None
            elif c == "\\" and i + 1 < len(word) and word[i + 1] in '"\\$`':
                out.append(word[i + 1])
                i += 1
            else:
                out.append(c)
        elif c in "\"'":
            quote = c
        elif c == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _name_values(instr: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``K=V K2="V 2"`` pairs, or the legacy single ``K V`` form."""
    words = split_words(rest)
    if not words:
        raise _bad(f"{instr} requires at least one argument")
    if "=" not in unquote(words[0]) or words[0].startswith("="):
        parts = rest.strip().split(None, 1)
        if len(parts) != 2:
            raise _bad(f"{instr} must have two arguments")
        return [(unquote(parts[0]), unquote(parts[1]))]
    pairs: list[tuple[str, str]] = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise _bad(f"{instr} names can not be blank or missing '=': {w}")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def _json_or_shell(rest: str) -> list[str]:
    """Exec form (a JSON array of strings) or shell form wrapped in ``/bin/sh -c``."""
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    env = list(cfg.get("Env") or [])
    entry = f"{key}={value}"
    for i, e in enumerate(env):
        if e.split("=", 1)[0] == key:
            env[i] = entry
            break
    else:
        env.append(entry)
    cfg["Env"] = env


def _expose(cfg: dict[str, Any], rest: str) -> None:
    ports = dict(cfg.get("ExposedPorts") or {})
    words = [unquote(w) for w in split_words(rest)]
    if not words:
        raise _bad("EXPOSE requires at least one argument")
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        start, _, end = port.partition("-")
        if proto not in _PROTOCOLS or not start.isdigit() or (end and not end.isdigit()):
            raise _bad(f"invalid containerPort: {w}")
        lo, hi = int(start), int(end or start)
        if not 0 < lo <= hi <= 65535:
            raise _bad(f"invalid containerPort: {w}")
        for p in range(lo, hi + 1):
            ports[f"{p}/{proto}"] = {}
    cfg["ExposedPorts"] = ports


def _volume(cfg: dict[str, Any], rest: str) -> None:
    text = rest.strip()
    paths: list[str] | None = None
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            paths = value
    if paths is None:
        paths = [unquote(w) for w in split_words(text)]
    if not paths or any(not p.strip() for p in paths):
        raise _bad("VOLUME specified can not be an empty string")
    vols = dict(cfg.get("Volumes") or {})
    for p in paths:
        vols[p] = {}
    cfg["Volumes"] = vols


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds, as Docker stores them."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise _bad(f"time: invalid duration {text!r}")
    return int(total)


def _healthcheck(rest: str) -> dict[str, Any]:
    words = split_words(rest)
    hc: dict[str, Any] = {}
    opts = {"--interval": "Interval", "--timeout": "Timeout", "--start-period": "StartPeriod",
            "--start-interval": "StartInterval"}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0).partition("=")
        value = unquote(value)
        if name in opts:
            hc[opts[name]] = parse_duration(value)
        elif name == "--retries" and value.isdigit():
            hc["Retries"] = int(value)
        else:
            raise _bad(f"unknown flag: {name}")
    if not words:
        raise _bad("HEALTHCHECK requires an argument")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1:
            raise _bad("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD" or len(words) < 2:
        raise _bad(f"Unknown type {words[0]!r} in HEALTHCHECK (try CMD)")
    cmd_text = rest.strip()
    cmd_text = cmd_text[cmd_text.upper().index("CMD") + 3:].strip()
    cmd = _json_or_shell(cmd_text)
    test = ["CMD-SHELL", cmd[2]] if cmd[:2] == ["/bin/sh", "-c"] and not cmd_text.startswith(
        "[") else ["CMD", *cmd]
    return {"Test": test, **hc}


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply ``--change`` lines to a *container* config (the image config's ``config``).

    Returns a new dict; ``config`` is left untouched so a failed line changes nothing.
    As in a Dockerfile, ENTRYPOINT clears an inherited CMD unless a CMD came earlier in the
    same set of changes.
    """
    cfg: dict[str, Any] = copy.deepcopy(config or {})
    cmd_set = False
    for line in changes:
        text = line.strip()
        if not text:
            continue
        parts = text.split(None, 1)
        instr, rest = parts[0].upper(), (parts[1] if len(parts) > 1 else "")
        if instr in ("CMD", "ENTRYPOINT") and not rest.strip():
            raise _bad(f"{instr} requires at least one argument")
        if instr == "CMD":
            cfg["Cmd"] = _json_or_shell(rest)
            cmd_set = True
        elif instr == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(rest)
            if not cmd_set:
                cfg["Cmd"] = None
        elif instr == "ENV":
            for k, v in _name_values(instr, rest):
                _set_env(cfg, k, v)
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            for k, v in _name_values(instr, rest):
                labels[k] = v
            cfg["Labels"] = labels
        elif instr == "WORKDIR":
            path = unquote(rest.strip())
            if not path:
                raise _bad("WORKDIR requires exactly one argument")
            if not path.startswith("/"):
                path = posixpath.normpath(posixpath.join("/", cfg.get("WorkingDir") or "", path))
            cfg["WorkingDir"] = path
        elif instr == "USER":
            user = unquote(rest.strip())
            if not user:
                raise _bad("USER requires exactly one argument")
            cfg["User"] = user
        elif instr == "EXPOSE":
            _expose(cfg, rest)
        elif instr == "VOLUME":
            _volume(cfg, rest)
        elif instr == "STOPSIGNAL":
            sig = unquote(rest.strip())
            if not sig or len(split_words(rest)) != 1:
                raise _bad("STOPSIGNAL requires exactly one argument")
            cfg["StopSignal"] = sig
        elif instr == "HEALTHCHECK":
            cfg["Healthcheck"] = _healthcheck(rest)
        elif instr == "ONBUILD":
            trigger = rest.strip()
            first = trigger.split(None, 1)[0].upper() if trigger else ""
            if first in ("", "ONBUILD", "FROM", "MAINTAINER"):
                raise _bad(f"{first or 'ONBUILD'} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger]
        else:
            raise _bad(f"{instr} is not a valid change command")
    return cfg
