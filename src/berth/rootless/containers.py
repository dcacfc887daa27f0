"""What a rootless container may ask for, and the OCI spec changes runc needs for it.

The container shares the store's user namespace (as Podman's default ``--userns=host`` in
rootless mode): its root is the user, its other IDs the user's subordinate range. Inside
that namespace:

* cgroup limits need a delegated cgroup, which this host's users do not have -> refused
  at create with the reason (no silent "limit" that does nothing);
* the default bridge network needs host root (bridge, veth, nftables) -> refused with
  the options that work (``--network none``, ``--network host``);
* with ``--network host`` the network namespace is the host's, which the user namespace
  does not own, so a fresh sysfs cannot be mounted: ``/sys`` is bind-mounted instead, as
  runc's and Podman's rootless specs do; the cgroup filesystem likewise.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument

_LIMITS = (("Memory", "--memory"), ("MemorySwap", "--memory-swap"), ("NanoCpus", "--cpus"),
           ("CpuShares", "--cpu-shares"), ("PidsLimit", "--pids-limit"),
           ("CpusetCpus", "--cpuset-cpus"), ("MemoryReservation", "--memory-reservation"),
           ("CgroupParent", "--cgroup-parent"))


def check_config(config: dict[str, Any]) -> None:
    """Refuse limits and networks that need host root, in one line with exit code 125."""
    from .cgroups import delegated, limits_error

    host = config.get("HostConfig") or {}
    asked = [flag for key, flag in _LIMITS
             if host.get(key) not in (None, 0, -1, "") and not (key == "PidsLimit"
                                                            and host.get(key, 0) <= 0)]
    if asked and not delegated():
        raise InvalidArgument(limits_error(asked), exit_code=125)
    mode = host.get("NetworkMode") or "default"
    if mode not in ("none", "host", "default", "bridge"):
        raise InvalidArgument(
            f'network "{mode}" is not available rootless yet: user networks need host '
            "root; use the default network (pasta), --network none or --network host",
            exit_code=125)


def build_network(mode: str) -> str:
    """A rootless RUN step's network: the bridge default becomes ``pasta``.

    A build step cannot get a bridge without host root; like ``run``'s default it gets its
    own network namespace wired by pasta. Where pasta cannot run (no usable tun device,
    which ``info`` warns about) the step falls back to the user's host network, which
    reaches nothing the user could not reach anyway. ``--network none|host`` are kept,
    any other network is refused.
    """
    if mode in ("default", "bridge"):
        from .pasta import usable

        return "pasta" if usable() is None else "host"
    if mode not in ("none", "host"):
        raise InvalidArgument(f'network "{mode}" is not available to a rootless build: '
                              "use --network none or --network host", exit_code=1)
    return mode


def adjust_spec(spec: dict[str, Any]) -> None:
    """Make the spec runnable by runc as namespace root without a cgroup of its own."""
    linux = spec.setdefault("linux", {})
    linux.pop("cgroupsPath", None)
    linux["resources"] = {}  # devices cgroup rules cannot be written either
    own_netns = any(ns.get("type") == "network" for ns in linux.get("namespaces", []))
    mounts = []
    for m in spec.get("mounts", []):
        if m.get("type") == "sysfs" and not own_netns:
            m = {"destination": m["destination"], "type": "bind", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        elif m.get("type") == "cgroup":
            m = {"destination": m["destination"], "type": "bind", "source": "/sys/fs/cgroup",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
            if not own_netns:
                continue  # already inside the /sys rbind
        mounts.append(m)
    spec["mounts"] = mounts
