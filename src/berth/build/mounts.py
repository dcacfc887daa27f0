"""``RUN --mount=...`` values → typed mount specs.

Kept apart from the planner because the option table (defaults per type, aliases such as
``dst``/``destination``, bare booleans such as ``ro``) is long and self-contained.
"""

from __future__ import annotations

import csv
import posixpath
from dataclasses import dataclass, field

from berth.errors import DockerfileError

__all__ = ["MountSpec", "parse_mount"]

_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_BOOL_KEYS = {"ro": "readonly", "readonly": "readonly", "rw": "readwrite",
              "readwrite": "readwrite", "required": "required"}
_ALLOWED = {
    "bind": {"target", "source", "from", "readonly", "readwrite"},
    "cache": {"target", "source", "from", "readonly", "readwrite", "id", "sharing", "mode",
              "uid", "gid"},
    "tmpfs": {"target", "size"},
    "secret": {"target", "id", "env", "required", "mode", "uid", "gid"},
    "ssh": {"target", "id", "required", "mode", "uid", "gid"},
}


@dataclass(frozen=True)
class MountSpec:
    """One RUN mount. ``from_`` names a stage, image or context (``None``: the build
    context for bind, an empty dir for cache); the planner resolves it to a stage index
    in ``from_stage`` when it names one."""

    type: str
    target: str | None
    source: str | None = None
    from_: str | None = None
    from_stage: int | None = None
    readonly: bool = True
    id: str | None = None
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    required: bool = False
    env: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("", "true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise DockerfileError(f"invalid value for {key}: {value}")


def _int(key: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise DockerfileError(f"invalid value for {key}: {value}") from None


def _size(value: str) -> int:
    units = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
             "g": 1024**3, "gb": 1024**3}
    low = value.strip().lower()
    num = low.rstrip("kmgb")
    unit = low[len(num):]
    if not num or unit not in units:
        raise DockerfileError(f"invalid value for size: {value}")
    return int(float(num) * units[unit])


def parse_mount(value: str) -> MountSpec:
    """Parse one ``--mount`` value (CSV ``key=value`` fields; ``type`` defaults to bind)."""
    fields = next(csv.reader([value]), [])
    opts: dict[str, str] = {}
    for f in fields:
        key, eq, val = f.partition("=")
        key = key.strip().lower()
        if key in ("dst", "destination"):
            key = "target"
        elif key == "src":
            key = "source"
        if not eq and key not in _BOOL_KEYS:
            raise DockerfileError(f"invalid field '{f}' must be a key=value pair")
        opts[_BOOL_KEYS.get(key, key)] = val
    mtype = opts.pop("type", "bind").lower()
    if mtype not in _TYPES:
        raise DockerfileError(f"unsupported mount type {mtype!r}")
    for key in opts:
        if key not in _ALLOWED[mtype]:
            raise DockerfileError(f"unexpected key '{key}' for mount type={mtype}")
    target = opts.get("target") or None
    ro_default = mtype in ("bind", "secret", "ssh")
    readonly = ro_default
    if "readonly" in opts:
        readonly = _bool("readonly", opts["readonly"])
    if "readwrite" in opts:
        readonly = not _bool("readwrite", opts["readwrite"])
    mid = opts.get("id") or None
    if mtype == "secret":
        if mid is None and target:
            mid = posixpath.basename(target)
        if mid is None:
            raise DockerfileError("secret mount requires an id or a target")
        if target is None and not opts.get("env"):
            target = "/run/secrets/" + mid
    elif mtype == "ssh":
        mid = mid or "default"
    elif mtype == "cache":
        mid = mid or target
    if target is None and mtype in ("bind", "cache", "tmpfs"):
        raise DockerfileError(f"mount type={mtype} requires a target")
    sharing = opts.get("sharing", "shared").lower()
    if sharing not in ("shared", "private", "locked"):
        raise DockerfileError(f"unsupported sharing value {sharing!r}")
    return MountSpec(
        type=mtype, target=target, source=opts.get("source") or None,
        from_=opts.get("from") or None, readonly=readonly, id=mid, sharing=sharing,
        mode=_int("mode", opts["mode"], 8) if "mode" in opts else None,
        uid=_int("uid", opts["uid"]) if "uid" in opts else None,
        gid=_int("gid", opts["gid"]) if "gid" in opts else None,
        size=_size(opts["size"]) if "size" in opts else None,
        required=_bool("required", opts["required"]) if "required" in opts else False,
        env=opts.get("env") or None, options=dict(opts))
