"""Build the OCI runtime ``config.json`` for a container, with Docker's defaults.

Everything Docker decides implicitly lives here: the capability set, masked and read-only
/proc paths, the standard mounts, the device allow-list, namespaces, default env. The
result is a plain dict so the caller can add hooks or tweak before writing the bundle.
"""

from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass, field
from typing import Literal

from ..errors import InvalidArgument
from . import caps as _caps
from . import cgroups
from .users import resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/docker-init"

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Docker's default device cgroup rules (moby oci/devices_linux.go DefaultLinuxSpec).
_DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},     # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},     # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},     # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},     # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},     # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},     # urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},               # pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},     # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},     # ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun
]
_INIT_CANDIDATES = ("docker-init", "tini-static", "tini", "catatonit")


@dataclass
class SpecOptions:
    """Everything ``build_spec`` needs; field names follow ``docker run`` flags."""

    rootfs: str
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: str | None = None
    group_add: list[str] = field(default_factory=list)
    hostname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    seccomp: str = "default"           # "default" | "unconfined" | path
    mounts: list[dict] = field(default_factory=list)
    network: str = "none"              # "none" | "host" | "bridge"-like (new netns) | path
    memory: int | None = None          # bytes
    memory_swap: int | None = None     # bytes, -1 = unlimited
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    oom_score_adj: int | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    cgroups_path: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    init: str | bool | None = None     # True: find one on the host; str: host path
    shm_size: int = 64 << 20
    ulimits: list[dict] = field(default_factory=list)   # HostConfig.Ulimits
    devices: list[dict] = field(default_factory=list)   # HostConfig.Devices
    pid_ns: str = ""                   # "" own | "host" | path of another's pid namespace
    ipc_ns: str = ""                   # "" own | "host" | "none" | path of another's
    cpuset_cpus: str = ""
    memory_reservation: int | None = None


def find_init_binary() -> str | None:
    """A static tini-like init on the host, to bind-mount as /sbin/docker-init.

    Only static binaries qualify: the image may have no libc at all. busybox is not used,
    because its init expects to be a full system init and does not forward signals to
    ``-- cmd`` the way tini and catatonit do.
    """
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(":") + [
        "/usr/libexec/docker", "/usr/libexec/podman", "/usr/local/libexec/podman"]
    for name in _INIT_CANDIDATES:
        for d in dirs:
            p = os.path.join(d, name)
            if os.access(p, os.X_OK) and _is_static(p):
                return p
    return None


def _is_static(path: str) -> bool:
    """ELF without a PT_INTERP program header (no dynamic loader needed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
        return all(int.from_bytes(table[i * phentsize:i * phentsize + 4], order) != 3
                   for i in range(phnum))
    except OSError:
        return False


def _default_mounts(privileged: bool, shm_size: int) -> list[dict]:
    ro = [] if privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def _user_mount(m: dict) -> dict:
    """``{"type": "bind", "source", "destination", "ro"}`` or ``{"type": "tmpfs", ...}``.

    Bind mounts are recursive and rprivate like Docker's; tmpfs gets Docker's
    nosuid,nodev,noexec unless the caller's options say otherwise.
    """
    kind = m.get("type", "bind")
    dst = m.get("destination") or m.get("target") or m.get("dst")
    if not dst or not dst.startswith("/"):
        raise InvalidArgument(f"invalid mount destination: {dst!r}")
    if kind == "bind":
        src = m.get("source") or m.get("src")
        if not src:
            raise InvalidArgument(f"bind mount for {dst} has no source")
        opts = ["rbind", m.get("propagation", "rprivate")]
        opts.append("ro" if m.get("ro") or m.get("readonly") else "rw")
        opts.extend(m.get("options", []))
        return {"destination": dst, "type": "bind", "source": src, "options": opts}
    if kind == "tmpfs":
        extra = list(m.get("options", []))
        opts = ["nosuid", "nodev", "noexec"]
        for o in extra:
            for a, b in (("exec", "noexec"), ("suid", "nosuid"), ("dev", "nodev")):
                if o == a and b in opts:
                    opts.remove(b)
        opts += [o for o in extra if o not in ("exec", "suid", "dev")]
        return {"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": opts}
    return {"destination": dst, "type": kind, "source": m.get("source", kind),
            "options": list(m.get("options", []))}


def _host_devices() -> list[dict]:
    """Every char/block device node in the host's /dev (for ``--privileged``)."""
    out: list[dict] = []
    skip = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx", "/dev/fd"}
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            p = os.path.join(dirpath, name)
            if p in skip:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append({"path": p, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                            "gid": st.st_gid})
    return out


def _rlimits(ulimits: list[dict]) -> list[dict]:
    """Our own NOFILE limits, never Docker's 1048576: raising needs CAP_SYS_RESOURCE."""
    if ulimits:
        from .host_options import rlimits

        return rlimits(ulimits)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}]


def _env(opts: SpecOptions, home: str) -> list[str]:
    """Docker adds PATH, HOSTNAME, HOME (and TERM for a tty) when the image lacks them."""
    env = list(opts.env)
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if opts.hostname and "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={opts.hostname}")
    if opts.terminal and "TERM" not in keys:
        env.append("TERM=xterm")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    return env


def resources(opts: SpecOptions) -> dict:
    """OCI ``linux.resources`` (also what ``update`` sends to a live container)."""
    res: dict = {"devices": [{"allow": True, "access": "rwm"}] if opts.privileged
                 else [dict(r) for r in _DEFAULT_DEVICE_RULES]}
    mem: dict = {}
    if opts.memory:
        mem["limit"] = opts.memory
        if cgroups.swap_accounting():
            if opts.memory_swap is None or opts.memory_swap == 0:
                mem["swap"] = 2 * opts.memory
            else:
                mem["swap"] = opts.memory_swap
    elif opts.memory_swap and opts.memory_swap != -1:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage.")
    if mem:
        if "swap" in mem and mem["swap"] != -1 and mem["swap"] < mem["limit"]:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage.")
        res["memory"] = mem
    cpu: dict = {}
    if opts.cpus:
        cpu["period"] = 100000
        cpu["quota"] = int(opts.cpus * 100000)
    if opts.cpu_shares:
        cpu["shares"] = opts.cpu_shares
    if cpu:
        res["cpu"] = cpu
    if opts.memory_reservation:
        res.setdefault("memory", {})["reservation"] = opts.memory_reservation
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
        res["cpu"] = cpu
    if opts.pids_limit:
        res["pids"] = {"limit": opts.pids_limit}
    return res


def _shared(kind: str, mode: str) -> list[dict]:
    """A namespace of our own, the host's (none listed), or another container's (path)."""
    if mode == "host":
        return []
    if mode.startswith("/"):
        return [{"type": kind, "path": mode}]
    return [{"type": kind}]


def _namespaces(network: str, pid: str = "", ipc: str = "") -> list[dict]:
    ns = [*_shared("pid", pid), *_shared("ipc", ipc), {"type": "uts"}, {"type": "mount"}]
    if network == "host":
        pass
    elif network.startswith("/"):
        ns.append({"type": "network", "path": network})
    else:
        ns.append({"type": "network"})
    if cgroups.is_v2():
        ns.append({"type": "cgroup"})
    return ns


def build_spec(opts: SpecOptions) -> dict:
    """The full OCI config for ``opts`` (``--privileged`` lifts caps, seccomp and masks)."""
    if not opts.args:
        raise InvalidArgument("no command specified")
    cwd = opts.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an "
                              "absolute path")
    if os.path.normpath(cwd).startswith("/proc/"):
        # CVE-2024-21626: a cwd through /proc/self/fd/N can land on a leaked host fd.
        raise InvalidArgument(f"the working directory '{cwd}' is invalid: it is under /proc")
    user = resolve_user(opts.rootfs, opts.user, opts.group_add)
    capset = _caps.effective_set(opts.cap_add, opts.cap_drop, opts.privileged)
    args = list(opts.args)
    mounts = _default_mounts(opts.privileged, opts.shm_size)
    if opts.ipc_ns in ("none", "host") or opts.ipc_ns.startswith("/"):
        mounts = [m for m in mounts if m["destination"] != "/dev/shm"]
        if opts.ipc_ns == "host":   # Docker shares the host's /dev/shm with its IPC
            mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                           "options": ["rbind", "rprivate", "rw"]})
    if opts.init:
        init = opts.init if isinstance(opts.init, str) else find_init_binary()
        if not init:
            raise InvalidArgument("--init requested but no static init (docker-init, tini, "
                                  "catatonit) was found on the host")
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init,
                       "options": ["bind", "ro", "nosuid", "nodev"]})
        args = [INIT_PATH, "--", *args]
    for m in opts.mounts:
        um = _user_mount(m)
        mounts = [x for x in mounts if x["destination"] != um["destination"]]
        mounts.append(um)

    process: dict = {
        "terminal": opts.terminal,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": args,
        "env": _env(opts, user.home),
        "cwd": cwd,
        "capabilities": {k: list(capset) for k in ("bounding", "effective", "permitted")},
        "rlimits": _rlimits(opts.ulimits),
        "noNewPrivileges": opts.no_new_privileges,
    }
    if user.additional_gids:
        process["user"]["additionalGids"] = user.additional_gids
    if opts.oom_score_adj is not None:
        process["oomScoreAdj"] = opts.oom_score_adj

    linux: dict = {
        "namespaces": _namespaces(opts.network, opts.pid_ns, opts.ipc_ns),
        "resources": resources(opts),
    }
    if opts.devices:
        from .host_options import device_specs

        nodes, rules = device_specs(opts.devices)
        linux["devices"] = nodes
        linux["resources"]["devices"].extend(rules)
    if opts.sysctls:
        linux["sysctl"] = dict(opts.sysctls)
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    if opts.privileged:
        linux["devices"] = _host_devices() + linux.get("devices", [])
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if opts.seccomp != "unconfined":
            from .seccomp import load_profile
            profile = load_profile(opts.seccomp, capset)
            if profile is not None:
                linux["seccomp"] = profile

    spec: dict = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": opts.rootfs, "readonly": opts.readonly_rootfs},
        "hostname": opts.hostname,
        "mounts": mounts,
        "linux": linux,
    }
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    return spec
