"""The resource and namespace flags of ``run``/``create``/``update``: Docker's rules as data.

Each ``parse_*`` turns flag values into the ``HostConfig`` shape Docker's inspect shows
(``Ulimits``, ``Sysctls``, ``Devices``, ``PidMode``, ``IpcMode``, ``LogConfig``, ...),
failing with Docker's message on bad input; :mod:`berth.container.spec` turns the stored
shapes into the OCI config. Pure functions apart from reading host facts (current
rlimits, online CPUs, device nodes), so create fails before anything exists.
"""

from __future__ import annotations

import os
import resource
import stat
from typing import Any

from ..errors import InvalidArgument

# docker's ulimit names -> RLIMIT_* (go-units ulimit.go)
ULIMITS = {"core": "CORE", "cpu": "CPU", "data": "DATA", "fsize": "FSIZE", "locks": "LOCKS",
           "memlock": "MEMLOCK", "msgqueue": "MSGQUEUE", "nice": "NICE", "nofile": "NOFILE",
           "nproc": "NPROC", "rss": "RSS", "rtprio": "RTPRIO", "rttime": "RTTIME",
           "sigpending": "SIGPENDING", "stack": "STACK"}
LOG_DRIVERS = ("k8s-file", "json-file", "none")
_LOG_OPTS = {"max-size", "max-file", "tag", "path"}
# sysctls with their own kernel namespace (Docker's and runc's allow-list)
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


# -- ulimits ------------------------------------------------------------------------------------
def _limit(text: str, item: str) -> int:
    if text in ("-1", "unlimited"):
        return -1
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"invalid argument \"{item}\" for \"--ulimit\" flag: invalid "
                              f"ulimit argument: {text}") from None


def parse_ulimits(items: list[str]) -> list[dict[str, Any]]:
    """``nofile=1024:2048`` / ``nproc=512`` -> ``[{"Name", "Soft", "Hard"}]`` (last wins)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not value:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"--ulimit\" flag: "
                                  f"invalid ulimit argument: {item}")
        if name not in ULIMITS:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"--ulimit\" flag: "
                                  f"invalid ulimit type: {name}")
        soft_s, colon, hard_s = value.partition(":")
        soft = _limit(soft_s, item)
        hard = _limit(hard_s, item) if colon else soft
        if soft != -1 and hard != -1 and soft > hard:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"--ulimit\" flag: "
                                  f"ulimit soft limit must be less than or equal to hard "
                                  f"limit: {soft} > {hard}")
        out[name] = {"Name": name, "Soft": soft, "Hard": hard}
    return list(out.values())


def rlimits(ulimits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OCI ``process.rlimits``: our own NOFILE by default, the ``--ulimit`` values over it.

    Raising a hard limit needs CAP_SYS_RESOURCE in the host's user namespace; where root
    lacks it (this kind of host) the runtime would fail with a bare EPERM, so a hard limit
    above the current one is refused here with the reason.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = {"RLIMIT_NOFILE": {"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}}
    for u in ulimits:
        kind = "RLIMIT_" + ULIMITS[u["Name"]]
        cur_hard = resource.getrlimit(getattr(resource, kind))[1]
        inf = resource.RLIM_INFINITY
        want_hard = inf if u["Hard"] == -1 else u["Hard"]
        want_soft = inf if u["Soft"] == -1 else u["Soft"]
        if cur_hard != inf and (want_hard == inf or want_hard > cur_hard) and \
                not _can_raise(kind, want_hard):
            shown = "unlimited" if want_hard == inf else str(want_hard)
            raise InvalidArgument(f"--ulimit {u['Name']}: the hard limit {shown} is above "
                                  f"this host's current hard limit {cur_hard}, and berth "
                                  "cannot raise it here (no CAP_SYS_RESOURCE)")
        out[kind] = {"type": kind, "hard": want_hard, "soft": want_soft}
    return list(out.values())


def _can_raise(kind: str, hard: int) -> bool:
    """Whether this process may raise ``kind``'s hard limit (tried in a throwaway child)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            r = getattr(resource, kind)
            resource.setrlimit(r, (resource.getrlimit(r)[0], hard))
            os._exit(0)
        except BaseException:  # noqa: BLE001 - any failure means "cannot"
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


# -- sysctls --------------------------------------------------------------------------------------
def parse_sysctls(items: list[str], network_mode: str, ipc_mode: str) -> dict[str, str]:
    """``--sysctl k=v``: only namespaced keys, and not those of a namespace shared with the host."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"--sysctl\" flag: "
                                  f"sysctl '{item}' is not a key=value pair")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_mode == "host" or ipc_mode.startswith("container:"):
                raise InvalidArgument(f"sysctl '{key}' is not allowed with --ipc={ipc_mode}")
        elif key.startswith("net."):
            if network_mode == "host" or network_mode.startswith("container:"):
                raise InvalidArgument(f"sysctl '{key}' is not allowed with "
                                      f"--network={network_mode}")
        elif key not in ("kernel.domainname", "kernel.hostname"):
            raise InvalidArgument(f"sysctl '{key}' is not in a separate kernel namespace "
                                  "and cannot be set for a container")
        out[key] = value
    return out


# -- devices --------------------------------------------------------------------------------------
def parse_devices(items: list[str]) -> list[dict[str, str]]:
    """``--device /dev/x[:/dev/y][:rwm]`` -> Docker's ``Devices`` entries (host node checked)."""
    out = []
    for item in items:
        parts = item.split(":")
        host = parts[0]
        inside, perms = host, "rwm"
        if len(parts) == 2:
            if parts[1] and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
                perms = parts[1]
            else:
                inside = parts[1]
        elif len(parts) == 3:
            inside, perms = parts[1], parts[2]
        elif len(parts) > 3:
            raise InvalidArgument(f"invalid device specification: {item}")
        if not perms or not set(perms) <= set("rwm"):
            raise InvalidArgument(f"invalid device mode: {perms}")
        if not host.startswith("/") or not inside.startswith("/"):
            raise InvalidArgument(f"invalid device specification: {item}")
        try:
            st = os.stat(host)
        except OSError as e:
            raise InvalidArgument(f"error gathering device information while adding custom "
                                  f"device \"{host}\": {(e.strerror or '').lower()}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgument(f"error gathering device information while adding custom "
                                  f"device \"{host}\": not a device node")
        out.append({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms})
    return out


def device_specs(devices: list[dict[str, str]]) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """(OCI ``linux.devices``, device cgroup allow rules) for the stored ``Devices``."""
    nodes, rules = [], []
    for d in devices:
        st = os.stat(d["PathOnHost"])
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        nodes.append({"path": d["PathInContainer"], "type": kind, "major": major,
                      "minor": minor, "fileMode": stat.S_IMODE(st.st_mode),
                      "uid": st.st_uid, "gid": st.st_gid})
        rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                      "access": d["CgroupPermissions"]})
    return nodes, rules


# -- namespaces -----------------------------------------------------------------------------------
def check_mode(flag: str, mode: str, allowed: tuple[str, ...]) -> str:
    """``--pid``/``--ipc``: one of ``allowed`` or ``container:NAME``."""
    if mode in allowed or (mode.startswith("container:") and len(mode) > 10):
        return mode
    raise InvalidArgument(f"--{flag}: invalid {flag.upper()} mode: {mode}")


# -- logging ----------------------------------------------------------------------------------------
def log_config(driver: str | None, opts: list[str]) -> dict[str, Any]:
    """``--log-driver``/``--log-opt`` -> ``LogConfig``.

    ``json-file`` is accepted for Docker compatibility and written in conmon's
    ``k8s-file`` format (as Podman does): ``logs`` reads both the same way. ``max-size``
    becomes conmon's ``--log-size-max`` (conmon truncates the file before it grows past
    it); ``max-file`` is recorded (berth keeps one file, so at most ``max-size`` bytes).
    """
    kind = driver or "k8s-file"
    if kind not in LOG_DRIVERS:
        raise InvalidArgument(f"failed to create container: logging driver \"{kind}\" is "
                              f"not supported (use {', '.join(LOG_DRIVERS)})")
    config: dict[str, str] = {}
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid key value pair format in log opts: {o}")
        if k not in _LOG_OPTS:
            raise InvalidArgument(f"unknown log opt '{k}' for {kind} log driver")
        config[k] = v
    if kind == "none" and config:
        raise InvalidArgument("options are not supported by the none log driver")
    if "max-size" in config:
        from ..units import parse_size

        if parse_size(config["max-size"]) <= 0:
            raise InvalidArgument(f"invalid max-size: {config['max-size']}")
    if "max-file" in config:
        if not config["max-file"].isdigit() or int(config["max-file"]) < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if "max-size" not in config and int(config["max-file"]) > 1:
            raise InvalidArgument("max-file cannot be set without max-size")
    return {"Type": kind, "Config": config}


def log_size_max(log: dict[str, Any] | None) -> int | None:
    from ..units import parse_size

    size = ((log or {}).get("Config") or {}).get("max-size")
    return parse_size(size) if size else None


# -- cpus and memory ----------------------------------------------------------------------------------
def check_cpuset(text: str) -> str:
    """``--cpuset-cpus 0-1,3``: every CPU must be online here (Docker's check)."""
    wanted: set[int] = set()
    try:
        for part in text.split(","):
            lo, dash, hi = part.partition("-")
            a, b = int(lo), int(hi) if dash else int(lo)
            if a < 0 or b < a:
                raise ValueError(part)
            wanted |= set(range(a, b + 1))
    except ValueError:
        raise InvalidArgument(f"Invalid value {text} for cpuset cpus") from None
    online = os.sched_getaffinity(0)
    if not wanted <= online:
        avail = ",".join(str(c) for c in sorted(online))
        raise InvalidArgument(f"Requested CPUs are not available - requested {text}, "
                              f"available: {avail}")
    return text


def check_oom_score_adj(value: int) -> int:
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"Invalid value {value}, range for oom score adj is "
                              "[-1000, 1000]")
    return value


def check_reservation(memory: int, reservation: int) -> None:
    if memory and reservation and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage.")
