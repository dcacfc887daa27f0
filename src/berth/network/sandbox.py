"""A running container's network sandbox: its namespace, veths, published ports, proxy.

Kernel state only; the service decides *what* (from the DB) and holds the host-wide
network lock around these calls. Everything here can be found again from IDs alone --
the namespace file from the container ID, each veth from (container, network), firewall
rules by their ``ctr:<id>`` owner tag, the proxy by its ``--for ctr:<id>`` argument --
so a teardown after a SIGKILLed CLI finds all of it even if nothing was recorded.

Order matters at teardown: proxy (frees the host ports), rules, veths (synchronously,
before the namespace, whose devices the kernel would otherwise free later), namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from .netns import create_netns, delete_netns, netns_path
from .records import EndpointRecord, NetworkRecord

if TYPE_CHECKING:  # pragma: no cover - ports (regexes, random) loads only when used
    from .ports import PortMapping, PortRequest


@dataclass(frozen=True)
class Seat:
    """One endpoint to plug in: which network, which address, whether it routes."""

    network: NetworkRecord
    endpoint: EndpointRecord
    primary: bool


def owner(cid: str) -> str:
    return f"ctr:{cid}"


def bring_up_network(net: NetworkRecord) -> None:
    """The network's bridge with its gateway address, forwarding and masquerade.

    Idempotent (re-run at every start: a reboot removes bridges, not DB rows). The
    masquerade rule is (re)checked only when the bridge had to be made, which keeps nft
    out of the common start path.
    """
    from . import bridge

    existed = bridge.link_index(net.bridge) is not None
    bridge.ensure_bridge(net.bridge, net.gateway, net.prefixlen)
    if not existed:
        from .firewall import open_firewall  # only here: nft is not on the common path

        if not net.internal:
            bridge.enable_forwarding(net.bridge)
            bridge.enable_route_localnet(net.bridge)
        open_firewall().ensure_network(f"net:{net.id}", net.subnet, net.bridge,
                                       internal=net.internal)


def tear_down_network(net: NetworkRecord) -> None:
    """Rules tagged for the network, then its bridge (missing pieces are fine)."""
    from . import bridge
    from .firewall import open_firewall

    open_firewall().remove_owner(f"net:{net.id}")  # internal ones have isolation rules
    bridge.delete_bridge(net.bridge)


def plug(path: str, cid: str, seat: Seat) -> None:
    """One veth from the seat's bridge into the namespace at ``path``."""
    from .veth import attach, veth_name

    net, ep = seat.network, seat.endpoint
    gw = net.gateway if seat.primary and not net.internal else None
    attach(path, net.bridge, veth_name(cid, net.id), ep.ip, net.prefixlen, gw,
           ifname=ep.ifname, mac=ep.mac)


def unplug(cid: str, network_id: str) -> None:
    from .veth import detach, veth_name

    detach(veth_name(cid, network_id))


def start(runroot: str, cid: str, seats: Sequence[Seat], requests: Sequence[PortRequest],
          reserved: Iterable[tuple[str, int, str]], log_path: str
          ) -> tuple[str, int | None, list[PortMapping]]:
    """Namespace + veths + ports; (netns path, proxy pid, mappings). Undone on failure."""
    path = create_netns(netns_path(runroot, cid))
    try:
        for seat in seats:
            bring_up_network(seat.network)
            plug(path, cid, seat)
        primary = next((s for s in seats if s.primary), None)
        mappings: list[PortMapping] = []
        pid = None
        if requests and primary is not None and not primary.network.internal:
            mappings, pid = publish(cid, primary.network, primary.endpoint.ip, requests,
                                    reserved, log_path)
        return path, pid, mappings
    except BaseException:
        stop(runroot, cid, [s.network.id for s in seats], None, had_ports=bool(requests))
        raise


def publish(cid: str, net: NetworkRecord, container_ip: str,
            requests: Sequence[PortRequest], reserved: Iterable[tuple[str, int, str]],
            log_path: str) -> tuple[list[PortMapping], int | None]:
    """Choose host ports and DNAT them, loopback included: no process per container.

    Host ports DNAT'ed by *any* berth root (the nft table is host-wide) count as taken,
    so two roots never claim one port. Only IPv6 host IPs start the userland proxy.
    """
    from . import bridge
    from .firewall import PortForward, open_firewall, published_ports
    from .ports import allocate

    fw = open_firewall()
    have = fw.tags()
    mine = owner(cid)
    others = published_ports(t for t in have if not t.startswith(mine + "|"))
    mappings = allocate(requests, [*reserved, *others])
    forwards = [PortForward(m.proto, m.host_ip, m.host_port, container_ip, m.container_port)
                for m in mappings]
    if any(_needs_dnat(m.host_ip) for m in mappings):
        bridge.enable_route_localnet(net.bridge)
        fw.add_port_forwards(mine, forwards, network=(f"net:{net.id}", net.subnet,
                                                      net.bridge), have=have)
    pid = None
    maps = [m for m in mappings if not _needs_dnat(m.host_ip) and m.proto in ("tcp", "udp")]
    if maps:
        from .proxy import ProxyMap, start_proxy

        pid = start_proxy([ProxyMap(m.proto, m.host_ip, m.host_port, container_ip,
                                    m.container_port) for m in maps],
                          log_path=log_path, tag=mine)
    return mappings, pid


def _needs_dnat(host_ip: str) -> bool:
    """Every IPv4 host IP (loopback too) is DNAT'ed; IPv6 ones need the proxy."""
    if not host_ip:
        return True
    try:
        IPv4Address(host_ip)
        return True
    except ValueError:
        return False


def stop(runroot: str, cid: str, network_ids: Iterable[str], proxy_pid: int | None, *,
         had_ports: bool, dnat: bool = True) -> None:
    """Tear down everything :func:`start` may have made; safe to repeat.

    Without published ports neither the proxy module (it imports asyncio, tens of ms)
    nor the firewall is touched: a plain container's teardown is one netlink request
    and an unmount.
    """
    if proxy_pid or had_ports:
        from .proxy import stop_proxy
    if proxy_pid:
        stop_proxy(proxy_pid)
    if had_ports:
        for pid in find_proxies(owner(cid)):
            stop_proxy(pid)
        if dnat:
            from .firewall import open_firewall

            open_firewall().remove_owner(owner(cid))
    path = netns_path(runroot, cid)
    ids = list(network_ids)
    if ids:
        for nid in ids:
            unplug(cid, nid)
    delete_netns(path)


def find_proxies(tag: str) -> list[int]:
    """Proxies started ``--for tag`` (the fallback when their pid was never recorded)."""
    from berth.procs import cmdlines

    needle = f"--for\0{tag}\0".encode()
    return [pid for pid, cmd in cmdlines()
            if b"berth.network.proxy" in cmd and needle in cmd + b"\0"]
