"""IP address management: which subnet a network gets, and which address a container gets.

The database is the one source of truth for addresses in use, so nothing here remembers
anything: callers pass the subnets of the other berth networks and the IPs already handed
out, and get back a choice. Subnets are also checked against the host's own routes and
addresses, because a bridge on a subnet the host already routes elsewhere (a VPN, Docker's
``docker0``, the LAN) silently steals that traffic.

Defaults follow Docker so that users' expectations (``172.17.0.0/16`` for ``bridge``) hold:
user networks take ``172.18.0.0/16`` .. ``172.31.0.0/16``, then ``192.168.0.0/20`` blocks.
The gateway is the first host address (``.1``), as in Docker.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

from ..errors import Conflict, InvalidArgument

DEFAULT_BRIDGE_SUBNET = IPv4Network("172.17.0.0/16")

#: (base, prefix length of each carved block), tried in order, like dockerd's default pools.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{i}.0.0/16", 16) for i in range(17, 32)),
    ("192.168.0.0/16", 20),
)


def _network(text: str | IPv4Network) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False) if isinstance(text, str) else text
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"IPv6 subnets are not supported: {text}")
    return net


def host_networks(route_path: str = "/proc/net/route",
                  fib_path: str = "/proc/net/fib_trie") -> list[IPv4Network]:
    """The IPv4 networks the host already routes or owns (default routes excluded).

    Read from /proc rather than netlink so that IPAM never needs pyroute2.
    """
    nets: list[IPv4Network] = []
    try:
        with open(route_path) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) < 8:
                    continue
                dest = IPv4Address(struct.pack("<I", int(fields[1], 16)))
                mask = IPv4Address(struct.pack("<I", int(fields[7], 16)))
                net = IPv4Network(f"{dest}/{mask}", strict=False)
                if net.prefixlen > 0:
                    nets.append(net)
    except OSError:
        pass
    nets.extend(IPv4Network(f"{a}/32") for a in _local_addresses(fib_path))
    return nets


def _local_addresses(fib_path: str) -> set[str]:
    """Addresses marked ``/32 host LOCAL`` in the FIB (covers addresses without a route)."""
    found: set[str] = set()
    try:
        with open(fib_path) as f:
            last = ""
            for line in f:
                s = line.strip()
                if s.startswith("|--"):
                    last = s[3:].strip()
                elif s.startswith("/32 host LOCAL") and last:
                    found.add(last)
    except OSError:
        pass
    return found


def _overlaps(net: IPv4Network, others: Iterable[IPv4Network]) -> bool:
    return any(net.overlaps(o) for o in others)


def candidate_subnets(pools: Iterable[tuple[str, int]] = DEFAULT_POOLS) -> Iterator[IPv4Network]:
    """Every block the pools can hand out, in order."""
    for base, prefix in pools:
        yield from _network(base).subnets(new_prefix=prefix)


def choose_subnet(used: Iterable[str | IPv4Network] = (), *, default_bridge: bool = False,
                  pools: Iterable[tuple[str, int]] = DEFAULT_POOLS,
                  avoid: Iterable[IPv4Network] | None = None) -> IPv4Network:
    """Pick the first block that clashes with neither ``used`` nor the host.

    ``default_bridge`` asks for Docker's ``172.17.0.0/16`` first; user networks skip it so
    that creating a network never takes the default bridge's place. ``avoid`` replaces the
    host's routes (tests pass their own view).
    """
    taken = [_network(u) for u in used]
    host = list(host_networks() if avoid is None else avoid)
    if default_bridge and not _overlaps(DEFAULT_BRIDGE_SUBNET, taken + host):
        return DEFAULT_BRIDGE_SUBNET
    for net in candidate_subnets(pools):
        if net == DEFAULT_BRIDGE_SUBNET and not default_bridge:
            continue
        if not _overlaps(net, taken) and not _overlaps(net, host):
            return net
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the "
                   "defaults to assign to the network")


def gateway_for(subnet: str | IPv4Network) -> IPv4Address:
    """The first host address: where containers send everything not on their link."""
    net = _network(subnet)
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {net} is too small for a gateway and a container")
    return net.network_address + 1


#: Ranges a bridge must never claim: its gateway address would shadow the host's own
#: loopback, link-local, multicast, "this network" or reserved/broadcast addresses.
_FORBIDDEN: tuple[tuple[IPv4Network, str], ...] = (
    (IPv4Network("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"),
    (IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16)"),
    (IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (IPv4Network("240.0.0.0/4"), "reserved and broadcast (240.0.0.0/4)"),
)


def validate_subnet(subnet: str, *, gateway: str | None = None, ip_range: str | None = None,
                    used: Iterable[str | IPv4Network] = (),
                    avoid: Iterable[IPv4Network] | None = None
                    ) -> tuple[IPv4Network, IPv4Address]:
    """Check a user's ``--subnet``/``--gateway``/``--ip-range``; return (subnet, gateway).

    Overlap with another berth network is refused with Docker's wording. Unlike Docker,
    a subnet the host already routes or owns an address in (``avoid``: the host's view by
    default), or one in a special range (loopback, link-local, multicast, 0.0.0.0/8,
    240.0.0.0/4), is refused too: ``--subnet 127.0.0.0/8`` would put 127.0.0.1/8 on a
    bridge and a LAN's subnet would steal the host's traffic to it.
    """
    net = _network(subnet)
    for special, what in _FORBIDDEN:
        if net.overlaps(special):
            raise InvalidArgument(f"invalid subnet {net}: it overlaps the {what} range")
    if _overlaps(net, [_network(u) for u in used]):
        raise Conflict("Pool overlaps with other one on this address space")
    host = list(host_networks() if avoid is None else avoid)
    clash = next((h for h in host if net.overlaps(h)), None)
    if clash is not None:
        raise Conflict(f"Pool overlaps with the host's route or address {clash}: refusing "
                       f"subnet {net}")
    if ip_range is not None and not _network(ip_range).subnet_of(net):
        raise InvalidArgument(f"invalid ip-range {ip_range}: it must be in subnet {net}")
    if gateway is None:
        return net, gateway_for(net)
    try:
        gw = IPv4Address(gateway)
    except ValueError:
        raise InvalidArgument(f"invalid gateway address {gateway}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"no matching subnet for gateway {gateway}")
    return net, gw


class IPPool:
    """The free addresses of one subnet, built fresh from the DB's view each time.

    Allocation takes the lowest free address (deterministic, easy to reason about in
    tests); ``release`` exists so a caller that allocates several endpoints in one
    transaction can undo a partial attempt without re-reading the database.
    """

    def __init__(self, subnet: str | IPv4Network, used: Iterable[str] = (), *,
                 gateway: str | IPv4Address | None = None, ip_range: str | None = None) -> None:
        self.subnet = _network(subnet)
        self.gateway = IPv4Address(str(gateway)) if gateway else gateway_for(self.subnet)
        self.range = _network(ip_range) if ip_range else self.subnet
        self.used: set[IPv4Address] = {IPv4Address(u) for u in used}

    def _reserved(self, ip: IPv4Address) -> bool:
        return ip in (self.subnet.network_address, self.subnet.broadcast_address,
                      self.gateway) or ip in self.used

    def allocate(self, requested: str | None = None) -> IPv4Address:
        """Hand out ``requested`` if free, else the lowest free address in the range."""
        if requested is not None:
            try:
                ip = IPv4Address(requested)
            except ValueError:
                raise InvalidArgument(f"invalid IPv4 address: {requested}") from None
            if ip not in self.subnet:
                raise InvalidArgument(f"no configured subnet contains IP address {requested}")
            if self._reserved(ip):
                raise Conflict("Address already in use")
            self.used.add(ip)
            return ip
        for ip in self.range.hosts() if self.range.prefixlen < 31 else self.range:
            if ip in self.subnet and not self._reserved(ip):
                self.used.add(ip)
                return ip
        raise Conflict(f"no available IPv4 addresses on this network's address pools: "
                       f"{self.subnet}")

    def release(self, ip: str | IPv4Address) -> None:
        """Give an address back (no error if it was not held: release is idempotent)."""
        self.used.discard(IPv4Address(str(ip)))


def is_ipv4(text: str) -> bool:
    """True for a dotted-quad IPv4 address (used to tell nft rule families apart)."""
    try:
        socket.inet_pton(socket.AF_INET, text)
        return True
    except OSError:
        return False
