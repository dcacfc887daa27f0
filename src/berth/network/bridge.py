"""The Linux bridge behind a network: one per network, carrying the gateway address.

Every function is idempotent because start paths are retried after crashes and several
containers race to bring the same network up: "make it so" beats "create or fail".
pyroute2 is imported inside the functions so ``--network none`` never loads it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

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


def _ipr() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def link_index(name: str) -> int | None:
    """The interface index of ``name`` in the host namespace, or None."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def ensure_bridge(name: str, gateway: str, prefixlen: int, *, mtu: int | None = None) -> int:
    """Make ``name`` exist as an up bridge holding ``gateway/prefixlen``; return its index."""
    from pyroute2.netlink.exceptions import NetlinkError

    if len(name) > IFNAMSIZ:
        raise BerthError(f"bridge name {name!r} is longer than {IFNAMSIZ} characters")
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                extra = {"mtu": mtu} if mtu else {}
                ipr.link("add", ifname=name, kind="bridge", **extra)
            except NetlinkError as e:
                if e.code != 17:  # EEXIST: a concurrent start won the race; fine
                    raise BerthError(f"creating bridge {name}: {e}") from e
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=index, family=2)}
        if (gateway, prefixlen) not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            except NetlinkError as e:
                if e.code != 17:
                    raise BerthError(f"adding {gateway}/{prefixlen} to {name}: {e}") from e
        ipr.link("set", index=index, state="up")
    return index


def delete_bridge(name: str) -> bool:
    """Remove the bridge (ports detach by themselves); False when it was already gone."""
    from pyroute2.netlink.exceptions import NetlinkError

    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as e:
            if e.code == 19:  # ENODEV: removed concurrently
                return False
            raise BerthError(f"deleting bridge {name}: {e}") from e
    return True


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
