"""The veth pair that plugs a container's namespace into a bridge.

The peer is created *directly inside* the namespace under its final name (``eth0``):
creating it on the host first would clash with the host's own ``eth0`` and leave a
window where a crash strands a stray device on the host. The host end is named from the
container and network IDs so that stop can find it again without stored state.

MAC addresses follow Docker (``02:42`` + the four IPv4 octets): stable across restarts,
so neighbours' ARP caches stay right when an address is reused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address

from ..errors import BerthError


@dataclass(frozen=True)
class Endpoint:
    """What :func:`attach` set up; enough for ``inspect`` and for :func:`detach`."""

    host_ifname: str
    ifname: str
    address: str
    prefixlen: int
    gateway: str
    mac: str


def veth_name(container_id: str, network_id: str) -> str:
    """Host-side name: ``veth`` + 11 hex of sha256(container, network) (15 chars max)."""
    return "veth" + hashlib.sha256(f"{container_id}\0{network_id}".encode()).hexdigest()[:11]


def mac_for_ip(address: str) -> str:
    """Docker's scheme: locally administered ``02:42`` followed by the IPv4 octets."""
    octets = IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


def attach(netns_path: str, bridge: str, host_ifname: str, address: str, prefixlen: int,
           gateway: str | None, *, ifname: str = "eth0", mac: str | None = None,
           mtu: int | None = None) -> Endpoint:
    """Create the pair, enslave the host end to ``bridge``, configure the container end.

    Inside the namespace: ``lo`` up, ``ifname`` with ``address/prefixlen`` and ``mac``,
    default route via ``gateway`` (none when ``gateway`` is None, as for an internal
    network). On any failure the host end is deleted again, which takes the peer with it.

    Two netlink round trips in all: the pair is made up, enslaved and with its peer
    already in the namespace by one request (:func:`berth.network.rtnl.new_veth`); the
    inside is configured by one batch on a socket opened in the namespace.
    """
    from .rtnl import NetlinkError, Rtnl, new_veth

    mac = mac or mac_for_ip(address)
    try:
        master = socket.if_nametoindex(bridge)
    except OSError:
        raise BerthError(f"bridge {bridge} does not exist") from None
    nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Rtnl() as nl:
            try:
                nl.request([new_veth(host_ifname, master, ifname, nsfd, mac, mtu=mtu)])
            except NetlinkError as e:
                raise BerthError(f"creating veth {host_ifname} for {netns_path}: "
                                 f"{e.strerror}") from e
            try:
                _configure_inside(netns_path, ifname, address, prefixlen, gateway)
            except BaseException:
                detach(host_ifname)
                raise
    finally:
        os.close(nsfd)
    return Endpoint(host_ifname, ifname, address, prefixlen, gateway or "", mac)


def _configure_inside(netns_path: str, ifname: str, address: str, prefixlen: int,
                      gateway: str | None) -> None:
    """``lo`` and ``ifname`` up, the address on ``ifname``, the default route.

    One batch on a netlink socket opened inside the namespace by a thread that entered it
    (no helper process, no pyroute2 ``NetNS``).
    """
    from .rtnl import NetlinkError, Rtnl, new_addr, new_default_route, run_in_netns, set_up

    def inside() -> None:
        idx = socket.if_nametoindex(ifname)  # resolved in the namespace: this thread is in it
        msgs = [set_up("lo"), set_up(ifname), new_addr(idx, address, prefixlen)]
        if gateway:
            msgs.append(new_default_route(gateway))
        with Rtnl() as ns:
            ns.request(msgs)

    try:
        run_in_netns(netns_path, inside)
    except (NetlinkError, OSError) as e:
        raise BerthError(f"configuring {ifname} ({address}/{prefixlen}, gateway "
                         f"{gateway or 'none'}) in {netns_path}: {e.strerror or e}") from e


def detach(host_ifname: str) -> bool:
    """Delete the pair by its host end (synchronously); False if it was already gone.

    Deleting before the namespace is unpinned matters: namespace teardown frees its devices
    later, on a kernel work queue, and a leak check (or the next start) may look sooner.
    """
    from .rtnl import NetlinkError, Rtnl, del_link

    try:
        with Rtnl() as nl:
            code, = nl.request([del_link(host_ifname)], ok=(errno.ENODEV,))
    except NetlinkError as e:
        raise BerthError(f"deleting veth {host_ifname}: {e.strerror}") from e
    return code == 0
