"""Subnet choice (avoiding host routes and other networks) and IP allocation."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from berth.errors import Conflict, InvalidArgument
from berth.network import ipam


def test_default_bridge_gets_docker_subnet_unless_taken():
    assert ipam.choose_subnet(default_bridge=True, avoid=[]) == IPv4Network("172.17.0.0/16")
    docker0 = [IPv4Network("172.17.0.0/16")]
    assert ipam.choose_subnet(default_bridge=True, avoid=docker0) == \
        IPv4Network("172.18.0.0/16")


def test_user_networks_skip_default_and_used_and_host():
    assert ipam.choose_subnet(avoid=[]) == IPv4Network("172.18.0.0/16")
    used = ["172.18.0.0/16", "172.19.5.0/24"]
    host = [IPv4Network("172.20.1.7/32")]
    assert ipam.choose_subnet(used, avoid=host) == IPv4Network("172.21.0.0/16")


def test_falls_back_to_192_168_blocks_then_fails():
    used = [f"172.{i}.0.0/16" for i in range(16, 32)]
    assert ipam.choose_subnet(used, avoid=[]) == IPv4Network("192.168.0.0/20")
    with pytest.raises(Conflict, match="non-overlapping"):
        ipam.choose_subnet(used + ["192.168.0.0/16"], avoid=[])


def test_host_networks_reads_proc(tmp_path):
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    fib = tmp_path / "fib"
    fib.write_text("Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.9.9.9\n        /32 host LOCAL\n")
    nets = ipam.host_networks(str(route), str(fib))
    assert nets == [IPv4Network("192.0.2.0/24"), IPv4Network("10.9.9.9/32")]


def test_host_networks_live_excludes_default_route():
    assert all(n.prefixlen > 0 for n in ipam.host_networks())


def test_validate_subnet():
    net, gw = ipam.validate_subnet("10.5.0.0/16")
    assert (net, gw) == (IPv4Network("10.5.0.0/16"), IPv4Address("10.5.0.1"))
    assert ipam.validate_subnet("10.5.0.0/16", gateway="10.5.9.9")[1] == IPv4Address("10.5.9.9")
    with pytest.raises(Conflict, match="Pool overlaps"):
        ipam.validate_subnet("10.5.0.0/24", used=["10.5.0.0/16"])
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway"):
        ipam.validate_subnet("10.5.0.0/16", gateway="10.6.0.1")
    with pytest.raises(InvalidArgument, match="ip-range"):
        ipam.validate_subnet("10.5.0.0/16", ip_range="10.7.0.0/24")
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        ipam.validate_subnet("nonsense")


def test_pool_allocates_lowest_free_skipping_gateway():
    pool = ipam.IPPool("10.88.0.0/24", used=["10.88.0.2"])
    assert pool.gateway == IPv4Address("10.88.0.1")
    assert pool.allocate() == IPv4Address("10.88.0.3")
    pool.release("10.88.0.2")
    pool.release("10.88.0.2")  # idempotent
    assert pool.allocate() == IPv4Address("10.88.0.2")
    assert pool.allocate("10.88.0.50") == IPv4Address("10.88.0.50")
    with pytest.raises(Conflict, match="Address already in use"):
        pool.allocate("10.88.0.50")
    with pytest.raises(Conflict):
        pool.allocate("10.88.0.1")
    with pytest.raises(InvalidArgument, match="no configured subnet"):
        pool.allocate("10.99.0.5")


def test_pool_exhaustion_and_ip_range():
    pool = ipam.IPPool("10.1.0.0/30")
    assert pool.allocate() == IPv4Address("10.1.0.2")
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        pool.allocate()
    ranged = ipam.IPPool("10.2.0.0/16", ip_range="10.2.5.0/24")
    assert ranged.allocate() == IPv4Address("10.2.5.1")
    assert ranged.allocate() == IPv4Address("10.2.5.2")


@pytest.mark.parametrize("subnet", ["127.0.0.0/8", "127.1.0.0/24", "169.254.10.0/24",
                                    "224.0.0.0/4", "239.1.0.0/16", "0.0.0.0/0", "0.0.0.0/24",
                                    "240.0.0.0/4", "255.255.255.255/32"])
def test_validate_subnet_refuses_host_special_ranges(subnet):
    with pytest.raises(InvalidArgument, match="overlaps the"):
        ipam.validate_subnet(subnet, avoid=[])


def test_validate_subnet_refuses_host_routes_and_addresses():
    host = [IPv4Network("192.0.2.0/24"), IPv4Network("10.9.8.7/32")]
    with pytest.raises(Conflict, match="host's route or address 192.0.2.0/24"):
        ipam.validate_subnet("192.0.2.128/25", avoid=host)
    with pytest.raises(Conflict, match="10.9.8.7/32"):
        ipam.validate_subnet("10.9.0.0/16", avoid=host)
    assert ipam.validate_subnet("10.10.0.0/16", avoid=host)[0] == IPv4Network("10.10.0.0/16")
