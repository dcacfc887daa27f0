"""The rootless default network: one network namespace per container, wired by ``pasta``.

Bridges, veths and nftables need host root; a rootless container instead gets its own
network namespace (owned by the store's user namespace) with a tap device that ``pasta``
(Debian ``passt``) runs in user space, translating to ordinary sockets of the user on the
host, as Podman's default rootless network does. Lifecycle, per container:

* start: a child ``unshare``s a network namespace, which is bind-mounted on
  ``<runroot>/netns/<id>`` (the spec names that path), then ``pasta --config-net`` attaches
  to it with the ``-p``/``-P`` forwards decided then (:mod:`.pasta_ports`);
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
        from .pasta_ports import check

        check(rec.config)

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
        from ..etcbinds import bind_etc_files

        return bind_etc_files(rec.dir, {"hosts": hosts, "hostname": rec.config["Hostname"] + "\n",
                                        "resolv.conf": resolv})

    def container_starting(self, rec: Any) -> None:
        from .pasta_ports import decide, pasta_args

        ns = self._ns(rec.id)
        detach(ns)  # a crash may have left the last one (and its recorded ports)
        attach(ns, pasta_args(decide(rec.config, ns)))

    def container_stopped(self, rec: Any) -> None:
        detach(self._ns(rec.id))

    container_removed = container_stopped

    def display_ports(self, rec: Any) -> list[Any]:
        """Engine API ``Ports``: the forwards decided at start (``-p``, ranges, ``-P``)."""
        from ..network.ports import display_ports
        from .pasta_ports import recorded

        maps = recorded(self._ns(rec.id)) if rec.status in ("running", "paused") else []
        return display_ports(maps, (rec.config.get("ExposedPorts") or {}).keys(),
                             ipv6=os.path.exists("/proc/net/if_inet6"))


class PastaSeat:
    """A build RUN step's own network namespace with pasta (no forwards); ``close`` ends it.

    Duck-types :class:`berth.build.stepnet.StepNetwork` (``netns``, ``ip``, ``close``).
    """

    ip = "127.0.1.1"  # the step's hostname resolves locally, as with host networking

    def __init__(self, runroot: str, cid: str) -> None:
        self.netns = os.path.join(runroot, "netns", cid)
        detach(self.netns)  # a crash may have left the last one
        attach(self.netns, ["-t", "none", "-u", "none"])

    def close(self) -> None:
        detach(self.netns)


def attach(ns: str, forward: list[str]) -> None:
    """Make the network namespace ``ns`` and start pasta on it with ``forward``'s options."""
    _make_netns(ns)  # the caller detached what a crash may have left
    argv = ["pasta", "--config-net", "--quiet", "--no-map-gw", "-T", "none", "-U", "none",
            *forward, "-P", ns + ".pasta", "--netns", ns]
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
    for path in (ns, ns + ".pasta", ns + ".ports"):
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
