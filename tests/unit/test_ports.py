"""-p/-P/--expose parsing, host-port allocation and Docker's PORTS/port strings."""

from __future__ import annotations

import socket

import pytest

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.network.ports import (
    DisplayPort,
    PortMapping,
    PortRequest,
    allocate,
    check_port_free,
    display_ports,
    format_port_lines,
    format_ports_column,
    parse_expose,
    parse_publish,
    publish_all,
)


@pytest.mark.parametrize("spec,want", [
    ("80", [PortRequest(80, "tcp", "", 0, 0)]),
    ("8080:80", [PortRequest(80, "tcp", "", 8080, 8080)]),
    ("127.0.0.1:8080:80/udp", [PortRequest(80, "udp", "127.0.0.1", 8080, 8080)]),
    ("127.0.0.1::80", [PortRequest(80, "tcp", "127.0.0.1", 0, 0)]),
    ("[::1]:8080:80", [PortRequest(80, "tcp", "::1", 8080, 8080)]),
    ("::1:8080:80", [PortRequest(80, "tcp", "::1", 8080, 8080)]),
    ("8000-8001:80-81", [PortRequest(80, "tcp", "", 8000, 8000),
                         PortRequest(81, "tcp", "", 8001, 8001)]),
    ("8000-8010:80", [PortRequest(80, "tcp", "", 8000, 8010)]),
    ("80-81", [PortRequest(80), PortRequest(81)]),
    ("53/UDP", [PortRequest(53, "udp")]),
])
def test_parse_publish(spec, want):
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec,msg", [
    ("80/xyz", "invalid proto: xyz"),
    ("abc", "invalid containerPort: abc"),
    ("x:80", "invalid hostPort: x"),
    ("foo:80:80", "invalid IP address: foo"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and "
                        "8000-8002"),
    ("8080:", "No port specified: 8080:<empty>"),
    ("70000", "invalid containerPort: 70000"),
])
def test_parse_publish_errors(spec, msg):
    with pytest.raises(InvalidArgument) as e:
        parse_publish(spec)
    assert str(e.value) == msg


def test_expose_and_publish_all():
    assert parse_expose("80-82/udp") == ["80/udp", "81/udp", "82/udp"]
    assert parse_expose("443") == ["443/tcp"]
    assert publish_all(["443/tcp", "80/tcp", "53/udp"]) == [
        PortRequest(53, "udp"), PortRequest(80, "tcp"), PortRequest(443, "tcp")]


def test_allocate_random_ports_are_free_and_distinct():
    got = allocate([PortRequest(80), PortRequest(81), PortRequest(53, "udp")])
    assert [m.container_port for m in got] == [80, 81, 53]
    assert len({m.host_port for m in got}) == 3
    lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert all(lo <= m.host_port <= hi for m in got)


def test_allocate_taken_port_gives_docker_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        with pytest.raises(Conflict) as e:
            allocate([PortRequest(80, "tcp", "127.0.0.1", port, port)])
        assert str(e.value) == f"Bind for 127.0.0.1:{port} failed: port is already allocated"
        with pytest.raises(Conflict) as e:
            check_port_free("", port)
        assert str(e.value) == f"Bind for 0.0.0.0:{port} failed: port is already allocated"
        # a range skips the taken port
        got = allocate([PortRequest(80, "tcp", "127.0.0.1", port, port + 5)])
        assert got[0].host_port != port
    finally:
        s.close()


def test_allocate_respects_reserved():
    free = allocate([PortRequest(80)])[0].host_port
    with pytest.raises(Conflict, match="port is already allocated"):
        allocate([PortRequest(80, "tcp", "", free, free)], reserved=[("127.0.0.1", free, "tcp")])
    assert allocate([PortRequest(80, "udp", "", free, free)],
                    reserved=[("", free, "tcp")])[0].host_port == free


def test_ports_column_like_docker():
    col = format_ports_column
    assert col(display_ports([PortMapping(5000, "tcp", "", 5000)])) == \
        "0.0.0.0:5000->5000/tcp, :::5000->5000/tcp"
    assert col(display_ports([PortMapping(80, "tcp", "127.0.0.1", 8080)])) == \
        "127.0.0.1:8080->80/tcp"
    assert col(display_ports([PortMapping(80, "tcp", "", 8080)])) == \
        "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    same = [PortMapping(8000, "tcp", "0.0.0.0", 8000), PortMapping(8001, "tcp", "0.0.0.0", 8001)]
    assert col(display_ports(same)) == "0.0.0.0:8000-8001->8000-8001/tcp"
    # Docker lists remapped ports one by one (docker/cli DisplayablePorts)
    moved = [PortMapping(80, "tcp", "0.0.0.0", 8000), PortMapping(81, "tcp", "0.0.0.0", 8001)]
    assert col(display_ports(moved)) == "0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp"
    # a group broken by a gap is flushed first; still-open groups follow in creation order
    assert col(display_ports([], ["80/tcp", "81/tcp", "83/tcp", "53/udp"])) == \
        "80-81/tcp, 53/udp, 83/tcp"
    assert col(display_ports([PortMapping(1234, "tcp", "0.0.0.0", 9876),
                              PortMapping(4321, "tcp", "0.0.0.0", 7890)])) == \
        "0.0.0.0:9876->1234/tcp, 0.0.0.0:7890->4321/tcp"
    assert col([]) == ""


def test_port_lines():
    ports = display_ports([PortMapping(9876, "tcp", "0.0.0.0", 1234),
                           PortMapping(7890, "tcp", "0.0.0.0", 4321)], ["22/tcp"], ipv6=False)
    assert format_port_lines(ports) == ["7890/tcp -> 0.0.0.0:4321", "9876/tcp -> 0.0.0.0:1234"]
    assert format_port_lines(ports, "7890/tcp") == ["0.0.0.0:4321"]
    assert format_port_lines(ports, "7890") == ["0.0.0.0:4321"]
    with pytest.raises(NotFound) as e:
        format_port_lines(ports, "7890/udp", "test")
    assert str(e.value) == "No public port '7890/udp' published for test"
    both = display_ports([PortMapping(80, "tcp", "", 8080)])
    assert format_port_lines(both) == ["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]


def test_display_port_fields():
    assert display_ports([PortMapping(80, "udp", "10.1.2.3", 53)]) == [
        DisplayPort(80, "udp", "10.1.2.3", 53)]
