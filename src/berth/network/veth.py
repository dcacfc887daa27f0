"""The veth pair that plugs a container's namespace into a bridge.

The peer is created *directly inside* the namespace under its final name (``eth0``):
creating it on the host first would clash with the host's own ``eth0`` and leave a
window where a crash strands a stray device on the host. The host end is named from the
container and network IDs so that stop can find it again without stored state.

MAC addresses follow Docker (``02:42`` + the four IPv4 octets): stable across restarts,
so neighbours' ARP caches stay right when an address is reused.
"""

from __future__ import annotations

import hashlib
import os
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
    """
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    mac = mac or mac_for_ip(address)
    extra = {"mtu": mtu} if mtu else {}
    nsfd = os.open(netns_path, os.O_RDONLY)
    try:
        with IPRoute() as ipr:
            br = ipr.link_lookup(ifname=bridge)
            if not br:
                raise BerthError(f"bridge {bridge} does not exist")
            try:
                ipr.link("add", ifname=host_ifname, kind="veth", **extra,
                         peer={"ifname": ifname, "net_ns_fd": nsfd, "address": mac, **extra})
            except NetlinkError as e:
                raise BerthError(f"creating veth {host_ifname} for {netns_path}: {e}") from e
            idx = ipr.link_lookup(ifname=host_ifname)[0]
            try:
                ipr.link("set", index=idx, master=br[0], state="up")
                _configure_inside(netns_path, ifname, address, prefixlen, gateway)
            except BaseException:
                ipr.link("del", index=idx)
                raise
    finally:
        os.close(nsfd)
    return Endpoint(host_ifname, ifname, address, prefixlen, gateway or "", mac)


def _configure_inside(netns_path: str, ifname: str, address: str, prefixlen: int,
                      gateway: str | None) -> None:
    from pyroute2 import IPRoute

    # flags=0: never let pyroute2 create a namespace that should already exist.
    with IPRoute(netns=netns_path, flags=0) as ns:
        lo = ns.link_lookup(ifname="lo")[0]
        ns.link("set", index=lo, state="up")
        idx = ns.link_lookup(ifname=ifname)[0]
        ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ns.link("set", index=idx, state="up")
        if gateway:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)


def detach(host_ifname: str) -> bool:
    """Delete the pair by its host end (synchronously); False if it was already gone.

    Deleting before the namespace is unpinned matters: namespace teardown frees its devices
    later, on a kernel work queue, and a leak check (or the next start) may look sooner.
    """
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=host_ifname)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as e:
            if e.code == 19:
                return False
            raise BerthError(f"deleting veth {host_ifname}: {e}") from e
    return True
