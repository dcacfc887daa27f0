"""Published ports: ``-p``/``-P``/``--expose`` parsing, host-port choice, Docker's output.

Three stages, kept apart because they happen at different times:
* parse (``create``): the user's text becomes :class:`PortRequest` s -- host port 0 means
  "pick one", a host range means "pick one from here";
* allocate (``start``): requests become concrete :class:`PortMapping` s, each host port
  proven free by binding it, like Docker's port allocator does when a container starts;
* display (``ps``/``port``/``inspect``): Docker's exact strings.
Nothing here touches the firewall or starts proxies.
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from ..errors import Conflict, InvalidArgument, NotFound, PortAllocated

PROTOS = ("tcp", "udp", "sctp")


@dataclass(frozen=True, order=True)
class PortRequest:
    """What the user asked for; ``host_port_first == 0`` means any free port."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port_first: int = 0
    host_port_last: int = 0


@dataclass(frozen=True, order=True)
class PortMapping:
    """A decided binding: what the firewall, the proxy and ``port`` work from."""

    container_port: int
    proto: str
    host_ip: str          # "" = every address (shown as 0.0.0.0 and ::)
    host_port: int


@dataclass(frozen=True)
class DisplayPort:
    """One entry of the Engine API's ``Ports`` list (``ps`` formats these)."""

    private_port: int
    type: str
    ip: str = ""
    public_port: int = 0


# -- parsing ---------------------------------------------------------------------------

def _port_range(text: str, what: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not m:
        raise InvalidArgument(f"invalid {what}: {text}")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else first
    if not (0 < first <= 65535 and 0 < last <= 65535) or last < first:
        raise InvalidArgument(f"invalid {what}: {text}")
    return first, last


def _split_proto(text: str) -> tuple[str, str]:
    port, _, proto = text.rpartition("/") if "/" in text else (text, "", "tcp")
    proto = proto.lower() or "tcp"
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    return port, proto


def parse_publish(spec: str) -> list[PortRequest]:
    """Parse one ``-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`` value (ranges allowed).

    ``8000-8001:80-81`` pairs ports one to one; ``8000-8010:80`` picks one free host port
    from the range at start, as Docker does. An IPv6 host IP may be bracketed.
    """
    rest, proto = _split_proto(spec.strip())
    parts = rest.split(":")
    container = parts[-1]
    host_port = parts[-2] if len(parts) >= 2 else ""
    host_ip = ":".join(parts[:-2]) if len(parts) >= 3 else ""
    if host_ip.startswith("[") and host_ip.endswith("]"):
        host_ip = host_ip[1:-1]
    if host_ip:
        try:
            host_ip = str(ip_address(host_ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    if not container:
        raise InvalidArgument(f"No port specified: {spec}<empty>")
    cfirst, clast = _port_range(container, "containerPort")
    if not host_port:
        return [PortRequest(p, proto, host_ip) for p in range(cfirst, clast + 1)]
    hfirst, hlast = _port_range(host_port, "hostPort")
    if cfirst == clast:
        return [PortRequest(cfirst, proto, host_ip, hfirst, hlast)]
    if hlast - hfirst != clast - cfirst:
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: "
                              f"{container} and {host_port}")
    return [PortRequest(c, proto, host_ip, h, h)
            for c, h in zip(range(cfirst, clast + 1), range(hfirst, hlast + 1))]


def parse_expose(spec: str) -> list[str]:
    """``--expose 80-81/udp`` -> ``["80/udp", "81/udp"]`` (image-config ExposedPorts keys)."""
    port, proto = _split_proto(spec.strip())
    first, last = _port_range(port, "port")
    return [f"{p}/{proto}" for p in range(first, last + 1)]


def publish_all(exposed: Iterable[str]) -> list[PortRequest]:
    """``-P``: every exposed ``"<port>/<proto>"`` key, each to a random host port."""
    out = []
    for key in exposed:
        port, proto = _split_proto(key)
        out.append(PortRequest(_port_range(port, "port")[0], proto))
    return sorted(set(out))


# -- allocation ------------------------------------------------------------------------

def _bind_addrs(host_ip: str) -> list[tuple[int, str]]:
    if not host_ip:
        fams: list[tuple[int, str]] = [(socket.AF_INET, "0.0.0.0")]
        if socket.has_ipv6:
            fams.append((socket.AF_INET6, "::"))
        return fams
    return [(socket.AF_INET6 if ":" in host_ip else socket.AF_INET, host_ip)]


def _display_ip(host_ip: str) -> str:
    return host_ip or "0.0.0.0"


def check_port_free(host_ip: str, port: int, proto: str = "tcp") -> None:
    """Raise Docker's ``Bind for IP:PORT failed: port is already allocated`` if taken.

    Binding (and closing) is the only honest test: it sees every listener on the host,
    whoever made it. ``sctp`` is not bind-tested (rarely available); it always passes.
    """
    if proto == "sctp":
        return
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for fam, addr in _bind_addrs(host_ip):
        try:
            s = socket.socket(fam, kind)
        except OSError:
            continue  # no IPv6 on this host: nothing can hold the port there either
        try:
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError as e:
            if fam == socket.AF_INET6 and e.errno == 99:  # EADDRNOTAVAIL: IPv6 disabled
                continue
            shown = f"[{addr}]" if ":" in addr else addr
            raise PortAllocated(f"Bind for {shown}:{port} failed: port is already allocated") from None
        finally:
            s.close()


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def allocate(requests: Sequence[PortRequest],
             reserved: Iterable[tuple[str, int, str]] = ()) -> list[PortMapping]:
    """Turn requests into mappings whose host ports are free now.

    ``reserved`` holds ``(host_ip, port, proto)`` triples that other berth containers own
    even if nothing listens on them this instant. Random ports come from the kernel's
    ephemeral range, as Docker's allocator does.
    """
    taken = {(ip, port, proto) for ip, port, proto in reserved}

    def clash(ip: str, port: int, proto: str) -> bool:
        return any(p == port and pr == proto and (not i or not ip or i == ip)
                   for i, p, pr in taken)

    out: list[PortMapping] = []
    for req in requests:
        if req.host_port_first and req.host_port_first == req.host_port_last:
            candidates: Iterable[int] = [req.host_port_first]
        elif req.host_port_first:
            candidates = range(req.host_port_first, req.host_port_last + 1)
        else:
            lo, hi = _ephemeral_range()
            candidates = random.sample(range(lo, hi + 1), min(200, hi - lo + 1))
        chosen = 0
        last_err: Conflict | None = None
        for port in candidates:
            if clash(req.host_ip, port, req.proto):
                last_err = PortAllocated(f"Bind for {_display_ip(req.host_ip)}:{port} failed: "
                                    "port is already allocated")
                continue
            try:
                check_port_free(req.host_ip, port, req.proto)
            except Conflict as e:
                last_err = e
                continue
            chosen = port
            break
        if not chosen:
            raise last_err or Conflict("no free host port available")
        taken.add((req.host_ip, chosen, req.proto))
        out.append(PortMapping(req.container_port, req.proto, req.host_ip, chosen))
    return out


# -- display ---------------------------------------------------------------------------

def display_ports(mappings: Iterable[PortMapping], exposed: Iterable[str] = (), *,
                  ipv6: bool = True) -> list[DisplayPort]:
    """The Engine API's ``Ports`` list: a binding on all addresses appears twice.

    Docker reports ``0.0.0.0`` and ``::`` for a port published without an IP; exposed
    ports that are not published appear once, without IP or public port.
    """
    out: list[DisplayPort] = []
    published = set()
    for m in mappings:
        published.add((m.container_port, m.proto))
        ips = [m.host_ip] if m.host_ip else (["0.0.0.0", "::"] if ipv6 else ["0.0.0.0"])
        out += [DisplayPort(m.container_port, m.proto, ip, m.host_port) for ip in ips]
    for key in exposed:
        port, proto = _split_proto(key)
        if (int(port), proto) not in published:
            out.append(DisplayPort(int(port), proto))
    return out


def _join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_ports_column(ports: Iterable[DisplayPort]) -> str:
    """Docker's ``PORTS`` column (docker/cli ``DisplayablePorts``), byte for byte.

    Ports sorted by (private port, IP, public port, type). Runs of consecutive ports whose
    public port equals the private one collapse into ``IP:8000-8001->8000-8001/tcp``;
    a port published elsewhere (``8080->80``) is listed on its own after the groups, with
    the address bracketed (``[::]:8080->80/tcp``). That asymmetry is Docker's.
    """
    ordered = sorted(ports, key=lambda p: (p.private_port, p.ip, p.public_port, p.type))
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    singles: list[str] = []
    for p in ordered:
        key = p.type
        if p.ip:
            if p.public_port != p.private_port:
                singles.append(f"{_join_host_port(p.ip, p.public_port)}->"
                               f"{p.private_port}/{p.type}")
                continue
            key = f"{p.ip}/{p.type}"
        g = groups.get(key)
        if g is None:
            groups[key] = [p.private_port, p.private_port]
            order.append(key)
        elif p.private_port == g[1] + 1:
            g[1] = p.private_port
        else:
            result.append(_form_group(key, g[0], g[1]))
            groups[key] = [p.private_port, p.private_port]
    result += [_form_group(k, *groups[k]) for k in order]
    return ", ".join(result + singles)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{proto}"


def _natural_key(text: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def format_port_lines(ports: Iterable[DisplayPort], query: str | None = None,
                      container: str = "") -> list[str]:
    """``docker port`` output: ``80/tcp -> 0.0.0.0:8080`` lines, or bindings of one port.

    ``query`` is ``80`` or ``80/udp``; with no binding it raises NotFound with Docker's
    ``No public port '80/tcp' published for <name>`` (the CLI adds ``Error: ``).
    """
    published = [p for p in ports if p.public_port]
    if query is None:
        lines = [f"{p.private_port}/{p.type} -> {_join_host_port(p.ip, p.public_port)}"
                 for p in published]
        return sorted(lines, key=_natural_key)
    port, proto = _split_proto(query)
    hits = [_join_host_port(p.ip, p.public_port) for p in published
            if str(p.private_port) == port and p.type == proto]
    if not hits:
        raise NotFound(f"No public port '{port}/{proto}' published for {container}")
    return hits
