"""The container's ``/etc/hosts`` and ``/etc/resolv.conf``, rendered as Docker does.

Pure text in, text out: the caller writes the files (atomically) into the container dir
and bind-mounts them, and re-renders ``hosts`` when peers on a user network come and go
(berth has no embedded DNS server, so peers are found through ``hosts``).

hosts layout (Docker's order): the localhost block, ``--add-host`` entries, the
container's own address and hostname, then peers (``IP\\tname alias...``).

resolv.conf: Docker copies the host's file, drops loopback nameservers (they would point
at the container itself) and, if none remain, adds public resolvers. This host has no way
out to them, so the fallback is empty by default: a resolv.conf with no nameserver is
more honest than one that times out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import ip_address

from ..errors import InvalidArgument

HOST_GATEWAY = "host-gateway"

_LOCALHOST_V4 = [("127.0.0.1", "localhost")]
_LOCALHOST_V6 = [
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
]


def parse_add_host(value: str) -> tuple[str, str]:
    """``--add-host name=ip`` or ``name:ip`` (IPv6 may be bracketed) -> (name, ip).

    The IP may be ``host-gateway``; it stays symbolic until :func:`render_hosts` knows the
    gateway. Errors use Docker's wording.
    """
    sep = "=" if "=" in value else ":"
    name, found, ip = value.partition(sep)
    name, ip = name.strip(), ip.strip()
    if not found or not name or not ip:
        raise InvalidArgument(f"bad format for add-host: {value!r}")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip != HOST_GATEWAY:
        try:
            ip = str(ip_address(ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address in add-host: {ip!r}") from None
    return name, ip


def render_hosts(hostname: str, ip: str | None = None, *, domainname: str = "",
                 extra_hosts: Iterable[tuple[str, str]] = (), gateway: str | None = None,
                 peers: Iterable[tuple[str, Sequence[str]]] = (), ipv6: bool = True) -> str:
    """The text of ``/etc/hosts``.

    ``ip`` is None for ``--network none`` (no own line, as in Docker). ``host-gateway``
    resolves to ``gateway`` -- the bridge's address, which is the host as seen from the
    container. ``peers`` are ``(ip, [name, alias, ...])`` of other containers on the
    same user networks.
    """
    records = list(_LOCALHOST_V4) + (list(_LOCALHOST_V6) if ipv6 else [])
    for name, addr in extra_hosts:
        if addr == HOST_GATEWAY:
            if not gateway:
                raise InvalidArgument("unable to derive the IP value for host-gateway")
            addr = gateway
        records.append((addr, name))
    if ip:
        fqdn = f"{hostname}.{domainname}" if domainname else hostname
        short = fqdn.split(".", 1)[0]
        records.append((ip, f"{fqdn} {short}" if short != fqdn else fqdn))
    for peer_ip, names in peers:
        uniq = list(dict.fromkeys(n for n in names if n))
        if uniq and peer_ip != ip:
            records.append((peer_ip, " ".join(uniq)))
    return "".join(f"{a}\t{h}\n" for a, h in records)


def read_host_resolv_conf(path: str = "/etc/resolv.conf") -> str:
    """The host's resolver config, skipping systemd-resolved's 127.0.0.53 stub if possible.

    Like Docker: when the stub is in use, the real upstream servers are in
    ``/run/systemd/resolve/resolv.conf``, and those are reachable from a container.
    """
    text = _read(path)
    servers = _nameservers(text)
    if servers and all(s == "127.0.0.53" for s in servers):
        upstream = _read("/run/systemd/resolve/resolv.conf")
        if upstream:
            return upstream
    return text


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _nameservers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            out.append(words[1])
    return out


def _is_loopback(addr: str) -> bool:
    try:
        return ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def render_resolv_conf(host_text: str, *, dns: Sequence[str] | None = None,
                       dns_search: Sequence[str] | None = None,
                       dns_options: Sequence[str] | None = None,
                       keep_loopback: bool = False,
                       fallback: Sequence[str] = ()) -> str:
    """The container's ``resolv.conf`` from the host's text and ``--dns*`` flags.

    Each of ``dns``/``dns_search``/``dns_options`` replaces the host's setting when given
    (``--dns-search .`` clears the search list). ``keep_loopback`` is for host networking,
    where 127.x is the host itself. Other host lines (comments, ``sortlist``) are kept.
    """
    servers = _nameservers(host_text)
    search: list[str] = []
    options: list[str] = []
    other: list[str] = []
    for line in host_text.splitlines():
        words = line.split()
        if not words or words[0] == "nameserver":
            continue
        if words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
        else:
            other.append(line)
    if dns is not None and len(dns) > 0:
        for d in dns:
            try:
                ip_address(d)
            except ValueError:
                raise InvalidArgument(f"{d} is not an ip address") from None
        servers = list(dns)
    elif not keep_loopback:
        servers = [s for s in servers if not _is_loopback(s)] or list(fallback)
    if dns_search is not None and len(dns_search) > 0:
        search = [] if list(dns_search) == ["."] else list(dns_search)
    if dns_options is not None and len(dns_options) > 0:
        options = list(dns_options)
    lines = list(other)
    lines += [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n" if lines else ""
