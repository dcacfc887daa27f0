""".dockerignore: which context paths a build must not see.

Rules (Docker's, from moby/patternmatcher): one pattern per line; lines starting with ``#``
are comments; surrounding whitespace is dropped; patterns are cleaned like Go's
``path.Clean`` and a leading ``/`` is removed, so ``/foo/``, ``./foo`` and ``foo`` are the
same rule. ``*`` and ``?`` never cross ``/``; ``**`` matches any number of directories
(including none); ``[...]`` is a character class; ``\\`` escapes. A pattern also excludes
everything beneath a directory it matches. ``!pattern`` re-includes, and the *last*
matching rule wins.

:meth:`IgnoreMatcher.can_skip_dir` exists so a walker can prune whole directories — but
only when no ``!`` rule could re-include something underneath, or files would vanish.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

__all__ = ["IgnoreMatcher", "read_dockerignore", "parse_dockerignore", "clean_path"]


def clean_path(path: str) -> str:
    """Go's ``path.Clean`` (posixpath.normpath keeps a leading ``//``; Go does not)."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def parse_dockerignore(text: str) -> list[str]:
    """The patterns in a .dockerignore file's text, normalised, ``!`` kept as a prefix."""
    out = []
    for number, raw in enumerate(text.splitlines()):
        if number == 0:
            raw = raw.lstrip("\ufeff")
        if raw.startswith("#"):
            continue
        pattern = raw.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _to_regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(?:.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append(re.escape("\\"))
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("^", "!") else i + 1)
            if end == -1:
                raise ValueError(f"syntax error in pattern: {pattern}")
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\]", "]").replace("[", "\\[") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True)
class _Rule:
    pattern: str
    exclusion: bool
    regex: re.Pattern[str]
    parts: tuple[str, ...]


class IgnoreMatcher:
    """Compiled .dockerignore rules; paths are context-relative with ``/`` separators."""

    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[_Rule] = []
        for p in patterns:
            exclusion = p.startswith("!")
            body = p[1:] if exclusion else p
            if not body:
                raise ValueError("illegal exclusion pattern: \"!\"")
            self.rules.append(_Rule(body, exclusion, _to_regex(body), tuple(body.split("/"))))
        self.has_exclusions = any(r.exclusion for r in self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def matches(self, relpath: str) -> bool:
        """True when ``relpath`` is ignored (excluded from the context)."""
        path = clean_path(relpath.replace(os.sep, "/")).lstrip("/")
        if path in ("", "."):
            return False
        parents = path.split("/")[:-1]
        matched = False
        for rule in self.rules:
            if rule.exclusion != matched:
                continue
            hit = bool(rule.regex.match(path))
            if not hit:
                for i in range(len(parents)):
                    if rule.regex.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not rule.exclusion
        return matched

    def can_skip_dir(self, relpath: str) -> bool:
        """True when the directory and everything below it is ignored, so a walker may
        prune it: it is ignored and no ``!`` rule could match it or anything beneath."""
        if not self.matches(relpath):
            return False
        if not self.has_exclusions:
            return True
        dparts = clean_path(relpath.replace(os.sep, "/")).strip("/").split("/")
        return not any(r.exclusion and _could_reach(r.parts, dparts) for r in self.rules)


def _could_reach(pparts: tuple[str, ...], dparts: list[str]) -> bool:
    """Could a pattern match the directory, an ancestor of it, or a path beneath it?"""
    for i, dpart in enumerate(dparts):
        if i >= len(pparts):
            return True  # the pattern matched an ancestor: it re-includes the whole subtree
        ppart = pparts[i]
        if "**" in ppart:
            return True
        if not _to_regex(ppart).match(dpart):
            return False
    return True


def read_dockerignore(context_dir: str | os.PathLike[str],
                      dockerfile_name: str = "Dockerfile") -> IgnoreMatcher:
    """Load the ignore rules for a build.

    BuildKit first looks for ``<Dockerfile>.dockerignore`` next to the Dockerfile (so one
    context can serve several Dockerfiles), then for ``.dockerignore`` at the context root.
    The Dockerfile and the ignore file are always *read* directly by the builder even when a
    rule ignores them; the rules only decide what COPY/ADD can see.
    """
    context = os.fspath(context_dir)
    for candidate in (dockerfile_name + ".dockerignore", ".dockerignore"):
        text = read_context_file(context, candidate)
        if text is not None:
            return IgnoreMatcher(parse_dockerignore(text))
    return IgnoreMatcher([])


def read_context_file(context: str, name: str) -> str | None:
    """Text of the file ``name`` of the context (None if missing or not a regular file).

    A relative name is opened *inside* the context (``openat2(RESOLVE_IN_ROOT)``), so a
    Dockerfile or .dockerignore that is a link to ``/etc/shadow`` in a tar someone sent us
    is not found rather than read (and echoed in parse errors). An absolute name is the
    invoking user's own ``-f /path``.
    """
    import stat

    from berth.container.rootpath import open_in_root

    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if os.path.isabs(name):
            fd = os.open(name, flags)
        else:
            root = os.open(context, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = open_in_root(root, name, flags)
            finally:
                os.close(root)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read().decode("utf-8", "surrogateescape")
