"""TCP throughput through berth's network machinery (by hand, as root; not in CI).

Builds a throw-away bridge with two namespaces using berth.network, runs a sink in one,
and pushes bytes over each path a container's traffic can take:

  netns -> netns      over the bridge (L2 only)
  host  -> netns      routed to the container IP
  host  -> DNAT       to the gateway address + published port (nft output hook)
  host  -> proxy      to 127.0.0.1 + published port (berth.network.proxy, userland)

Prints one table. Everything is removed at the end, even on Ctrl-C.

    .venv/bin/python bench/network_throughput.py [--mb 512] [--podman]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile

from berth.network import bridge, firewall, ipam, netns, proxy, veth
from berth.network.ports import PortRequest, allocate

SINK = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8); print("ready", flush=True)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept()
    n = 0
    while (k := c.recv_into(buf)):
        n += k
    c.sendall(str(n).encode()); c.close()
"""

SOURCE = r"""
import socket, sys, time
ip, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = b"\0" * (1 << 18)
t = time.perf_counter()
with socket.create_connection((ip, port)) as s:
    sent = 0
    while sent < total:
        sent += s.send(chunk[: min(len(chunk), total - sent)])
    s.shutdown(socket.SHUT_WR)
    got = int(s.recv(64))
print(got, time.perf_counter() - t)
"""


def _subnet() -> ipaddress.IPv4Network:
    host = ipam.host_networks()
    while True:
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(h) for h in host):
            return net


def _push(argv_prefix: list[str], ip: str, port: int, total: int) -> tuple[int, float]:
    out = subprocess.run([*argv_prefix, sys.executable, "-c", SOURCE, ip, str(port), str(total)],
                         capture_output=True, text=True, check=True, timeout=600).stdout.split()
    return int(out[0]), float(out[1])


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=512, help="megabytes per path")
    ap.add_argument("--podman", action="store_true",
                    help="also measure podman (not implemented yet: the lead adds it)")
    args = ap.parse_args()
    total = args.mb << 20
    sfx = secrets.token_hex(3)
    tmp = tempfile.mkdtemp(prefix="berth-netbench-")
    br, net = f"bb{sfx}", _subnet()
    gw = str(net.network_address + 1)
    ns_a, ns_b = (netns.netns_path(tmp, n) for n in ("a", "b"))
    ip_a, ip_b = str(net.network_address + 2), str(net.network_address + 3)
    fw = firewall.open_firewall(f"berth-bench-{sfx}")
    procs: list[subprocess.Popen[str]] = []
    pid = 0
    rows: list[tuple[str, int, float, str]] = []
    try:
        bridge.ensure_bridge(br, gw, net.prefixlen)
        for path, ip, name in ((ns_a, ip_a, "a"), (ns_b, ip_b, "b")):
            netns.create_netns(path)
            veth.attach(path, br, f"vb{sfx}{name}", ip, net.prefixlen, gw)
        sink = subprocess.Popen([*netns.nsenter_argv(ns_b), sys.executable, "-c", SINK, ip_b,
                                 "5001"], stdout=subprocess.PIPE, text=True)
        procs.append(sink)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        dnat, lo = allocate([PortRequest(5001, "tcp", gw), PortRequest(5001, "tcp", "127.0.0.1")])
        fw.add_port_forwards(f"ctr:{sfx}", [firewall.PortForward("tcp", gw, dnat.host_port,
                                                                 ip_b, 5001)])
        pid = proxy.start_proxy([proxy.ProxyMap("tcp", "127.0.0.1", lo.host_port, ip_b, 5001)],
                                tag=tmp)
        paths = [("netns -> netns (bridge)", netns.nsenter_argv(ns_a), ip_b, 5001),
                 ("host -> netns (routed)", [], ip_b, 5001),
                 ("host -> DNAT gw:port (nft)", [], gw, dnat.host_port),
                 ("host -> proxy 127.0.0.1:port", [], "127.0.0.1", lo.host_port)]
        for label, prefix, ip, port in paths:
            got, secs = _push(prefix, ip, port, total)
            rows.append((label, got >> 20, secs, f"{got / secs / (1 << 20):,.0f}"))
        proxy_rss = _rss_kib(pid)
    finally:
        if pid:
            proxy.stop_proxy(pid)
        for p in procs:
            p.kill()
            p.wait()
        fw.destroy()
        for name in ("a", "b"):
            veth.detach(f"vb{sfx}{name}")
        for path in (ns_a, ns_b):
            netns.delete_netns(path)
        bridge.delete_bridge(br)
        for d in (os.path.join(tmp, "netns"), tmp):
            try:
                os.rmdir(d)
            except OSError:
                pass
    print(f"{'path':<32}{'MiB':>8}{'seconds':>10}{'MiB/s':>10}")
    for label, mib, secs, rate in rows:
        print(f"{label:<32}{mib:>8}{secs:>10.2f}{rate:>10}")
    print(f"proxy RSS after the run: {proxy_rss / 1024:.1f} MiB")
    if args.podman:
        print("podman: not measured yet (stub; the lead adds the comparison)")
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    sys.exit(main())
