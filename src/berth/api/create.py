"""``POST /containers/create``: Docker's ``Config`` + ``HostConfig`` + ``NetworkingConfig``
JSON as the :class:`~berth.container.create_options.CreateOptions` the CLI builds from flags.

Going through the same options as ``berth create`` keeps one set of rules (Entrypoint/Cmd,
env override, volumes, ports, restart policy) for both adapters. Values are type-checked
here: a wrong JSON type is a 400 naming the field, never a 500.
"""

from __future__ import annotations

from typing import Any

from berth.errors import InvalidArgument

from .common import typed
from .update import nano_cpus


def _strs(obj: dict[str, Any], key: str) -> list[str]:
    v = typed(obj, key, (list, str), [])
    if isinstance(v, str):
        return [v]
    if not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"json: cannot unmarshal {key}: expected a list of strings")
    return list(v)


def _mount_spec(m: Any) -> str:
    """A ``HostConfig.Mounts`` entry as a ``--mount`` value."""
    if not isinstance(m, dict):
        raise InvalidArgument("invalid mount: expected an object")
    kind = typed(m, "Type", str, "volume")
    parts = [f"type={kind}"]
    if m.get("Source"):
        parts.append(f"source={typed(m, 'Source', str)}")
    target = typed(m, "Target", str, "")
    if not target:
        raise InvalidArgument("invalid mount config: Target is required")
    parts.append(f"target={target}")
    if typed(m, "ReadOnly", bool, False):
        parts.append("readonly")
    vo = typed(m, "VolumeOptions", dict, {}) or {}
    if vo.get("NoCopy"):
        parts.append("volume-nocopy")
    to = typed(m, "TmpfsOptions", dict, {}) or {}
    if to.get("SizeBytes"):
        parts.append(f"tmpfs-size={int(to['SizeBytes'])}")
    if to.get("Mode"):
        parts.append(f"tmpfs-mode={int(to['Mode']):o}")
    for p in parts:
        if "," in p[p.find("=") + 1:]:
            raise InvalidArgument(f"invalid mount: comma in {p!r}")
    return ",".join(parts)


def _publish(bindings: dict[str, Any]) -> list[str]:
    out = []
    for port, hosts in bindings.items():
        for h in hosts or [{}]:
            if not isinstance(h, dict):
                raise InvalidArgument(f"invalid port binding for {port}")
            ip = typed(h, "HostIp", str, "")
            hp = typed(h, "HostPort", (str, int), "")
            spec = f"{hp}:{port}" if hp != "" else port
            if ip:
                spec = f"{ip}:{hp}:{port}" if not ip.count(":") else f"[{ip}]:{hp}:{port}"
            out.append(spec)
    return out


def _devices(items: list[Any]) -> list[str]:
    """``HostConfig.Devices`` as ``--device`` values (the engine checks the host nodes)."""
    out = []
    for d in items:
        if not isinstance(d, dict):
            raise InvalidArgument("HostConfig.Devices entries must be objects")
        host = typed(d, "PathOnHost", str, "")
        if not host:
            raise InvalidArgument("HostConfig.Devices: PathOnHost is required")
        inside = typed(d, "PathInContainer", str, "") or host
        perms = typed(d, "CgroupPermissions", str, "") or "rwm"
        if ":" in host + inside:
            raise InvalidArgument(f"invalid device path: {host}:{inside}")
        out.append(f"{host}:{inside}:{perms}")
    return out


def _host_extras(opts: Any, hc: dict[str, Any]) -> None:
    """Ulimits, sysctls, groups, shm, pid/ipc modes, logging, OOM score, cgroup parent:
    the same ``CreateOptions`` fields ``--ulimit``, ``--sysctl``, ... fill (checked by the
    engine like the flags)."""
    ulimits = []
    for u in typed(hc, "Ulimits", list, []) or []:
        if not isinstance(u, dict):
            raise InvalidArgument("HostConfig.Ulimits entries must be objects")
        name = typed(u, "Name", str, "")
        soft, hard = typed(u, "Soft", int, 0), typed(u, "Hard", int, 0)
        ulimits.append(f"{name}={soft}:{hard}")
    opts.ulimits = ulimits
    sysctls = typed(hc, "Sysctls", dict, {}) or {}
    opts.sysctls = [f"{k}={v}" for k, v in sysctls.items()]
    opts.group_add = _strs(hc, "GroupAdd")
    opts.shm_size = typed(hc, "ShmSize", int, 0) or None
    opts.pid_mode = typed(hc, "PidMode", str, "") or ""
    opts.ipc_mode = typed(hc, "IpcMode", str, "") or ""
    log = typed(hc, "LogConfig", dict, {}) or {}
    opts.log_driver = typed(log, "Type", str, "") or None
    opts.log_opts = [f"{k}={v}" for k, v in (typed(log, "Config", dict, {}) or {}).items()]
    opts.oom_score_adj = typed(hc, "OomScoreAdj", int, 0) or None
    opts.cgroup_parent = typed(hc, "CgroupParent", str, "") or None


def options_from_json(body: dict[str, Any], name: str | None) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """(CreateOptions, extra networks to connect after create as (name, endpoint config))."""
    from berth.container.create_options import CreateOptions

    image = typed(body, "Image", str, "")
    if not image:
        raise InvalidArgument("Config.Image is required")
    hc = typed(body, "HostConfig", dict, {}) or {}
    nc = (typed(body, "NetworkingConfig", dict, {}) or {}).get("EndpointsConfig") or {}
    if not isinstance(nc, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    entry = typed(body, "Entrypoint", (list, str), None)
    cmd = _strs(body, "Cmd")
    if isinstance(entry, str):
        entry = [entry] if entry else []
    if entry is not None and not all(isinstance(x, str) for x in entry):
        raise InvalidArgument("Entrypoint must be a list of strings")
    entrypoint = None
    if entry is not None:
        entrypoint = entry[0] if entry else ""
        cmd = entry[1:] + cmd
    opts = CreateOptions(image=image, command=cmd, name=name, entrypoint=entrypoint)
    opts.devices = _devices(typed(hc, "Devices", list, []) or [])
    opts.env = [e for e in _strs(body, "Env") if "=" in e]  # bare NAME: the client resolves
    opts.workdir = typed(body, "WorkingDir", str, None) or None
    opts.user = typed(body, "User", str, None) or None
    opts.hostname = typed(body, "Hostname", str, None) or None
    opts.tty = typed(body, "Tty", bool, False)
    opts.interactive = typed(body, "OpenStdin", bool, False)
    opts.detach = not (typed(body, "AttachStdout", bool, False) or
                       typed(body, "AttachStderr", bool, False))
    labels = typed(body, "Labels", dict, {}) or {}
    opts.labels = [f"{k}={v}" for k, v in labels.items()]
    opts.stop_signal = typed(body, "StopSignal", str, None) or None
    opts.stop_timeout = typed(body, "StopTimeout", int, None)
    opts.expose = list((typed(body, "ExposedPorts", dict, {}) or {}).keys())
    binds = _strs(hc, "Binds")
    mounts = typed(hc, "Mounts", list, []) or []
    opts.mounts = [_mount_spec(m) for m in mounts]
    # Config.Volumes names anonymous volumes, unless a bind or mount already covers the path
    taken = {b.split(":")[1] for b in binds if b.count(":") >= 1} | \
        {m.get("Target") for m in mounts}
    opts.volumes = binds + [v for v in (typed(body, "Volumes", dict, {}) or {})
                            if v not in taken]
    opts.volumes_from = _strs(hc, "VolumesFrom")
    opts.tmpfs = [f"{k}:{v}" if v else k for k, v in
                  (typed(hc, "Tmpfs", dict, {}) or {}).items()]
    rp = typed(hc, "RestartPolicy", dict, {}) or {}
    rname = typed(rp, "Name", str, "") or "no"
    retries = typed(rp, "MaximumRetryCount", int, 0)
    opts.restart = f"{rname}:{retries}" if rname == "on-failure" and retries else rname
    opts.auto_remove = typed(hc, "AutoRemove", bool, False)
    opts.init = bool(typed(hc, "Init", bool, False))
    opts.add_hosts = _strs(hc, "ExtraHosts")
    opts.read_only = typed(hc, "ReadonlyRootfs", bool, False)
    opts.privileged = typed(hc, "Privileged", bool, False)
    opts.cap_add = _strs(hc, "CapAdd")
    opts.cap_drop = _strs(hc, "CapDrop")
    opts.security_opt = _strs(hc, "SecurityOpt")
    opts.memory = typed(hc, "Memory", int, 0) or None
    opts.memory_swap = typed(hc, "MemorySwap", int, 0) or None
    opts.memory_reservation = typed(hc, "MemoryReservation", int, 0) or None
    nano = nano_cpus(hc)
    opts.cpus = nano / 1e9 if nano else None
    opts.cpu_shares = typed(hc, "CpuShares", int, 0) or None
    opts.cpuset_cpus = typed(hc, "CpusetCpus", str, "") or None
    opts.pids_limit = typed(hc, "PidsLimit", int, None) or None
    opts.runtime = typed(hc, "Runtime", str, None) or None
    _host_extras(opts, hc)
    opts.publish = _publish(typed(hc, "PortBindings", dict, {}) or {})
    opts.publish_all = typed(hc, "PublishAllPorts", bool, False)
    opts.dns = _strs(hc, "Dns")
    opts.dns_search = _strs(hc, "DnsSearch")
    opts.dns_options = _strs(hc, "DnsOptions")
    _healthcheck(opts, typed(body, "Healthcheck", dict, None))
    mode = typed(hc, "NetworkMode", str, "") or "default"
    extra: list[tuple[str, dict[str, Any]]] = []
    first = mode if mode not in ("default", "bridge") else None
    for net, ep in nc.items():
        ep = ep or {}
        if not isinstance(ep, dict):
            raise InvalidArgument(f"invalid endpoint config for network {net}")
        if first is None and mode == "default":
            first = net
        if net == first or (net == "bridge" and mode in ("default", "bridge")):
            opts.network_aliases = _strs(ep, "Aliases")
            ipam = typed(ep, "IPAMConfig", dict, {}) or {}
            opts.ip = typed(ipam, "IPv4Address", str, None) or None
        else:
            extra.append((net, ep))
    opts.network = first or ("bridge" if mode == "default" else mode)
    return opts, extra


def _healthcheck(opts: Any, hc: dict[str, Any] | None) -> None:
    """``Config.Healthcheck`` (Test, nanosecond durations) as the ``--health-*`` flags."""
    if not hc:
        return
    test = _strs(hc, "Test")
    if test[:1] == ["NONE"]:
        opts.no_healthcheck = True
        return
    if test[:1] == ["CMD-SHELL"] and len(test) == 2:
        opts.health_cmd = test[1]
    elif test[:1] == ["CMD"] and len(test) >= 2:
        import shlex

        opts.health_cmd = shlex.join(test[1:])
    elif test:
        raise InvalidArgument(f"invalid Healthcheck.Test: {test!r}")
    for key, attr in (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                      ("StartPeriod", "health_start_period")):
        ns = typed(hc, key, int, 0)
        if ns:
            setattr(opts, attr, f"{ns}ns")
    retries = typed(hc, "Retries", int, 0)
    if retries:
        opts.health_retries = retries

