"""Docker's mount flags as data: ``-v``, ``--mount``, ``--volumes-from`` and image VOLUMEs.

Pure functions only (no store, no host lookups besides ``os.path`` string work), so every
rule here is unit-tested without root. What they produce is stored in the container's
config and read again at prepare, inspect and removal, so the shapes are kept small and
JSON-friendly:

* a *bind* is the dict :func:`berth.container.create_options.parse_volume` always made
  (``Type Source Destination Mode RW Propagation``) and lives in ``HostConfig.Mounts``;
* a *volume* or *tmpfs* mount lives in ``HostConfig.VolumeMounts`` (a berth key, hidden
  from inspect's HostConfig and shown as Docker's top-level ``Mounts`` instead).

Anonymous volumes get their random 64-hex name here, at parse time, so the name is part of
the stored config from the first moment and ``rm -v`` never has to guess it.

Precedence follows Docker: a mount the user asked for (``-v``/``--mount``/``--tmpfs``) wins
over one inherited by ``--volumes-from``, which wins over the image's ``VOLUME``.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_CONSISTENCY = {"consistent", "cached", "delegated", "default"}
_MOUNT_KEYS = {"type", "source", "src", "target", "dst", "destination", "readonly", "ro",
               "consistency", "bind-propagation", "bind-nonrecursive", "bind-recursive",
               "volume-nocopy", "volume-label", "volume-driver", "volume-opt",
               "volume-subpath", "tmpfs-size", "tmpfs-mode"}
_BARE_KEYS = {"readonly", "ro", "volume-nocopy", "bind-nonrecursive"}


@dataclass
class Planned:
    """Every user-visible mount of a container-to-be, in the shapes stored in its config."""

    binds: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def destinations(self) -> set[str]:
        return {m["Destination"] for m in [*self.binds, *self.volumes]}


def new_anonymous_name() -> str:
    """A random 64-hex name, what Docker gives a volume nobody named."""
    return os.urandom(32).hex()


NAME_MAX = 255  # the name is a directory under <root>/volumes: the filesystem's limit


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and len(name.encode()) <= NAME_MAX


def name_error(name: str) -> str:
    if NAME_RE.match(name):
        return (f"create {name[:40]}...: volume name is too long ({len(name.encode())} "
                f"bytes, at most {NAME_MAX})")
    return (f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")


def _clean_destination(dst: str, kind: str, spec_err: str) -> str:
    if not dst.startswith("/"):
        raise InvalidArgument(f"{spec_err}invalid mount config for type \"{kind}\": invalid "
                              f"mount path: '{dst}' mount path must be absolute")
    clean = posixpath.normpath(dst)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean == "/":
        raise InvalidArgument(f"{spec_err}invalid mount config for type \"{kind}\": invalid "
                              "specification: destination can't be '/'")
    return clean


def volume_entry(name: str, destination: str, *, rw: bool = True, mode: str = "",
                 anonymous: bool = False, nocopy: bool = False, origin: str = "user",
                 driver: str = "local", driver_opts: dict[str, str] | None = None,
                 labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The stored form of one volume mount (see the module docstring)."""
    return {"Type": "volume", "Name": name, "Destination": destination, "Mode": mode,
            "RW": rw, "Anonymous": anonymous, "NoCopy": nocopy, "Origin": origin,
            "Driver": driver, "DriverOpts": dict(driver_opts or {}),
            "Labels": dict(labels or {})}


# -- -v / --volume ------------------------------------------------------------------------
def _is_mode(text: str) -> bool:
    return all(o in {"ro", "rw", "z", "Z", "nocopy", *_PROPAGATION, *_CONSISTENCY}
               for o in text.split(","))


def parse_volume_flag(spec: str, cwd: str | None = None) -> dict[str, Any]:
    """One ``-v`` value: a bind (``/host:/ctr``), a named or an anonymous volume.

    Docker's Linux rules: ``A`` is an anonymous volume at ``A``; ``A:B`` is ``SRC:DST``
    unless ``B`` is a mode (then ``DST:MODE``); ``A:B:C`` is ``SRC:DST:MODE``. A source
    starting with ``/`` (or ``.`` — the CLI makes it absolute, Docker >= 23) is a host
    path; anything else names a volume.
    """
    if not spec:
        raise InvalidArgument("invalid empty volume spec")
    parts = spec.split(":")
    src, mode = "", ""
    if len(parts) == 1:
        dst = parts[0]
    elif len(parts) == 2:
        if _is_mode(parts[1]) and parts[1]:
            dst, mode = parts
        else:
            src, dst = parts
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if len(parts) > 1 and "" in parts:
        raise InvalidArgument(f"invalid spec: {spec}: empty section between colons")
    if src.startswith("."):
        src = os.path.abspath(os.path.join(cwd or os.getcwd(), src))
    kind = "bind" if src.startswith("/") else "volume"
    opts = [o for o in mode.split(",") if o] if mode else []
    _check_mode(mode, opts, kind)
    dst = _clean_destination(dst, kind, f"invalid volume specification: '{spec}': ")
    rw = "ro" not in opts
    if kind == "bind":
        prop = next((o for o in opts if o in _PROPAGATION), "rprivate")
        return {"Type": "bind", "Source": os.path.normpath(src), "Destination": dst,
                "Mode": mode, "RW": rw, "Propagation": prop}
    if src and not valid_name(src):
        raise InvalidArgument(name_error(src))
    return volume_entry(src or new_anonymous_name(), dst, rw=rw, mode=mode or "z",
                        anonymous=not src, nocopy="nocopy" in opts)


def _check_mode(mode: str, opts: list[str], kind: str) -> None:
    if mode and not opts:
        raise InvalidArgument(f"invalid mode: {mode}")
    seen: dict[str, str] = {}
    for o in opts:
        if o in ("ro", "rw"):
            group = "rw"
        elif o in ("z", "Z"):
            group = "label"
        elif o in _PROPAGATION:
            group = "propagation"
        elif o in _CONSISTENCY:
            group = "consistency"
        elif o == "nocopy":
            group = "copy"
        else:
            raise InvalidArgument(f"invalid mode: {mode}")
        if group in seen or (kind == "bind" and group == "copy") or (
                kind == "volume" and group == "propagation"):
            raise InvalidArgument(f"invalid mode: {mode}")
        seen[group] = o


# -- --mount --------------------------------------------------------------------------------
def _parse_bool(key: str, value: str) -> bool:
    v = value.strip()
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}")


def _kv(item: str, spec: str) -> tuple[str, str]:
    k, eq, v = item.partition("=")
    if not eq:
        raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid "
                              f"value for '{k}': must be a key=value pair")
    return k, v


def parse_mount_flag(spec: str) -> dict[str, Any]:
    """One ``--mount`` value (CSV of ``key=value``), Docker's keys and aliases.

    Returns a bind (``Strict``: its source must exist, unlike ``-v``), a volume or a
    tmpfs entry. Errors name the flag the way Docker's CLI does.
    """
    flag_err = f"invalid argument \"{spec}\" for \"--mount\" flag: "
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as e:
        raise InvalidArgument(f"{flag_err}{e}") from None
    kind, src, dst = "volume", "", ""
    readonly, nocopy = False, False
    bind_opts: dict[str, str] = {}
    vol_opts: dict[str, Any] = {}
    tmpfs_opts: dict[str, str] = {}
    labels: dict[str, str] = {}
    driver_opts: dict[str, str] = {}
    for item in fields:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq and key not in _BARE_KEYS:
            raise InvalidArgument(f"{flag_err}invalid field '{item}' must be a key=value "
                                  "pair")
        if key not in _MOUNT_KEYS:
            raise InvalidArgument(f"{flag_err}unexpected key '{key}' in '{item}'")
        if key == "type":
            kind = value.lower()
        elif key in ("source", "src"):
            src = value
        elif key in ("target", "dst", "destination"):
            dst = value
        elif key in ("readonly", "ro"):
            readonly = _parse_bool(key, value) if eq else True
        elif key == "consistency":
            pass  # Docker for Mac only; accepted and ignored on Linux, as Docker does
        elif key.startswith("bind-"):
            bind_opts[key] = value if eq else "true"
        elif key.startswith("volume-"):
            vol_opts[key] = value if eq else "true"
            if key == "volume-nocopy":
                nocopy = _parse_bool(key, value) if eq else True
            elif key == "volume-label":
                k, v = _kv(value, spec) if "=" in value else (value, "")
                labels[k] = v
            elif key == "volume-opt":
                k, v = _kv(value, spec)
                driver_opts[k] = v
        elif key.startswith("tmpfs-"):
            tmpfs_opts[key] = value
    if not dst:
        raise InvalidArgument(f"{flag_err}target is required")
    for prefix, used in (("volume", vol_opts), ("bind", bind_opts), ("tmpfs", tmpfs_opts)):
        if used and kind != prefix:
            raise InvalidArgument(f"{flag_err}cannot mix '{prefix}-*' options with mount "
                                  f"type '{kind}'")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount config for type \"{kind}\": mount type unknown")
    dst = _clean_destination(dst, kind, "")
    if kind == "bind":
        return _mount_bind(src, dst, readonly, bind_opts)
    if kind == "tmpfs":
        return _mount_tmpfs(src, dst, readonly, tmpfs_opts)
    if vol_opts.get("volume-subpath"):
        raise InvalidArgument("invalid mount config for type \"volume\": volume-subpath is "
                              "not supported by berth")
    driver = vol_opts.get("volume-driver") or "local"
    if src and not valid_name(src):
        raise InvalidArgument(name_error(src))
    return volume_entry(src or new_anonymous_name(), dst, rw=not readonly,
                        anonymous=not src, nocopy=nocopy, driver=driver,
                        driver_opts=driver_opts, labels=labels)


def _mount_bind(src: str, dst: str, readonly: bool, opts: dict[str, str]) -> dict[str, Any]:
    if not src:
        raise InvalidArgument("invalid mount config for type \"bind\": field Source must not "
                              "be empty")
    if not src.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: "
                              f"'{src}' mount path must be absolute")
    prop = opts.get("bind-propagation") or "rprivate"
    if prop not in _PROPAGATION:
        raise InvalidArgument(f"invalid value for bind-propagation: {prop}")
    return {"Type": "bind", "Source": os.path.normpath(src), "Destination": dst, "Mode": "",
            "RW": not readonly, "Propagation": prop, "Strict": True}


def _mount_tmpfs(src: str, dst: str, readonly: bool, opts: dict[str, str]) -> dict[str, Any]:
    from ..units import parse_size

    if src:
        raise InvalidArgument("invalid mount config for type \"tmpfs\": field Source must not "
                              "be specified")
    options = []
    if opts.get("tmpfs-size"):
        try:
            size = parse_size(opts["tmpfs-size"])
        except (InvalidArgument, ValueError):
            raise InvalidArgument(f"invalid value for tmpfs-size: {opts['tmpfs-size']}"
                                  ) from None
        options.append(f"size={size}")
    if opts.get("tmpfs-mode"):
        try:
            mode = int(opts["tmpfs-mode"], 8)
        except ValueError:
            raise InvalidArgument(f"invalid value for tmpfs-mode: {opts['tmpfs-mode']}"
                                  ) from None
        options.append(f"mode={mode:o}")
    if readonly:
        options.append("ro")
    return {"Type": "tmpfs", "Destination": dst, "RW": not readonly, "Options": options,
            "Origin": "user"}


# -- --volumes-from and image VOLUMEs -------------------------------------------------------
def parse_volumes_from(spec: str) -> tuple[str, str | None]:
    """``CONTAINER[:ro|rw]`` -> (container, mode or None for "as the source has it")."""
    name, sep, mode = spec.partition(":")
    if not name:
        raise InvalidArgument(f"invalid volumes-from specification: '{spec}'")
    if sep and mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid mode: {mode}")
    return name, (mode if sep else None)


def image_volumes(volumes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The image config's ``Volumes`` map as anonymous volumes (Mode ``""`` like Docker's)."""
    out = []
    for dst in sorted(volumes or {}):
        if not dst.startswith("/"):
            continue  # Docker ignores what it cannot mount; a bad image must not stop run
        clean = posixpath.normpath(dst)
        if clean == "/":
            continue
        out.append(volume_entry(new_anonymous_name(), clean, anonymous=True, origin="image"))
    return out


def plan(volume_flags: list[str], mount_flags: list[str],
         image_vols: dict[str, Any] | None,
         tmpfs_destinations: list[str] | tuple[str, ...] = (),
         cwd: str | None = None) -> Planned:
    """All of a container's ``-v``/``--mount`` plus the image's VOLUMEs, Docker's precedence.

    Two user mounts at one destination are an error (``Duplicate mount point``); an image
    VOLUME under a user mount's (or ``--tmpfs``'s) destination is dropped.
    """
    out = Planned()
    seen: set[str] = set()
    parsed = [parse_volume_flag(v, cwd) for v in volume_flags] + \
        [parse_mount_flag(m) for m in mount_flags]
    tmpfs = {posixpath.normpath(t) for t in tmpfs_destinations}
    for m in parsed:
        if m["Destination"] in seen or m["Destination"] in tmpfs:
            raise InvalidArgument(f"Duplicate mount point: {m['Destination']}")
        seen.add(m["Destination"])
        (out.binds if m["Type"] == "bind" else out.volumes).append(m)
    for m in image_volumes(image_vols):
        if m["Destination"] not in seen and m["Destination"] not in tmpfs:
            out.volumes.append(m)
    return out


def inherit(binds: list[dict[str, Any]], volumes: list[dict[str, Any]],
            source_host: dict[str, Any], mode: str | None) -> None:
    """Add a ``--volumes-from`` source container's binds and volumes (in place).

    The source's HostConfig is read, not re-parsed: what it mounted is what we mount. The
    user's own mounts keep their destinations; image VOLUMEs at the same destination give
    way to the inherited mount (Docker's precedence). tmpfs mounts are not inherited.
    """
    user = {m["Destination"] for m in binds} | {
        m["Destination"] for m in volumes if m.get("Origin") != "image"}
    for m in source_host.get("Mounts") or []:
        if m["Destination"] in user:
            continue
        b = {k: v for k, v in m.items() if k != "Strict"}
        if mode is not None:
            b["RW"] = mode == "rw"
        binds.append(b)
        user.add(m["Destination"])
    for m in source_host.get("VolumeMounts") or []:
        if m["Type"] != "volume" or m["Destination"] in user:
            continue
        v = dict(m, Origin="volumes-from", NoCopy=True)
        if mode is not None:
            v["RW"] = mode == "rw"
        volumes[:] = [x for x in volumes if x["Destination"] != m["Destination"]]
        volumes.append(v)
        user.add(m["Destination"])


# -- inspect ----------------------------------------------------------------------------------
def data_dir(root: str, name: str) -> str:
    """Where a volume's bytes live: ``<root>/volumes/<name>/_data`` (Docker's Mountpoint)."""
    return os.path.join(root, "volumes", name, "_data")


def inspect_mounts(volume_mounts: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """Docker's top-level inspect ``Mounts`` entries for volume and tmpfs mounts."""
    out = []
    for m in volume_mounts:
        if m["Type"] == "tmpfs":
            out.append({"Type": "tmpfs", "Source": "", "Destination": m["Destination"],
                        "Mode": "", "RW": m["RW"], "Propagation": ""})
            continue
        out.append({"Type": "volume", "Name": m["Name"], "Source": data_dir(root, m["Name"]),
                    "Destination": m["Destination"], "Driver": m.get("Driver", "local"),
                    "Mode": m.get("Mode", ""), "RW": m["RW"], "Propagation": ""})
    return out


def depth(destination: str) -> int:
    """Path components of a mount destination: parents must be mounted before children."""
    return len([p for p in destination.split("/") if p])
