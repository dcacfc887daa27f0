"""Linux capability names and numbers, and the capability set a container gets.

Kept in one small table because three places need it: the spec (which caps to grant),
the seccomp converter (which caps-conditional rules apply) and tests (decoding CapEff).
"""

from __future__ import annotations

from ..errors import InvalidArgument

# Index = capability number (linux/capability.h).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

# Docker's default set (moby oci/caps/defaults.go), in Docker's order.
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def normalize(name: str) -> str:
    """``net_admin``/``NET_ADMIN``/``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN`` (``ALL`` kept)."""
    up = name.strip().upper()
    if up == "ALL":
        return up
    if not up.startswith("CAP_"):
        up = "CAP_" + up
    if up not in CAPABILITIES:
        raise InvalidArgument(f"invalid capability: {name!r}")
    return up


def _bounding_mask() -> int:
    """Our own bounding set: a runtime cannot grant a cap we do not hold (EPERM otherwise)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return (1 << len(CAPABILITIES)) - 1


def host_capabilities() -> list[str]:
    """Every capability both the kernel knows and this process may pass on."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = len(CAPABILITIES) - 1
    mask = _bounding_mask()
    return [c for i, c in enumerate(CAPABILITIES[: last + 1]) if mask >> i & 1]


def effective_set(cap_add: list[str], cap_drop: list[str], privileged: bool) -> list[str]:
    """Docker's merge rule: start from the default set (or all when privileged), add, drop.

    ``--cap-add ALL`` grants everything; ``--cap-drop ALL`` clears the base before adds.
    Caps our own process lacks are silently left out, since asking for them would make the
    runtime fail with a bare EPERM instead of running the container.
    """
    available = host_capabilities()
    adds = [normalize(c) for c in cap_add]
    drops = [normalize(c) for c in cap_drop]
    if privileged or "ALL" in adds:
        return available
    base = [] if "ALL" in drops else [c for c in DEFAULT_CAPS if c not in drops]
    for c in adds:
        if c not in base:
            base.append(c)
    return [c for c in base if c in available]


def decode(mask: int) -> set[str]:
    """Turn a CapEff-style bitmask into names (tests and ``inspect`` use it)."""
    return {c for i, c in enumerate(CAPABILITIES) if mask >> i & 1}
