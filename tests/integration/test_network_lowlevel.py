"""berth.network against the real kernel: bridge, netns, veth, nft/iptables NAT, proxy.

Everything a test makes carries a random suffix (bridge ``bt<sfx>``, table
``berth-test-<sfx>``, namespaces under the test's tmp dir) and is removed by the ``lab``
fixture's teardown, which then *asserts* nothing is left. Traffic only goes to 127.0.0.1
and to addresses inside the namespaces the test created. Host sysctls are untouched
except the per-interface ``forwarding`` flag of interfaces the test itself created.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from berth.errors import Conflict
from berth.network import bridge, firewall, ipam, netns, proxy, veth
from berth.network.ports import PortRequest, allocate

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("nft"),
    reason="needs root, nsenter and nft")

SERVER = r"""
import socket, sys, threading
ip, port = sys.argv[1], int(sys.argv[2])
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((ip, port)); t.listen(16)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((ip, port))
def udp():
    while True:
        data, peer = u.recvfrom(65535)
        u.sendto(f"{peer[0]}|".encode() + data, peer)
def serve(c, peer):
    with c:
        data = c.recv(65535)
        c.sendall(f"{peer[0]}|".encode() + data)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, peer = t.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""


def _free_subnet() -> ipaddress.IPv4Network:
    host = ipam.host_networks()
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(h) for h in host):
            return net
    raise RuntimeError("no free test subnet")


class Lab:
    """One test's network objects, recorded as they are made so teardown gets them all."""

    def __init__(self, tmp_path) -> None:
        self.sfx = secrets.token_hex(3)
        self.tmp = str(tmp_path)
        self.runroot = os.path.join(self.tmp, "run")
        self.bridges: list[str] = []
        self.veths: list[str] = []
        self.namespaces: list[str] = []
        self.tables: list[firewall.Firewall] = []
        self.procs: list[subprocess.Popen] = []
        self.proxies: list[int] = []

    def network(self, tag: str) -> tuple[str, ipaddress.IPv4Network, str]:
        name = f"bt{self.sfx}{tag}"
        net = _free_subnet()
        gw = str(net.network_address + 1)
        self.bridges.append(name)
        bridge.ensure_bridge(name, gw, net.prefixlen)
        return name, net, gw

    def container(self, name: str, br: str, net: ipaddress.IPv4Network, gw: str,
                  host_n: int) -> tuple[str, str]:
        path = netns.create_netns(netns.netns_path(self.runroot, name))
        self.namespaces.append(path)
        host_if = f"vt{self.sfx}{name}"
        self.veths.append(host_if)
        ip = str(net.network_address + host_n)
        veth.attach(path, br, host_if, ip, net.prefixlen, gw)
        return path, ip

    def server(self, ns: str, ip: str, port: int) -> None:
        p = subprocess.Popen([*netns.nsenter_argv(ns), sys.executable, "-c", SERVER, ip,
                              str(port), self.tmp], stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def firewall(self, **kw) -> firewall.Firewall:
        fw = firewall.open_firewall(f"berth-test-{self.sfx}", **kw)
        self.tables.append(fw)
        return fw

    def teardown(self) -> None:
        for pid in self.proxies:
            proxy.stop_proxy(pid)
        for p in self.procs:
            p.kill()
            p.wait()
        for fw in self.tables:
            fw.destroy()
        for v in self.veths:
            veth.detach(v)
        for ns in self.namespaces:
            netns.delete_netns(ns)
        for b in self.bridges:
            bridge.delete_bridge(b)

    def leftovers(self) -> list[str]:
        left = []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        left += [ln.split(":")[1].strip() for ln in links.splitlines() if self.sfx in ln]
        nsl = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left += [f"netns {n}" for n in nsl.split() if self.sfx in n]
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        left += [t for t in tables.splitlines() if self.sfx in t]
        left += [f"netns file {p}" for p in self.namespaces if os.path.exists(p)]
        left += [f"proxy {pid}" for pid in self.proxies if proxy.is_proxy(pid)]
        with open("/proc/self/mountinfo") as f:
            left += [ln.split()[4] for ln in f if self.tmp in ln]
        return left


@pytest.fixture
def lab(tmp_path):
    lb = Lab(tmp_path)
    try:
        yield lb
    finally:
        lb.teardown()
        deadline = time.monotonic() + 5
        while (left := lb.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)  # namespace devices go away on a kernel work queue
        assert not left, f"left behind: {left}"


def _tcp(ip: str, port: int, payload: bytes = b"hello", timeout: float = 5) -> bytes:
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65535):
            out += chunk
        return out


def _udp(ip: str, port: int, payload: bytes = b"ping", timeout: float = 5) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (ip, port))
        return s.recvfrom(65535)[0]


def _in_ns(ns: str, code: str, *args: str) -> str:
    return subprocess.run([*netns.nsenter_argv(ns), sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=20, check=True).stdout.strip()


CLIENT = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(b"hi"); s.shutdown(socket.SHUT_WR); print(s.recv(1000).decode())
"""


def test_netns_is_a_pinned_namespace(lab):
    path = netns.create_netns(netns.netns_path(lab.runroot, "solo"))
    lab.namespaces.append(path)
    assert netns.is_netns(path)
    assert netns.create_netns(path) == path          # idempotent
    links = subprocess.run([*netns.nsenter_argv(path), "ip", "-o", "link"],
                           capture_output=True, text=True, check=True).stdout
    assert [ln.split(":")[1].strip() for ln in links.splitlines()] == ["lo"]
    netns.delete_netns(path)
    netns.delete_netns(path)                          # idempotent
    assert not os.path.exists(path)


def test_bridge_is_idempotent(lab):
    name, net, gw = lab.network("x")
    assert bridge.ensure_bridge(name, gw, net.prefixlen) == bridge.link_index(name)
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", name],
                           capture_output=True, text=True).stdout
    assert addrs.count(f"{gw}/{net.prefixlen}") == 1
    assert bridge.delete_bridge(name) and not bridge.delete_bridge(name)


def test_two_namespaces_talk_over_the_bridge(lab):
    br, net, gw = lab.network("n")
    a, ip_a = lab.container("a", br, net, gw, 2)
    b, ip_b = lab.container("b", br, net, gw, 3)
    inside = subprocess.run([*netns.nsenter_argv(a), "ip", "-o", "-4", "addr", "show", "eth0"],
                            capture_output=True, text=True).stdout
    assert f"{ip_a}/{net.prefixlen}" in inside
    route = subprocess.run([*netns.nsenter_argv(a), "ip", "route", "show", "default"],
                           capture_output=True, text=True).stdout
    assert f"via {gw} dev eth0" in route
    link = subprocess.run([*netns.nsenter_argv(a), "ip", "-o", "link", "show", "eth0"],
                          capture_output=True, text=True).stdout
    assert f"link/ether {veth.mac_for_ip(ip_a)} " in link
    if os.path.exists("/bin/busybox"):
        ping = subprocess.run([*netns.nsenter_argv(a), "/bin/busybox", "ping", "-c", "1",
                               "-W", "3", ip_b], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    lab.server(b, ip_b, 7000)
    assert _in_ns(a, CLIENT, ip_b, "7000") == f"{ip_a}|hi"       # netns -> netns
    assert _tcp(ip_b, 7000) == f"{gw}|hello".encode()             # host -> netns
    assert veth.detach(f"vt{lab.sfx}a") and not veth.detach(f"vt{lab.sfx}a")


def test_dnat_and_proxy_publish_a_port(lab):
    br, net, gw = lab.network("p")
    a, ip_a = lab.container("a", br, net, gw, 2)
    lab.server(a, ip_a, 80)
    fw = lab.firewall()
    owner = f"ctr:{lab.sfx}"
    (tcp_map, udp_map, lo_map) = allocate([PortRequest(80, "tcp", gw),
                                           PortRequest(80, "udp", "127.0.0.1"),
                                           PortRequest(80, "tcp", "127.0.0.1")])
    fw.ensure_masquerade(f"net:{lab.sfx}", str(net), br)
    fwd = firewall.PortForward("tcp", gw, tcp_map.host_port, ip_a, 80)
    fw.add_port_forwards(owner, [fwd])
    fw.add_port_forwards(owner, [fwd])                              # idempotent
    assert sorted(fw.tags(owner)) == sorted(
        f"{owner}|tcp/{gw}/{tcp_map.host_port}/{s}" for s in ("pre", "out", "hairpin"))
    # host -> gateway:hostport is DNAT'ed (output hook) to the container
    assert _tcp(gw, tcp_map.host_port) == f"{gw}|hello".encode()

    pid = proxy.start_proxy([proxy.ProxyMap("tcp", "127.0.0.1", lo_map.host_port, ip_a, 80),
                             proxy.ProxyMap("udp", "127.0.0.1", udp_map.host_port, ip_a, 80)],
                            tag=lab.tmp)
    lab.proxies.append(pid)
    assert proxy.is_proxy(pid)
    assert _tcp("127.0.0.1", lo_map.host_port, b"x" * 1000) == f"{gw}|".encode() + b"x" * 1000
    assert _udp("127.0.0.1", udp_map.host_port) == f"{gw}|ping".encode()
    # the proxy holds the port: allocating it again gives Docker's error
    with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{lo_map.host_port} failed"):
        allocate([PortRequest(80, "tcp", "127.0.0.1", lo_map.host_port, lo_map.host_port)])
    with pytest.raises(Conflict, match="already allocated"):
        proxy.start_proxy([proxy.ProxyMap("tcp", "127.0.0.1", lo_map.host_port, ip_a, 80)])

    # stop: rules and proxy go, the network's masquerade stays
    assert fw.remove_owner(owner) == 3 and fw.tags(owner) == []
    assert fw.tags() == [f"net:{lab.sfx}|masq/{net}"]
    proxy.stop_proxy(pid)
    assert not proxy.is_proxy(pid)
    for port in (tcp_map.host_port, lo_map.host_port):
        with pytest.raises(OSError):
            _tcp(gw if port == tcp_map.host_port else "127.0.0.1", port, timeout=1)


def test_masquerade_rewrites_source_only_while_present(lab):
    """A container reaches an 'outside' namespace; the outside sees the host, not the
    container, only while the masquerade rule exists."""
    br, net, gw = lab.network("m")
    obr, onet, ogw = lab.network("o")
    a, ip_a = lab.container("a", br, net, gw, 2)
    out, ip_out = lab.container("out", obr, onet, ogw, 2)
    lab.server(out, ip_out, 9000)
    for ifname in (br, obr):
        bridge.enable_forwarding(ifname)   # per-interface: the host-wide flag stays as is
    fw = lab.firewall()
    assert _in_ns(a, CLIENT, ip_out, "9000") == f"{ip_a}|hi"       # routed, not NATed
    fw.ensure_masquerade(f"net:{lab.sfx}", str(net), br)
    fw.ensure_masquerade(f"net:{lab.sfx}", str(net), br)
    assert len(fw.tags()) == 1
    assert _in_ns(a, CLIENT, ip_out, "9000") == f"{ogw}|hi"        # masqueraded
    assert fw.remove_owner(f"net:{lab.sfx}") == 1
    listing = subprocess.run(["nft", "list", "table", "ip", fw.table], capture_output=True,
                             text=True).stdout
    assert "masquerade" not in listing


@pytest.mark.skipif(not shutil.which("iptables"), reason="needs iptables")
def test_iptables_backend_in_a_scratch_namespace(lab):
    """The iptables fallback, exercised inside a namespace so the host's tables stay
    untouched."""
    ns = netns.create_netns(netns.netns_path(lab.runroot, "ipt"))
    lab.namespaces.append(ns)
    fw = firewall.open_firewall(f"bt{lab.sfx}", netns=ns, backend="iptables")
    assert isinstance(fw, firewall.IptablesFirewall)
    fw.ensure_masquerade("net:n1", "10.9.0.0/24", "brx")
    fwd = firewall.PortForward("tcp", "", 8080, "10.9.0.2", 80)
    fw.add_port_forwards("ctr:c1", [fwd])
    fw.add_port_forwards("ctr:c1", [fwd])
    fw.add_port_forwards("ctr:c2", [firewall.PortForward("udp", "10.0.0.1", 53, "10.9.0.3", 53)])
    assert len(fw.tags("ctr:c1")) == 3 and len(fw.tags("ctr:c2")) == 3
    rules = subprocess.run([*netns.nsenter_argv(ns), "iptables", "-t", "nat", "-S"],
                           capture_output=True, text=True, check=True).stdout
    assert "--to-destination 10.9.0.2:80" in rules and "-j MASQUERADE" in rules
    assert fw.remove_owner("ctr:c1") == 3
    assert fw.tags("ctr:c1") == [] and len(fw.tags()) == 4
    # a network's isolation and loopback masquerade: filter + nat, removed by owner
    fw.ensure_network("net:n2", "10.9.1.0/24", "brt-n2", internal=False)
    filt = subprocess.run([*netns.nsenter_argv(ns), "iptables", "-S", f"BT{lab.sfx}-FWD".upper()],
                          capture_output=True, text=True, check=True).stdout
    assert "-i brt-n2 -o brt-n2" in filt and "-o brt-+" in filt and "-j DROP" in filt
    assert len(fw.tags("net:n2")) == 5
    assert fw.remove_owner("net:n2") == 5
    fw.destroy()
    assert fw.tags() == []
    nft = firewall.open_firewall(f"bt{lab.sfx}", netns=ns, backend="nftables")
    nft.add_port_forwards("ctr:c1", [fwd])
    assert len(nft.tags()) == 3
    nft.destroy()
    assert nft.tags() == []


def test_nft_table_json_is_what_we_parse(lab):
    fw = lab.firewall()
    fw.ensure_masquerade("net:x", "10.250.250.0/24", "nosuchbr")
    data = json.loads(subprocess.run(["nft", "-j", "list", "table", "ip", fw.table],
                                     capture_output=True, text=True, check=True).stdout)
    chains = {o["chain"]["name"] for o in data["nftables"] if "chain" in o}
    assert chains == {"prerouting", "output", "postrouting", "forward"}
    fw.destroy()
    assert fw.tags() == []
