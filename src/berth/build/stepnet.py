"""A RUN step's seat on a bridge network: namespace, veth and address, for one step only.

Docker's and Podman's builds give RUN the network ``run`` gets by default (the ``bridge``
network, outbound NAT, the host's resolvers), so ``RUN apt-get update`` just works. A
build step has no container row, so it cannot hold an *endpoint* row the way a container
does; it goes one level lower and calls the network service's own sandbox functions
(:func:`berth.network.sandbox.start`/``stop``, the same calls a container start makes)
under the host-wide network lock, with an address it reserves itself:

* the address is the *highest* free one of the subnet (containers are given the lowest),
  never an endpoint's, and reserved by an ``O_EXCL`` file under
  ``<runroot>/build-net/<network id>/`` holding ``pid cid`` — so two builds never share one;
* :meth:`StepNetwork.close` removes veth, namespace and reservation on every path out; a
  reservation whose pid is dead (a SIGKILLed build) is swept, with its veth and namespace,
  by the next build (:func:`sweep`) and by the next step that takes a seat on that network.

A container allocating an address concurrently does not see these reservations; it takes
the lowest free address, so the two meet only on a nearly full subnet.
"""

from __future__ import annotations

import os
import time
from ipaddress import IPv4Network, ip_address
from typing import TYPE_CHECKING

from berth.errors import BerthError, InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from berth.network.records import NetworkRecord
    from berth.store.store import Store

MODES = ("none", "host")


def resolve_mode(store: Store, mode: str) -> tuple[str, NetworkRecord | None]:
    """``none``/``host``, or ``bridge`` with the bridge network a name/ID stands for."""
    if mode in MODES:
        return mode, None
    from berth.network.service import NetworkService

    net = NetworkService(store).get("bridge" if mode in ("default", "bridge") else mode)
    if net.driver == "host":
        return "host", None
    if net.driver == "null":
        return "none", None
    if net.driver != "bridge":
        raise InvalidArgument(f"network {mode}: driver {net.driver} is not supported by build")
    return "bridge", net


class StepNetwork:
    """Plugged in by the constructor, unplugged by :meth:`close` (idempotent)."""

    def __init__(self, store: Store, cid: str, net: NetworkRecord) -> None:
        from berth.network import sandbox
        from berth.network.lock import network_lock
        from berth.network.records import EndpointRecord
        from berth.network.veth import mac_for_ip

        self.store = store
        self.cid = cid
        self.net = net
        self.ip = ""
        self.netns = ""
        self._dir = os.path.join(store.runroot, "build-net", net.id)
        self._reservation = ""
        with network_lock():
            _sweep_dir(store.runroot, net.id)
            self.ip = self._reserve()
            ep = EndpointRecord(cid, net.id, self.ip, mac_for_ip(self.ip), [], "eth0",
                                time.time())
            try:
                self.netns, _, _ = sandbox.start(
                    store.runroot, cid, [sandbox.Seat(net, ep, True)], [], [], os.devnull)
            except BaseException:
                self._release()
                raise

    @property
    def gateway(self) -> str:
        return self.net.gateway

    def close(self) -> None:
        if not self._reservation:
            return
        from berth.network.lock import network_lock

        with network_lock():
            _teardown(self.store.runroot, self.cid, self.net.id)
            self._release()

    # -- addresses --------------------------------------------------------------------
    def _reserve(self) -> str:
        from berth.network.service import NetworkService

        subnet = IPv4Network(self.net.subnet, strict=False)
        taken = {e.ip for e in NetworkService(self.store).endpoints(network_id=self.net.id)}
        taken.add(self.net.gateway)
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        taken.update(os.listdir(self._dir))
        last = int(subnet.broadcast_address) - 1
        first = int(subnet.network_address) + 1
        for n in range(last, first - 1, -1):
            addr = str(ip_address(n))
            if addr in taken:
                continue
            path = os.path.join(self._dir, addr)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {self.cid}\n")
            self._reservation = path
            return addr
        raise BerthError(f"no free address on network {self.net.name} for a build step")

    def _release(self) -> None:
        if self._reservation:
            try:
                os.unlink(self._reservation)
            except FileNotFoundError:
                pass
            self._reservation = ""

def sweep(store: Store) -> None:
    """Undo the seats of builds that died (SIGKILL, power loss of the CLI only): their
    reservation, veth and namespace. Cheap when there are none (one ``listdir``)."""
    top = os.path.join(store.runroot, "build-net")
    try:
        nets = os.listdir(top)
    except FileNotFoundError:
        return
    dead = [n for n in nets if _dead_entries(os.path.join(top, n))]
    if not dead:
        return
    from berth.network.lock import network_lock

    with network_lock():
        for network_id in dead:
            _sweep_dir(store.runroot, network_id)


def _dead_entries(d: str) -> list[tuple[str, str]]:
    """(reservation path, cid) of reservations whose build process is gone."""
    out: list[tuple[str, str]] = []
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return out
    for name in names:
        path = os.path.join(d, name)
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                pid_text, _, cid = f.read().strip().partition(" ")
        except OSError:
            continue
        if cid and not _alive(pid_text):
            out.append((path, cid))
    return out


def _sweep_dir(runroot: str, network_id: str) -> None:
    """Sweep one network's dead reservations (network lock held)."""
    for path, cid in _dead_entries(os.path.join(runroot, "build-net", network_id)):
        _teardown(runroot, cid, network_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _teardown(runroot: str, cid: str, network_id: str) -> None:
    from berth.network import sandbox

    sandbox.stop(runroot, cid, [network_id], None, had_ports=False)


def _alive(pid_text: str) -> bool:
    """Whether the build that wrote a reservation still runs (a zombie does not)."""
    from berth.procs import pid_alive

    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return pid == os.getpid() or pid_alive(pid)
