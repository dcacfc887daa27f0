"""berth.toml: the few settings a store keeps beside its flags, read with ``tomllib``.

Two files, the second overriding the first key by key: ``/etc/berth/berth.toml`` (for the
host; ``BERTH_CONFIG`` names another path, or ``""`` for none) and ``<root>/berth.toml``
(for one private root). A missing file is an empty one. Unknown sections are kept as
plain dicts so a newer file never breaks an older berth; a *known* key with a bad value
is an :class:`~berth.errors.InvalidArgument` naming the file, section and key.

Each section is a small frozen dataclass built by a parser registered in
:data:`SECTIONS`; another part of berth adds its own section with
:func:`register_section` (``[push]``, say) and reads it with ``config.section("push")``.

    [storage]
    max_size = "20GB"        # or "80%" of the root's filesystem; absent: no budget
    min_free = "2GB"         # keep this much of the filesystem free
    [gc]
    keep_duration = "7d"     # nothing used more recently than this is collected
    images = "dangling"      # or "unused": tagged images no container uses go too
    containers_after = "off" # or "7d": stopped containers exited that long ago go
    build_cache = true
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidArgument

SYSTEM_PATH = "/etc/berth/berth.toml"
FILE_NAME = "berth.toml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` (a bare number is seconds)."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30m, 12h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class Size:
    """A size as written: bytes, or a percentage of the root's filesystem."""

    text: str
    bytes: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, value: Any) -> Size:
        from berth.units import parse_size

        if isinstance(value, int) and not isinstance(value, bool):
            return cls(str(value), bytes=value)
        if not isinstance(value, str):
            raise ValueError(f"expected a size like \"20GB\" or \"80%\", not {value!r}")
        v = value.strip()
        if v.endswith("%"):
            pct = float(v[:-1])
            if not 0 < pct <= 100:
                raise ValueError(f"percentage out of range: {value!r}")
            return cls(value, percent=pct)
        try:
            return cls(value, bytes=parse_size(v))
        except InvalidArgument:
            raise ValueError(f"invalid size {value!r}") from None

    def resolve(self, path: str) -> int:
        """Bytes, a percentage taken of the filesystem holding ``path``."""
        if self.bytes is not None:
            return self.bytes
        st = os.statvfs(path)
        return int(st.f_blocks * st.f_frsize * (self.percent or 0) / 100)


@dataclass(frozen=True)
class StorageSection:
    max_size: Size | None = None
    min_free: Size | None = None


@dataclass(frozen=True)
class GcSection:
    keep_duration: float = 0.0
    images: str = "dangling"
    containers_after: float | None = None  # None: "off"
    build_cache: bool = True


def _storage(d: dict[str, Any]) -> StorageSection:
    return StorageSection(
        max_size=Size.parse(d["max_size"]) if "max_size" in d else None,
        min_free=Size.parse(d["min_free"]) if "min_free" in d else None)


def _gc(d: dict[str, Any]) -> GcSection:
    images = d.get("images", "dangling")
    if images not in ("dangling", "unused"):
        raise ValueError(f"images must be \"dangling\" or \"unused\", not {images!r}")
    after = d.get("containers_after", "off")
    build_cache = d.get("build_cache", True)
    if not isinstance(build_cache, bool):
        raise ValueError("build_cache must be true or false")
    return GcSection(
        keep_duration=parse_duration(str(d.get("keep_duration", "0"))),
        images=images,
        containers_after=None if after in ("off", False) else parse_duration(str(after)),
        build_cache=build_cache)


SECTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {"storage": _storage, "gc": _gc}


def register_section(name: str, parser: Callable[[dict[str, Any]], Any]) -> None:
    """Teach the loader a section: ``parser`` turns its table into a typed value and
    raises ValueError (the loader names the file and section) for a bad one."""
    SECTIONS[name] = parser


@dataclass(frozen=True)
class Config:
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    parsed: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def storage(self) -> StorageSection:
        return self.section("storage")  # type: ignore[no-any-return]

    @property
    def gc(self) -> GcSection:
        return self.section("gc")  # type: ignore[no-any-return]

    def section(self, name: str) -> Any:
        """The typed section (defaults when absent); a raw dict for an unknown one.

        A section whose parser was registered after this file was read (its module was
        imported later) is parsed now, with the same error as at load time."""
        if name in self.parsed:
            return self.parsed[name]
        parser = SECTIONS.get(name)
        if parser is None:
            return self.raw.get(name, {})
        value = _parse(parser, name, self.raw.get(name, {}), self.files)
        self.parsed[name] = value
        return value


def paths(root: str) -> list[str]:
    system = os.environ.get("BERTH_CONFIG", SYSTEM_PATH)
    return [p for p in (system, os.path.join(root, FILE_NAME)) if p]


def load(root: str) -> Config:
    """Both files merged (root's keys win); cheap when neither exists (two stats)."""
    import tomllib

    raw: dict[str, dict[str, Any]] = {}
    used = []
    for path in paths(root):
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            continue
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InvalidArgument(f"invalid {path}: {e}") from None
        used.append(path)
        for name, table in doc.items():
            if not isinstance(table, dict):
                raise InvalidArgument(f"invalid {path}: {name} must be a [section]")
            raw.setdefault(name, {}).update(table)
    parsed = {name: _parse(parser, name, table, used) for name, table in raw.items()
              if (parser := SECTIONS.get(name)) is not None}
    return Config(raw, parsed, tuple(used))


def _parse(parser: Callable[[dict[str, Any]], Any], name: str, table: dict[str, Any],
           files: Sequence[str]) -> Any:
    try:
        return parser(table)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(f"invalid {' or '.join(files)}: [{name}] {e}") from None


_cache: dict[str, tuple[tuple[tuple[str, int, int], ...], Config]] = {}


def current(root: str) -> Config:
    """:func:`load`, re-read only when a file changed: a long-lived engine (the API
    service) sees edits, and a command pays two ``stat`` calls."""
    stamp = []
    for path in paths(root):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        stamp.append((path, st.st_mtime_ns, st.st_size))
    key = tuple(stamp)
    hit = _cache.get(root)
    if hit is not None and hit[0] == key:
        return hit[1]
    cfg = load(root)
    _cache[root] = (key, cfg)
    return cfg
