"""/etc/hosts and resolv.conf rendering as Docker does it."""

from __future__ import annotations

import pytest

from berth.errors import InvalidArgument
from berth.network.hostsfiles import parse_add_host, render_hosts, render_resolv_conf

LOCAL = ("127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\n"
         "ff00::0\tip6-mcastprefix\n"
         "ff02::1\tip6-allnodes\n"
         "ff02::2\tip6-allrouters\n")


def test_hosts_default_bridge():
    assert render_hosts("3f4b5e6a7c8d", "172.17.0.2") == LOCAL + "172.17.0.2\t3f4b5e6a7c8d\n"


def test_hosts_none_network_and_no_ipv6():
    assert render_hosts("abc") == LOCAL
    assert render_hosts("abc", "10.0.0.2", ipv6=False) == \
        "127.0.0.1\tlocalhost\n10.0.0.2\tabc\n"


def test_hosts_extra_gateway_domain_peers():
    extra = [parse_add_host("my-hostname=8.8.8.8"), parse_add_host("gw:host-gateway"),
             parse_add_host("six=[2001:db8::33]")]
    text = render_hosts("web", "10.89.0.3", domainname="example.com", extra_hosts=extra,
                        gateway="10.89.0.1",
                        peers=[("10.89.0.4", ["db", "database", "db"]),
                               ("10.89.0.3", ["web"])])
    assert text == LOCAL + ("8.8.8.8\tmy-hostname\n10.89.0.1\tgw\n2001:db8::33\tsix\n"
                            "10.89.0.3\tweb.example.com web\n10.89.0.4\tdb database\n")


def test_add_host_errors():
    assert parse_add_host("a:1.2.3.4") == ("a", "1.2.3.4")
    with pytest.raises(InvalidArgument, match="invalid IP address in add-host"):
        parse_add_host("a=notanip")
    with pytest.raises(InvalidArgument, match="bad format"):
        parse_add_host("justname")
    with pytest.raises(InvalidArgument, match="host-gateway"):
        render_hosts("x", "10.0.0.2", extra_hosts=[("gw", "host-gateway")])


HOST = "# comment\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nsearch corp.example\n" \
       "options ndots:2 edns0\n"


def test_resolv_drops_loopback_keeps_rest():
    assert render_resolv_conf(HOST) == ("# comment\nnameserver 10.255.255.53\n"
                                        "search corp.example\noptions ndots:2 edns0\n")


def test_resolv_only_loopback_gives_no_nameserver_or_fallback():
    assert render_resolv_conf("nameserver 127.0.0.1\n") == ""
    assert render_resolv_conf("nameserver ::1\n", fallback=["8.8.8.8"]) == "nameserver 8.8.8.8\n"
    assert render_resolv_conf("nameserver 127.0.0.1\n", keep_loopback=True) == \
        "nameserver 127.0.0.1\n"


def test_resolv_overrides():
    text = render_resolv_conf(HOST, dns=["1.1.1.1", "9.9.9.9"], dns_search=["."],
                              dns_options=["timeout:1"])
    assert text == "# comment\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions timeout:1\n"
    assert "search a.b c.d" in render_resolv_conf(HOST, dns_search=["a.b", "c.d"])
    with pytest.raises(InvalidArgument, match="is not an ip address"):
        render_resolv_conf(HOST, dns=["dns.google"])
