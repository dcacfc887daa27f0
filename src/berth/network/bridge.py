"""The Linux bridge behind a network: one per network, carrying the gateway address.

Every function is idempotent because start paths are retried after crashes and several
containers race to bring the same network up: "make it so" beats "create or fail".
Netlink goes through :mod:`.rtnl` (imported inside the functions, so ``--network none``
never loads it): a bridge start must cost about nothing next to ``--network none``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket

from ..errors import BerthError

DEFAULT_BRIDGE = "berth0"
IFNAMSIZ = 15


def bridge_name(network_id: str, *, default: bool = False) -> str:
    """``berth0`` for the default network, ``brt-<11 hex>`` for user networks (IFNAMSIZ: 15 chars).

    Derived from the network ID so that a restart finds the same device without storing it
    (it may still be stored; it just never disagrees). ``brt-`` keeps clear of Docker's
    ``br-`` devices on hosts running both.
    """
    if default:
        return DEFAULT_BRIDGE
    digest = network_id if all(c in "0123456789abcdef" for c in network_id) and \
        len(network_id) >= 12 else hashlib.sha256(network_id.encode()).hexdigest()
    return f"brt-{digest[:11]}"


def link_index(name: str) -> int | None:
    """The interface index of ``name`` in the host namespace, or None (one ioctl)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def ensure_bridge(name: str, gateway: str, prefixlen: int, *, mtu: int | None = None) -> int:
    """Make ``name`` exist as an up bridge holding ``gateway/prefixlen``; return its index.

    No read-then-write: one netlink batch says "create (EEXIST is fine), address it
    (EEXIST is fine), up". That is idempotent, race-free between concurrent starts, and
    costs one round trip whether or not the bridge was there.

    The bridge gets a fixed MAC (Docker's ``02:42`` + gateway octets), as dockerd sets
    one: a bridge without one takes the lowest MAC of its ports, so it changed whenever
    a container came or went, and the other containers' ARP entry for the gateway
    pointed nowhere for up to 30 s (DNS on the gateway and all outbound traffic stalled).
    """
    from .rtnl import NetlinkError, Rtnl, new_addr, new_bridge, set_up
    from .veth import mac_for_ip

    if len(name) > IFNAMSIZ:
        raise BerthError(f"bridge name {name!r} is longer than {IFNAMSIZ} characters")
    with Rtnl() as nl:
        index = link_index(name)
        try:
            if index is None:
                nl.request([new_bridge(name, mtu=mtu, mac=mac_for_ip(gateway))],
                           ok=(errno.EEXIST,))
                index = link_index(name)
                if index is None:
                    raise BerthError(f"creating bridge {name}: it vanished right away")
            nl.request([new_addr(index, gateway, prefixlen), set_up(name)],
                       ok=(errno.EEXIST,))
        except NetlinkError as e:
            raise BerthError(f"setting up bridge {name} ({gateway}/{prefixlen}): "
                             f"{e.strerror}") from e
    return index


def delete_bridge(name: str) -> bool:
    """Remove the bridge (ports detach by themselves); False when it was already gone."""
    from .rtnl import NetlinkError, Rtnl, del_link

    try:
        with Rtnl() as nl:
            code, = nl.request([del_link(name)], ok=(errno.ENODEV,))
    except NetlinkError as e:
        raise BerthError(f"deleting bridge {name}: {e.strerror}") from e
    return code == 0


def enable_route_localnet(ifname: str) -> None:
    """Let DNAT'ed loopback traffic (127.0.0.1:<published port>) leave through ``ifname``.

    The kernel drops packets with a 127/8 source on a non-loopback device unless the
    device has ``route_localnet``; dockerd sets it on its bridges when its userland proxy
    is off. Per bridge only, never host-wide.
    """
    path = f"/proc/sys/net/ipv4/conf/{ifname}/route_localnet"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError as e:
        raise BerthError(f"cannot set route_localnet on {ifname}: {e}") from None


def enable_forwarding(ifname: str) -> None:
    """Let IPv4 packets arriving on ``ifname`` be routed onward (per interface only).

    The kernel decides forwarding by the *input* device's ``forwarding`` flag, so turning it
    on for the bridge lets containers reach out without flipping the host-wide
    ``net.ipv4.ip_forward`` (which also turns it on for every other interface). Return
    traffic and published ports reached from outside still need it on the uplink; that
    host-wide decision belongs to the engine's configuration, not to this module.
    """
    path = f"/proc/sys/net/ipv4/conf/{ifname}/forwarding"
    if not os.path.exists(path):
        raise BerthError(f"no such interface: {ifname}")
    with open(path, "w") as f:
        f.write("1")
