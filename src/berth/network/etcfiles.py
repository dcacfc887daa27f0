"""Writing a networked container's ``/etc/hosts``, ``hostname`` and ``resolv.conf``.

On a user-defined network, containers find each other through aardvark-dns (:mod:`.dns`,
the ``nameserver`` of their resolv.conf is the network's gateway) and, as a fallback that
works without it, through ``/etc/hosts``, which berth rewrites for *every* container on
the network whenever a peer starts, stops, connects, disconnects or is removed. Peers
listed are the running ones (name, ``--network-alias`` es, short ID), as Docker's DNS
would answer. The default ``bridge`` lists no peers (Docker's has no name resolution
either) and keeps the host's resolvers.

The files are bind-mounted into the container, so they are rewritten *in place* (same
inode): an atomic rename would leave the container looking at the old inode forever.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from berth.etcbinds import bind_etc_files

from .hostsfiles import parse_add_host, read_host_resolv_conf, render_hosts, render_resolv_conf


def resolv_conf(host_config: dict[str, Any], dns_server: str | None = None) -> str:
    """The container's resolv.conf from the host's and ``--dns``/``--dns-search``/-option.

    With ``dns_server`` (a user network's aardvark-dns) that is the only nameserver, as
    Docker's 127.0.0.11; the ``--dns`` servers are then where the server forwards.
    """
    host = read_host_resolv_conf()
    search = host_config.get("DnsSearch") or None
    options = host_config.get("DnsOptions") or None
    text = render_resolv_conf(host, dns=host_config.get("Dns") or None, dns_search=search,
                              dns_options=options)  # also validates --dns
    if dns_server is None:
        return text
    return render_resolv_conf(host, dns=[dns_server], dns_search=search,
                              dns_options=options)


def hosts_text(config: dict[str, Any], ip: str | None, gateway: str | None,
               peers: Iterable[tuple[str, list[str]]]) -> str:
    """hosts for a container from its stored config, its primary address and its peers."""
    extra = [parse_add_host(h) for h in config.get("HostConfig", {}).get("ExtraHosts") or []]
    return render_hosts(config.get("Hostname") or "", ip, domainname=config.get("Domainname")
                        or "", extra_hosts=extra, gateway=gateway, peers=peers)


def write_etc_files(cdir: str, config: dict[str, Any], ip: str | None, gateway: str | None,
                    peers: Iterable[tuple[str, list[str]]], *,
                    dns_server: str | None = None) -> list[dict[str, Any]]:
    """Write all three files into the container dir; the bind mounts for the spec."""
    files = {"hosts": hosts_text(config, ip, gateway, peers),
             "hostname": (config.get("Hostname") or "") + "\n",
             "resolv.conf": resolv_conf(config.get("HostConfig", {}), dns_server)}
    return bind_etc_files(cdir, files)


def peer_names(name: str, cid: str, aliases_json: str) -> list[str]:
    """What a peer answers to: its name, its aliases on that network, its short ID."""
    return [name, *json.loads(aliases_json or "[]"), cid[:12]]
