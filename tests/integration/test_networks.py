"""Bridge networks end to end: the default bridge, user networks, names, none/host/container.

Traffic goes only to 127.0.0.1 and to addresses inside the namespaces these tests make.
``BERTH_IP_FORWARD=0``: berth must not flip the host-wide forwarding switch in tests.
Every test checks that no veth, bridge, netns, nft rule or proxy of its store is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from probes import until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root and nft")


@pytest.fixture(autouse=True)
def _no_host_forwarding(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BERTH_IP_FORWARD", "0")


def _links() -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if re.match(r"(veth|brt-|berth0)", n)}


def _nft_rules() -> list[str]:
    """Each rule of berth's table as text (comment included)."""
    r = subprocess.run(["nft", "list", "table", "ip", "berth"], capture_output=True,
                       text=True)
    return [ln.strip() for ln in r.stdout.splitlines() if "comment" in ln]


def _proxy_cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "berth.network.proxy" in cmd:
            out.append(cmd)
    return out


def leftovers(root: str, runroot: str, *, networks_gone: bool) -> list[str]:
    """Whatever this store's containers/networks left on the host (other stores' ignored).

    Other berth stores (parallel test runs) may have bridges and rules of their own, so
    everything is matched against this store's networks: their IDs, bridges, subnets.
    """
    import ipaddress
    import sqlite3

    nets = []
    db = os.path.join(root, "berth.db")
    if os.path.exists(db):
        with sqlite3.connect(db) as c:
            nets = c.execute("SELECT id, subnet, options FROM networks "
                             "WHERE driver='bridge'").fetchall()
    found = []
    nsdir = os.path.join(runroot, "netns")
    if os.path.isdir(nsdir) and os.listdir(nsdir):
        found.append(f"netns files {os.listdir(nsdir)}")
    for nid, subnet, options in nets:
        br = json.loads(options)["bridge"]
        brif = f"/sys/class/net/{br}/brif"
        if os.path.isdir(brif) and os.listdir(brif):
            found.append(f"ports on {br}: {os.listdir(brif)}")
        if networks_gone and os.path.exists(f"/sys/class/net/{br}"):
            found.append(f"bridge {br}")
        sn = ipaddress.ip_network(subnet)
        for rule in _nft_rules():
            ips = re.findall(r"\d+\.\d+\.\d+\.\d+", rule.split("comment")[0])
            ours = '"ctr:' in rule and any(ipaddress.ip_address(i) in sn for i in ips)
            if ours or (networks_gone and f"net:{nid}" in rule):
                found.append(f"rule {rule[:120]}")
        for cmd in _proxy_cmdlines():
            if any(ipaddress.ip_address(i) in sn
                   for i in re.findall(r",(\d+\.\d+\.\d+\.\d+),\d+(?: |$)", cmd)):
                found.append(f"proxy {cmd[:120]}")
    return found


@pytest.fixture
def clean(berth_env):  # type: ignore[no-untyped-def]
    """A callable asserting that nothing of this store is left on the host.

    With ``networks_gone`` it first removes every network of the store (as the teardown
    does) and checks bridges and masquerade rules went too.
    """
    def check(*, networks_gone: bool = False) -> None:
        root, runroot = berth_env["root"], berth_env["runroot"]
        assert leftovers(root, runroot, networks_gone=False) == []
        if networks_gone:
            import sqlite3

            with sqlite3.connect(os.path.join(root, "berth.db")) as c:
                saved = c.execute("SELECT id, subnet, options FROM networks "
                                  "WHERE driver='bridge'").fetchall()
            from berth.engine import Engine

            with Engine(root, runroot) as eng:
                eng.remove_all_networks()
            for nid, _subnet, options in saved:
                br = json.loads(options)["bridge"]
                assert not os.path.exists(f"/sys/class/net/{br}"), br
                assert not [r for r in _nft_rules() if f"net:{nid}" in r]
    return check


def _until(pred, timeout=10.0):  # type: ignore[no-untyped-def]
    return until(pred, timeout, interval=0.1)


def test_default_bridge_gives_address_route_hosts_resolv(berth, busybox_image, clean):
    r = berth("run", "--rm", "--hostname", "box", "--dns", "10.1.2.3", "--dns-search",
              "example.test", "--add-host", "db:10.0.0.5", "busybox", "sh", "-c",
              "ip -o -4 addr show eth0; ip route; cat /etc/hosts; cat /etc/resolv.conf;"
              " hostname")
    assert r.returncode == 0, r.stderr
    ip = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", r.stdout)
    assert ip, r.stdout
    net = json.loads(berth("network", "inspect", "bridge").stdout)[0]
    subnet, gw = net["IPAM"]["Config"][0]["Subnet"], net["IPAM"]["Config"][0]["Gateway"]
    import ipaddress

    assert ipaddress.ip_address(ip.group(1)) in ipaddress.ip_network(subnet)
    assert f"default via {gw} dev eth0" in r.stdout
    assert "10.0.0.5\tdb\n" in r.stdout and f"{ip.group(1)}\tbox\n" in r.stdout
    assert "nameserver 10.1.2.3\nsearch example.test\n" in r.stdout
    assert r.stdout.rstrip().endswith("box")
    assert net["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    ls = berth("network", "ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert sorted(line.split()[1:3] for line in ls[1:]) == [
        ["bridge", "bridge"], ["host", "host"], ["none", "null"]]
    from berth.engine import Engine

    with Engine() as eng:
        assert eng.info()["DefaultNetwork"] == "bridge"
    clean(networks_gone=True)


def test_network_none_has_only_lo_and_never_loads_pyroute2(berth, busybox_image, clean,
                                                          berth_env):
    import sys

    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "berth", "run", "--rm",
                        "--network", "none", "busybox", "cat", "/proc/net/dev"],
                       capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    ifaces = [ln.split(":")[0].strip() for ln in r.stdout.splitlines()[2:]]
    assert ifaces == ["lo"]
    assert "pyroute2" not in r.stderr and "berth.network" not in r.stderr
    r = berth("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
    assert "lo" in r.stdout and len(r.stdout.splitlines()) > 3
    clean()


def test_user_network_names_aliases_and_live_hosts_updates(berth, busybox_image, clean,
                                                           berth_env):
    nid = berth("network", "create", "--label", "team=a", "appnet").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", nid)
    r = berth("network", "create", "appnet")
    assert r.returncode == 1 and "network with name appnet already exists" in r.stderr
    # the client starts first: its hosts file must learn about the server later
    client = berth("run", "-d", "--name", "client", "--network", "appnet", "busybox",
                   "sleep", "300")
    assert client.returncode == 0, client.stderr
    web = berth("run", "-d", "--name", "web", "--network", "appnet", "--network-alias",
                "www", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")
    assert web.returncode == 0, web.stderr
    hosts = berth("exec", "client", "cat", "/etc/hosts").stdout
    assert re.search(r"\tweb www [0-9a-f]{12}\n", hosts), hosts
    for name in ("web", "www", web.stdout.strip()[:12]):
        r = berth("exec", "client", "wget", "-qO-", f"http://{name}:8080/hostname")
        assert r.stdout.strip() == web.stdout.strip()[:12], (name, r.stderr)
    insp = json.loads(berth("network", "inspect", "appnet").stdout)[0]
    assert {c["Name"] for c in insp["Containers"].values()} == {"client", "web"}
    assert insp["Labels"] == {"team": "a"}
    ci = json.loads(berth("inspect", "web").stdout)[0]["NetworkSettings"]
    assert ci["Networks"]["appnet"]["Aliases"] == ["www"]
    assert ci["Networks"]["appnet"]["IPAddress"] in hosts
    r = berth("network", "rm", "appnet")
    assert r.returncode == 1 and "has active endpoints" in r.stderr
    # a stopped peer disappears from the others' hosts files
    assert berth("stop", "-t", "1", "web").returncode == 0
    assert "web" not in berth("exec", "client", "cat", "/etc/hosts").stdout
    assert berth("rm", "-f", "client", "web").returncode == 0
    assert berth("network", "rm", "appnet").stdout == "appnet\n"
    assert f"brt-{nid[:11]}" not in _links()
    clean(networks_gone=True)


def test_ip_host_gateway_and_connect_disconnect(berth, busybox_image, clean, berth_env):
    berth("network", "create", "--subnet", "10.213.7.0/24", "--gateway", "10.213.7.254",
          "fixed")
    berth("network", "create", "other")
    gw = "10.213.7.254"
    # a server on the host bound to the gateway address only: reachable from the
    # container through host.docker.internal, and only because it was asked for
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((gw, 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve() -> None:
        c, _ = srv.accept()
        c.recv(1024)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = berth("run", "--rm", "--network", "fixed", "--ip", "10.213.7.9", "--add-host",
              "host.docker.internal:host-gateway", "busybox", "sh", "-c",
              f"ip -o -4 addr show eth0; grep host.docker /etc/hosts;"
              f" wget -qO- http://host.docker.internal:{port}/")
    srv.close()
    assert r.returncode == 0, r.stderr
    assert "inet 10.213.7.9/24" in r.stdout
    assert f"{gw}\thost.docker.internal" in r.stdout and r.stdout.endswith("hello")
    r = berth("run", "--rm", "--network", "fixed", "--ip", "10.99.0.1", "busybox", "true")
    assert r.returncode == 125 and "no configured subnet contains IP address" in r.stderr
    r = berth("run", "--rm", "--ip", "172.17.0.50", "busybox", "true")
    assert r.returncode == 125 and "user defined networks only" in r.stderr
    # connect a running container to a second network, then disconnect it
    berth("run", "-d", "--name", "ca", "--network", "fixed", "busybox", "sleep", "300")
    cb = berth("run", "-d", "--name", "cb", "--network", "other", "busybox", "httpd", "-f",
               "-p", "80", "-h", "/etc").stdout.strip()
    assert berth("network", "connect", "--alias", "bee", "other", "ca").returncode == 0
    r = berth("exec", "ca", "sh", "-c", "ip -o link show eth1 && wget -qO- http://cb/hostname")
    assert r.returncode == 0 and "eth1" in r.stdout and cb[:12] in r.stdout, r.stderr
    # the alias is ca's name on "other": recorded, and resolvable by its peers there
    ca_other = json.loads(berth("inspect", "ca").stdout)[0]["NetworkSettings"]["Networks"][
        "other"]
    assert ca_other["Aliases"] == ["bee"]
    hosts = berth("exec", "cb", "cat", "/etc/hosts").stdout
    assert re.search(rf"^{re.escape(ca_other['IPAddress'])}\tca bee [0-9a-f]{{12}}$", hosts,
                     re.M), hosts
    r = berth("exec", "cb", "ping", "-c", "1", "-W", "5", "bee")
    assert r.returncode == 0 and f"({ca_other['IPAddress']})" in r.stdout, r.stdout + r.stderr
    assert berth("network", "disconnect", "other", "ca").returncode == 0
    r = berth("exec", "ca", "ip", "-o", "link")
    assert "eth1" not in r.stdout and "eth0" in r.stdout
    r = berth("network", "disconnect", "other", "ca")
    assert r.returncode == 1 and "is not connected" in r.stderr
    berth("rm", "-f", "ca", "cb")
    clean(networks_gone=True)


def test_container_network_mode_shares_the_namespace(berth, busybox_image, clean):
    berth("run", "-d", "--name", "owner", "busybox", "httpd", "-f", "-p", "8081", "-h",
          "/etc")
    own = berth("exec", "owner", "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3]
    r = berth("run", "--rm", "--network", "container:owner", "busybox", "sh", "-c",
              "ip -o -4 addr show eth0; wget -qO- http://127.0.0.1:8081/hostname")
    assert r.returncode == 0, r.stderr
    assert own in r.stdout
    r = berth("run", "--rm", "--network", "container:owner", "-p", "80:80", "busybox", "true")
    assert r.returncode == 125 and "conflicting options: port publishing" in r.stderr
    r = berth("run", "--rm", "--network", "container:nosuch", "busybox", "true")
    assert r.returncode == 125 and "No such container: nosuch" in r.stderr
    berth("rm", "-f", "owner")
    clean(networks_gone=True)


def test_network_errors_leave_nothing_and_prune(berth, busybox_image, clean):
    r = berth("run", "--rm", "--network", "nosuch", "busybox", "true")
    assert (r.returncode, r.stderr) == (125, "Error: network nosuch not found\n")
    r = berth("run", "--rm", "--network-alias", "x", "busybox", "true")
    assert r.returncode == 125 and "user defined networks" in r.stderr
    assert berth("ps", "-aq").stdout == ""
    for name in ("bridge", "host", "none"):
        r = berth("network", "rm", name)
        assert r.returncode == 1
        assert f"{name} is a pre-defined network and cannot be removed" in r.stderr
    r = berth("network", "rm", "nosuch")
    assert r.returncode == 1 and "network nosuch not found" in r.stderr
    berth("network", "create", "--internal", "keep")
    berth("network", "create", "--label", "x=1", "gone1")
    berth("network", "create", "gone2")
    berth("create", "--name", "holder", "--network", "keep", "busybox", "true")
    r = berth("network", "prune", "-f", "--filter", "label=x=1")
    assert r.stdout == "Deleted Networks:\ngone1\n"
    r = berth("network", "prune", "-f")
    assert r.stdout == "Deleted Networks:\ngone2\n"
    assert berth("network", "ls", "-q", "--filter", "type=custom").stdout.count("\n") == 1
    # an internal network: no default route, no masquerade
    r = berth("run", "--rm", "--network", "keep", "busybox", "ip", "route")
    assert "default" not in r.stdout and r.returncode == 0
    berth("rm", "holder")
    clean(networks_gone=True)
