"""The rootless default network: one network namespace per container, wired by ``pasta``.

Bridges, veths and nftables need host root; a rootless container instead gets its own
network namespace (owned by the store's user namespace) with a tap device that ``pasta``
(Debian ``passt``) runs in user space, translating to ordinary sockets of the user on the
host, as Podman's default rootless network does. Lifecycle, per container:

* start: a child ``unshare``s a network namespace, which is bind-mounted on
  ``<runroot>/netns/<id>`` (the spec names that path), then ``pasta --config-net`` attaches
  to it with the ``-p`` forwards (host ports >= ``net.ipv4.ip_unprivileged_port_start``);
* stop/remove: pasta is killed by its pid file, the bind mount is detached and the file
  removed. Nothing else is left: pasta holds no state.

The container cannot reach the host's loopback services (``--no-map-gw``, no ``-T``/``-U``
forwards), and ``/dev/net/tun`` must be usable by the user (Debian's default mode 0666).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from typing import Any

from ..errors import InvalidArgument, RuntimeFailure

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def usable() -> str | None:
    """None when pasta can run here, else the one-line reason it cannot."""
    from .info import tun_usable

    if not shutil.which("pasta"):
        return "pasta is not installed (Debian package passt)"
    if not tun_usable():
        try:
            mode = f"mode {os.stat('/dev/net/tun').st_mode & 0o777:o}"
        except OSError:
            mode = "missing"
        return f"/dev/net/tun is not usable by this user ({mode}; Debian's default is 0666)"
    return None


def forwards(host: dict[str, Any]) -> list[str]:
    """pasta ``-t``/``-u`` arguments for ``-p``; refuses what a user cannot bind."""
    if host.get("PublishAllPorts"):
        raise InvalidArgument("-P is not supported rootless yet: publish with "
                              "-p HOSTPORT:PORT", exit_code=125)
    low = unprivileged_port_start()
    tcp: list[str] = []
    udp: list[str] = []
    for key, items in (host.get("PortBindings") or {}).items():
        port, _, proto = key.partition("/")
        for b in items or [{}]:
            hp = (b or {}).get("HostPort") or ""
            if not hp or "-" in hp or "-" in port:
                raise InvalidArgument(f"-p {hp or ''}:{port}: rootless publishing needs one "
                                      "explicit HOSTPORT:PORT", exit_code=125)
            if int(hp) < low:
                raise InvalidArgument(
                    f"cannot publish host port {hp} rootless: ports below {low} need root "
                    f"(net.ipv4.ip_unprivileged_port_start={low})", exit_code=125)
            ip = (b or {}).get("HostIp") or ""
            (udp if proto == "udp" else tcp).append(f"{ip + '/' if ip else ''}{hp}:{port}")
    return (["-t", ",".join(tcp) if tcp else "none"] +
            ["-u", ",".join(udp) if udp else "none"])


class PastaNetwork:
    """What :class:`~berth.container.service.ContainerService` asks of a network service."""

    def __init__(self, runroot: str) -> None:
        self.dir = os.path.join(runroot, "netns")

    def _ns(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    def container_created(self, rec: Any, opts: Any = None) -> None:
        reason = usable()
        if reason:
            raise InvalidArgument(f"the rootless default network needs pasta: {reason}; "
                                  "use --network none or --network host", exit_code=125)
        forwards(rec.config.get("HostConfig") or {})

    def spec_network(self, rec: Any) -> str:
        return self._ns(rec.id)

    def etc_files(self, rec: Any) -> list[dict[str, Any]]:
        host = rec.config["HostConfig"]
        hosts = _HOSTS + f"127.0.1.1\t{rec.config['Hostname']}\n"
        for h in host.get("ExtraHosts") or []:
            name, _, ip = h.partition(":")
            hosts += f"{ip}\t{name}\n"
        try:
            with open("/etc/resolv.conf", encoding="utf-8") as f:
                resolv = "".join(ln for ln in f if not ln.split()[1:2] or
                                 not ln.split()[1].startswith("127."))
        except OSError:
            resolv = ""
        out = []
        for name, text in (("hosts", hosts), ("hostname", rec.config["Hostname"] + "\n"),
                           ("resolv.conf", resolv)):
            path = os.path.join(rec.dir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, 0o644)
            out.append({"type": "bind", "source": path, "destination": f"/etc/{name}"})
        return out

    def container_starting(self, rec: Any) -> None:
        attach(self._ns(rec.id), rec.config.get("HostConfig") or {})

    def container_stopped(self, rec: Any) -> None:
        detach(self._ns(rec.id))

    container_removed = container_stopped

    def display_ports(self, rec: Any) -> list[Any]:
        """Engine API ``Ports`` from the container's ``-p`` (pasta forwards exactly those)."""
        from ..network.ports import PortMapping, display_ports

        if rec.status not in ("running", "paused"):
            return []
        maps = []
        for key, items in (rec.config["HostConfig"].get("PortBindings") or {}).items():
            port, _, proto = key.partition("/")
            for b in items or []:
                if (b or {}).get("HostPort"):
                    maps.append(PortMapping(int(port), proto or "tcp", b.get("HostIp") or "",
                                            int(b["HostPort"])))
        return display_ports(maps, (rec.config.get("ExposedPorts") or {}).keys(),
                             ipv6=os.path.exists("/proc/net/if_inet6"))


class PastaSeat:
    """A build RUN step's own network namespace with pasta (no forwards); ``close`` ends it.

    Duck-types :class:`berth.build.stepnet.StepNetwork` (``netns``, ``ip``, ``close``).
    """

    ip = "127.0.1.1"  # the step's hostname resolves locally, as with host networking

    def __init__(self, runroot: str, cid: str) -> None:
        self.netns = os.path.join(runroot, "netns", cid)
        attach(self.netns, {})

    def close(self) -> None:
        detach(self.netns)


def attach(ns: str, host_config: dict[str, Any]) -> None:
    """Make the network namespace ``ns`` and start pasta on it with ``-p``'s forwards."""
    detach(ns)  # a crash may have left the last one
    _make_netns(ns)
    argv = ["pasta", "--config-net", "--quiet", "--no-map-gw", "-T", "none", "-U", "none",
            *forwards(host_config), "-P", ns + ".pasta", "--netns", ns]
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        detach(ns)
        msg = (p.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeFailure(f"pasta: {msg}")


def detach(ns: str) -> None:
    """Stop pasta and remove the namespace (idempotent)."""
    try:
        with open(ns + ".pasta", encoding="ascii") as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
    from ..container.rootfs import unmount

    if os.path.exists(ns):
        unmount(ns)
    for path in (ns, ns + ".pasta"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _make_netns(path: str) -> None:
    """A new network namespace bind-mounted on ``path`` (a child unshares, then exits)."""
    import ctypes

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "w", encoding="ascii"):
        pass
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            os.write(w, b"ok" if libc.unshare(CLONE_NEWNET) == 0 else b"no")
            signal.pause()
        finally:
            os._exit(0)
    os.close(w)
    try:
        if os.read(r, 2) != b"ok":
            raise RuntimeFailure("cannot create a network namespace")
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(os.fsencode(f"/proc/{pid}/ns/net"), os.fsencode(path), None,
                      MS_BIND, None) != 0:
            raise RuntimeFailure(f"binding the network namespace: "
                                 f"{os.strerror(ctypes.get_errno())}")
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
