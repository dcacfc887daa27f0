"""What ``docker create``/``run`` flags ask for, and how they combine with the image config.

The result of :func:`merge` is what a container row stores as its ``config``: Docker's
``Config`` keys at the top level (Cmd, Entrypoint, Env, WorkingDir, User, Labels, ...)
and ``HostConfig`` nested, so inspect, commit and restart all read one dict instead of
re-deriving the Entrypoint/Cmd rules from flags that are long gone.

Docker's rules, kept here in one place:
* ``--entrypoint`` replaces the image's Entrypoint *and* drops its Cmd (``""`` clears it);
* arguments after the image replace the image's Cmd;
* ``-e``/``--env-file`` override image variables by name; ``-e NAME`` alone copies the
  caller's value and is dropped when the caller has none;
* WorkingDir, User and StopSignal fall back to the image's, labels merge (flags win).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument
from . import restart


@dataclass
class CreateOptions:
    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    labels: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)         # --mount (berth.volumes.specs)
    volumes_from: list[str] = field(default_factory=list)   # --volumes-from
    restart: str | None = None
    auto_remove: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    init: bool = False
    add_hosts: list[str] = field(default_factory=list)
    read_only: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    network: str = "bridge"
    runtime: str | None = None
    # networking (berth.network): -p/-P/--expose, --ip, --network-alias, --dns*
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)
    ip: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)


def parse_signal(text: str) -> int:
    """``SIGTERM``, ``TERM``, ``term`` or ``15`` -> 15 (Docker accepts all of them)."""
    import signal as _signal

    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < 65:
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        sig = getattr(_signal.Signals, name, None) if name.isidentifier() else None
        if sig is not None:
            return int(sig)
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            pass
    raise InvalidArgument(f"Invalid signal: {text}")


_INT64_MAX = (1 << 63) - 1
_MIN_MEMORY = 6 << 20  # Docker's floor for -m


def parse_cpus(text: str) -> float | None:
    """``--cpus``: a finite, non-negative number of CPUs (0 means no limit), as Docker.

    ``nan``/``inf`` are not numbers Docker's rational parser accepts; a value under 0.01
    or above the host's CPU count gets Docker's "Range of CPUs" error.
    """
    import math

    try:
        cpus = float(text)
    except ValueError:
        cpus = math.nan
    if not math.isfinite(cpus):
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to '
                              f"parse {text} as a rational number")
    check_cpus(cpus)
    return cpus or None


def check_cpus(cpus: float) -> None:
    """Docker's range check of NanoCPUs: 0 (unlimited) or 0.01 .. the host's CPU count."""
    n = os.cpu_count() or 1
    if cpus != 0 and not (0.01 <= cpus <= n):
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} "
                              "CPUs available")


# Flags whose values become file contents or paths on the host (hosts files, bind
# sources): a byte that is not UTF-8 could not be written there or named to the runtime.
_TEXT_FLAGS = (("--hostname", "hostname"), ("--add-host", "add_hosts"),
               ("--dns-search", "dns_search"), ("--dns-option", "dns_options"),
               ("--network-alias", "network_aliases"), ("--workdir", "workdir"),
               ("--volume", "volumes"), ("--mount", "mounts"), ("--tmpfs", "tmpfs"))


def _check_text(opts: CreateOptions) -> None:
    """Refuse flag values that are not valid UTF-8 (argv bytes Python kept as surrogates)."""
    for flag, attr in _TEXT_FLAGS:
        value = getattr(opts, attr)
        for v in value if isinstance(value, list) else [value]:
            if v is not None and _has_surrogates(v):
                shown = v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                raise InvalidArgument(f'invalid argument "{shown}" for "{flag}" flag: not '
                                      "valid UTF-8")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_resources(opts: CreateOptions) -> None:
    """The limits Docker's daemon refuses at create, so none fails only at start."""
    _check_text(opts)
    if opts.hostname and len(opts.hostname.encode()) > 64:  # the kernel's HOST_NAME_MAX
        raise InvalidArgument(f'invalid argument "{opts.hostname[:20]}..." for "--hostname" '
                              "flag: a hostname is at most 64 characters")
    if opts.cpus is not None:
        check_cpus(float(opts.cpus))
    if opts.memory is not None and 0 < opts.memory < _MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if opts.cpu_shares is not None and opts.cpu_shares < 0:
        raise InvalidArgument(f"invalid CPU shares ({opts.cpu_shares}): value must be a "
                              "positive integer")
    for flag, value in (("--memory", opts.memory), ("--memory-swap", opts.memory_swap),
                        ("--cpu-shares", opts.cpu_shares), ("--pids-limit", opts.pids_limit),
                        ("--stop-timeout", opts.stop_timeout)):
        if value is not None and not -_INT64_MAX <= value <= _INT64_MAX:
            raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: value out '
                                  "of range")


def read_env_file(path: str) -> list[str]:
    """Docker's env-file: ``KEY=value`` per line, ``#`` comments, bare ``KEY`` from our env.

    The file must be UTF-8 (Docker's rule): a bad byte is named by its line, never a
    decoding traceback.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    lines = []
    for no, b in enumerate(raw, 1):
        try:
            lines.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidArgument(f"env file {path} contains invalid utf8 bytes at line "
                                  f"{no}: {b!r}") from None
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def _expand_env(items: list[str]) -> list[str]:
    out = []
    for item in items:
        key, eq, _ = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if eq:
            out.append(item)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Image env then overrides, replacing by name and keeping first-seen order."""
    order: list[str] = []
    values: dict[str, str] = {}
    for item in [*base, *overrides]:
        key = item.partition("=")[0]
        if key not in values:
            order.append(key)
        values[key] = item
    return [values[k] for k in order]


def parse_key_values(items: list[str], what: str = "label") -> dict[str, str]:
    """``["k=v", "flag"]`` → ``{"k": "v", "flag": ""}`` (labels, network options)."""
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        out[k] = v
    return out


def parse_volume(spec: str) -> dict[str, Any]:
    """``-v HOST:CTR[:ro|rw]`` as a bind mount; named volumes need the volume service."""
    parts = spec.split(":")
    if len(parts) == 1:
        raise InvalidArgument(f"invalid volume specification: '{spec}': anonymous volumes "
                              "are not supported yet")
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount "
                              f"config: invalid mount path: '{dst}' mount path must be absolute")
    if not src.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': named volumes are "
                              "not supported yet; give an absolute host path")
    opts = set(mode.split(","))
    if not opts <= {"ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared",
                    "slave", "rslave"}:
        raise InvalidArgument(f"invalid mode: {mode}")
    return {"Type": "bind", "Source": os.path.normpath(src), "Destination": dst,
            "Mode": mode if len(parts) == 3 else "", "RW": "ro" not in opts,
            "Propagation": "rprivate"}


def parse_tmpfs(spec: str) -> tuple[str, str]:
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs mount path: '{dst}' mount path must be absolute")
    return dst, opts


def _security(opts: list[str]) -> None:
    for o in opts:
        key, _, val = o.partition("=" if "=" in o else ":")
        if o in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true",
                 "no-new-privileges:false", "no-new-privileges=false"):
            continue
        if key == "seccomp" and val:
            if val != "unconfined" and not os.path.isfile(val):
                raise InvalidArgument(f"opening seccomp profile ({val}) failed: open {val}: "
                                      "no such file or directory")
            continue
        if key in ("apparmor", "label"):
            continue  # not enforced by berth; accepted like Docker on hosts without LSMs
        raise InvalidArgument(f"invalid --security-opt: {o!r}")


def merge(opts: CreateOptions, image_config: dict[str, Any], image_ref: str
          ) -> dict[str, Any]:
    """The container's stored config from flags + the image's config."""
    img = image_config.get("config") or {}
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)
    else:
        entrypoint = list(img.get("Entrypoint") or [])
        cmd = list(opts.command) if opts.command else list(img.get("Cmd") or [])
    if not entrypoint and not cmd:
        raise InvalidArgument("No command specified")
    if opts.network == "default":
        opts.network = "bridge"
    if not opts.network or opts.network == "container:":
        raise InvalidArgument(f"invalid network mode: {opts.network!r}")
    ports: dict[str, Any] = {}
    if opts.publish or opts.publish_all or opts.expose:
        from ..network.portbindings import bindings_from_flags, exposed_from_flags

        ports = bindings_from_flags(opts.publish) if opts.network not in ("host", "none") \
            else {}
        img = dict(img, ExposedPorts=exposed_from_flags(opts.expose, ports,
                                                        img.get("ExposedPorts")))
    if opts.stop_signal is not None:
        parse_signal(opts.stop_signal)
    _check_resources(opts)
    env_in = [line for path in opts.env_files for line in read_env_file(path)] + opts.env
    env = merge_env(list(img.get("Env") or []), _expand_env(env_in))
    labels = dict(img.get("Labels") or {})
    labels.update(parse_key_values(opts.labels))
    policy = restart.parse(opts.restart)
    if opts.auto_remove and policy.name != "no":
        raise InvalidArgument("Conflicting options: --restart and --rm")
    _security(opts.security_opt)
    volume_mounts: list[dict[str, Any]] = []
    if opts.volumes or opts.mounts or opts.volumes_from or img.get("Volumes"):
        from ..volumes.hooks import planned_mounts  # lazy: a run without volumes skips it

        binds, volume_mounts = planned_mounts(opts, img)
    else:
        binds = []
    tmpfs = dict(parse_tmpfs(t) for t in opts.tmpfs)
    for h in opts.add_hosts:
        host, sep, ip = h.partition(":")
        if not sep or not host or not ip:
            raise InvalidArgument(f"invalid argument \"{h}\" for \"--add-host\" flag: bad "
                                  "format for add-host")
    config: dict[str, Any] = {
        "Hostname": opts.hostname or "",
        "Domainname": "",
        "User": opts.user if opts.user is not None else (img.get("User") or ""),
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive and not opts.detach,
        "Env": env,
        "Cmd": cmd or None,
        "Image": image_ref,
        "Volumes": img.get("Volumes"),
        "WorkingDir": opts.workdir if opts.workdir is not None else (img.get("WorkingDir") or ""),
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": opts.stop_signal or img.get("StopSignal") or "SIGTERM",
        "ExposedPorts": img.get("ExposedPorts"),
    }
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    config["HostConfig"] = {
        "Binds": [f"{b['Source']}:{b['Destination']}" + (f":{b['Mode']}" if b["Mode"] else "")
                  for b in binds] or None,
        "Mounts": binds,
        "VolumeMounts": volume_mounts or None,
        "VolumesFrom": opts.volumes_from or None,
        "NetworkMode": opts.network,
        "PortBindings": ports or {},
        "PublishAllPorts": opts.publish_all,
        "Dns": list(opts.dns),
        "DnsSearch": list(opts.dns_search),
        "DnsOptions": list(opts.dns_options),
        "RestartPolicy": policy.to_docker(),
        "AutoRemove": opts.auto_remove,
        "CapAdd": opts.cap_add or None,
        "CapDrop": opts.cap_drop or None,
        "ExtraHosts": opts.add_hosts or None,
        "Privileged": opts.privileged,
        "ReadonlyRootfs": opts.read_only,
        "SecurityOpt": opts.security_opt or None,
        "Tmpfs": tmpfs or None,
        "Memory": opts.memory or 0,
        "MemorySwap": opts.memory_swap or 0,
        "NanoCpus": int((opts.cpus or 0) * 1e9),
        "CpuShares": opts.cpu_shares or 0,
        "PidsLimit": opts.pids_limit,
        "Init": opts.init or None,
        "Runtime": opts.runtime or "",
        "LogConfig": {"Type": "k8s-file", "Config": {}},
        "ShmSize": 64 << 20,
    }
    return config


def argv_of(config: dict[str, Any]) -> list[str]:
    """Entrypoint + Cmd: what the container runs (Path is the first word)."""
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
