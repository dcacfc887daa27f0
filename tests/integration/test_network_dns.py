"""User-network DNS (aardvark-dns), hosts files under parallel starts, isolation.

Traffic stays inside the namespaces these tests make. Every test checks that no
aardvark-dns process of its store outlives its containers (the ``berth_env`` teardown
also fails on any process mentioning the test's directories).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading

import pytest
from test_networks import _until  # noqa: E402 - same directory (pytest rootdir import)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                       reason="needs root and nft"),
]


@pytest.fixture(autouse=True)
def _no_host_forwarding(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BERTH_IP_FORWARD", "0")


def _needs_aardvark() -> None:
    from berth.network.dns import server_binary

    if server_binary() is None:
        pytest.skip("aardvark-dns is not installed")


def aardvark_pids(runroot: str) -> list[int]:
    """aardvark-dns processes serving this store's config directory."""
    from leaks import procs_of

    cdir = os.path.join(runroot, "aardvark-dns")
    return [pid for pid, cmd in procs_of(cdir, set()) if "aardvark-dns " in cmd]


def lookup(berth, ctr: str, name: str) -> str:  # type: ignore[no-untyped-def]
    """The A record the container's resolver gets for ``name`` ("" if none).

    One query, no retry: busybox nslookup gives up after 5 s. aardvark-dns 1.4 sometimes
    leaves a query unanswered for seconds after it forwarded an unknown name upstream,
    where a real resolver (glibc, musl) would simply retry: see :func:`resolves`.
    """
    r = berth("exec", ctr, "nslookup", "-type=a", name)
    addrs = re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", r.stdout.split("Name:", 1)[-1]) \
        if "Name:" in r.stdout else []
    return addrs[0] if addrs else ""


def resolves(berth, ctr: str, name: str, want: str) -> bool:  # type: ignore[no-untyped-def]
    """``name`` resolves to ``want``, retrying as a stub resolver would (15 s at most)."""
    return _until(lambda: lookup(berth, ctr, name) == want, timeout=15)


def ip_of(berth, ctr: str, net: str) -> str:  # type: ignore[no-untyped-def]
    tmpl = '{{(index .NetworkSettings.Networks "' + net + '").IPAddress}}'
    return berth("inspect", "--format", tmpl, ctr).stdout.strip()


def test_user_network_dns_names_aliases_ids_and_lifecycle(berth, busybox_image, berth_env):
    _needs_aardvark()
    runroot = berth_env["runroot"]
    berth("network", "create", "dnsnet")
    # names aardvark-dns does not own go upstream: to a resolver of our own (see
    # test_other_names_are_forwarded_upstream), not to the host's
    berth("network", "create", "--subnet", "10.213.11.0/24", "upnet")
    upstream = subprocess.Popen([sys.executable, "-c", _TINY_DNS, "10.213.11.1"],
                                stdout=subprocess.PIPE, text=True)
    assert upstream.stdout.readline().strip() == "53"  # type: ignore[union-attr]
    net = berth("network", "inspect", "--format",
                "{{(index .IPAM.Config 0).Gateway}}", "dnsnet").stdout.strip()
    assert aardvark_pids(runroot) == []
    a = berth("run", "-d", "--name", "alpha", "--network", "dnsnet", "--dns", "10.213.11.1",
              "busybox", "sleep", "300")
    assert a.returncode == 0, a.stderr
    assert len(aardvark_pids(runroot)) == 1  # first container on a user network
    assert berth("exec", "alpha", "cat", "/etc/resolv.conf").stdout.startswith(
        f"nameserver {net}\n")
    b = berth("run", "-d", "--name", "beta", "--network", "dnsnet", "--network-alias",
              "db", "busybox", "sleep", "300")
    assert b.returncode == 0, b.stderr
    pid = aardvark_pids(runroot)
    assert len(pid) == 1
    beta_ip = ip_of(berth, "beta", "dnsnet")
    # names come from DNS, not the hosts file: empty the hosts file to prove it
    berth("exec", "alpha", "sh", "-c", "echo 127.0.0.1 localhost > /etc/hosts")
    for name in ("beta", "db", b.stdout.strip()[:12]):
        assert lookup(berth, "alpha", name) == beta_ip, name
    assert berth("exec", "alpha", "ping", "-c1", "-W2", "db").returncode == 0
    # answers change as containers come and go (same server, reloaded)
    assert berth("stop", "-t", "0", "beta").returncode == 0
    assert lookup(berth, "alpha", "beta") == ""
    assert berth("start", "beta").returncode == 0
    # the gateway's MAC is fixed: a bridge following its ports' MACs broke the others'
    # ARP entry for the gateway (where DNS answers) whenever a peer came back
    br = subprocess.run(["ip", "-o", "-4", "addr", "show", "to", net], capture_output=True,
                        text=True).stdout.split()[1]
    with open(f"/sys/class/net/{br}/addr_assign_type") as f:
        assert f.read().strip() == "3"  # NET_ADDR_SET
    assert resolves(berth, "alpha", "db", ip_of(berth, "beta", "dnsnet"))
    assert aardvark_pids(runroot) == pid
    # the default bridge keeps the host's resolvers and has no names
    r = berth("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert f"nameserver {net}" not in r.stdout
    # the last running container of the store's user networks stops the server
    berth("rm", "-f", "alpha", "beta")
    upstream.kill()
    upstream.wait()
    assert aardvark_pids(runroot) == []
    assert not os.path.exists(os.path.join(runroot, "aardvark-dns"))
    berth("network", "rm", "dnsnet", "upnet")


def test_other_names_are_forwarded_upstream(berth, busybox_image, berth_env):
    """Names aardvark-dns does not own go to the upstream resolvers.

    The host's own resolvers cannot be swapped in a test, so the upstream here is the
    container's ``--dns`` server (aardvark-dns's per-container forwarders, the same
    forwarding path): a one-name resolver of our own on a host address (the gateway of a
    second network, which the container could not reach directly -- it queries the
    gateway of its own network).
    """
    _needs_aardvark()
    berth("network", "create", "--subnet", "10.213.9.0/24", "fwdnet")
    berth("network", "create", "--subnet", "10.213.10.0/24", "upnet")
    srv = subprocess.Popen([sys.executable, "-c", _TINY_DNS, "10.213.10.1"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "53"  # type: ignore[union-attr]
        r = berth("run", "--rm", "--network", "fwdnet", "--dns", "10.213.10.1", "busybox",
                  "sh", "-c", "cat /etc/resolv.conf; nslookup -type=a upstream.example.test")
        assert r.stdout.startswith("nameserver 10.213.9.1\n"), r.stdout
        assert "192.0.2.77" in r.stdout, r.stdout + r.stderr
    finally:
        srv.kill()
        srv.wait()
    assert aardvark_pids(berth_env["runroot"]) == []
    berth("network", "rm", "fwdnet", "upnet")


# a one-name UDP DNS server: answers upstream.example.test A 192.0.2.77
_TINY_DNS = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 53))
print(53, flush=True)
while True:
    q, addr = s.recvfrom(512)
    end = q.index(b"\0", 12) + 5
    name = q[12:end - 4]
    ok = name == b"\x08upstream\x07example\x04test\x00" and q[end - 4:end - 2] == b"\0\1"
    flags = b"\x81\x80" if ok else b"\x81\x83"
    head = q[:2] + flags + b"\0\1" + (b"\0\1" if ok else b"\0\0") + b"\0\0\0\0"
    ans = b"\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4" + bytes([192, 0, 2, 77]) if ok else b""
    s.sendto(head + q[12:end] + ans, addr)
"""


@pytest.mark.slow
def test_parallel_starts_all_see_each_other(berth, busybox_image, berth_env):
    """Compose starts services at once: each of 6 must find all others, by hosts and DNS."""
    berth("network", "create", "par")
    names = [f"svc{i}" for i in range(6)]
    for n in names:
        assert berth("create", "--name", n, "--network", "par", "busybox", "sleep",
                     "300").returncode == 0
    errs: list[str] = []

    def start(n: str) -> None:
        r = berth("start", n)
        if r.returncode != 0:
            errs.append(r.stderr)

    threads = [threading.Thread(target=start, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errs == []
    ips = {n: ip_of(berth, n, "par") for n in names}
    for n in names:
        hosts = berth("exec", n, "cat", "/etc/hosts").stdout
        for peer in names:
            if peer != n:
                assert re.search(rf"^{re.escape(ips[peer])}\t{peer} ", hosts, re.M), \
                    (n, peer, hosts)
    from berth.network.dns import server_binary

    if server_binary() is not None:
        assert len(aardvark_pids(berth_env["runroot"])) == 1
        for n in names[:2]:
            for peer in names:
                if peer != n:
                    assert lookup(berth, n, peer) == ips[peer], (n, peer)
    berth("rm", "-f", *names)
    assert _until(lambda: aardvark_pids(berth_env["runroot"]) == [])
    berth("network", "rm", "par")


@pytest.mark.slow
def test_bridge_networks_are_isolated_from_each_other(berth, busybox_image, berth_env,
                                                      tmp_path):
    """nc/wget across networks fails, within one works; also across two berth roots."""
    berth("network", "create", "left")
    berth("network", "create", "right")
    berth("network", "create", "--internal", "inner")
    for name, net in (("srv-l", "left"), ("srv-b", "bridge"), ("srv-i", "inner")):
        assert berth("run", "-d", "--name", name, "--network", net, "busybox", "httpd",
                     "-f", "-p", "80", "-h", "/etc").returncode == 0
    for name, net in (("cli-l", "left"), ("cli-r", "right"), ("cli-b", "bridge")):
        assert berth("run", "-d", "--name", name, "--network", net, "busybox", "sleep",
                     "300").returncode == 0
    ips = {n: ip_of(berth, n, net) for n, net in
           (("srv-l", "left"), ("srv-b", "bridge"), ("srv-i", "inner"))}

    def reach(cli: str, srv: str) -> bool:
        r = berth("exec", cli, "timeout", "3", "wget", "-qO-", f"http://{ips[srv]}/hostname")
        return r.returncode == 0

    assert _until(lambda: reach("cli-l", "srv-l"))  # same network (once httpd listens)
    assert not reach("cli-r", "srv-l")             # user -> user
    assert not reach("cli-b", "srv-l")             # default bridge -> user
    assert not reach("cli-l", "srv-b")             # user -> default bridge
    assert not reach("cli-r", "srv-i")             # into an internal network
    r = berth("exec", "cli-r", "timeout", "3", "nc", ips["srv-l"], "80")
    assert r.returncode != 0
    # a second berth root on the same host: its containers cannot reach ours either
    env = dict(os.environ, BERTH_ROOT=str(tmp_path / "root2"),
               BERTH_RUNROOT=str(tmp_path / "run2"))
    other = _other_root(env, busybox_image)
    try:
        # (wget must not be PID 1, which ignores timeout's SIGTERM; "|| exit" keeps sh
        # from exec'ing it)
        r = subprocess.run([sys.executable, "-m", "berth", "run", "--rm", "busybox", "sh",
                            "-c", f"timeout 3 wget -qO- http://{ips['srv-b']}/hostname "
                            "|| exit 1"],
                           env=env, capture_output=True, text=True)
        assert r.returncode != 0, r.stdout
        r = subprocess.run([sys.executable, "-m", "berth", "run", "--rm", "busybox", "ping",
                            "-c1", "-W1", ips["srv-b"]], env=env, capture_output=True)
        assert r.returncode != 0
    finally:
        other.close()
    berth("rm", "-f", "srv-l", "srv-b", "srv-i", "cli-l", "cli-r", "cli-b")
    for n in ("left", "right", "inner"):
        berth("network", "rm", n)


class _OtherRoot:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def close(self) -> None:
        from berth.engine import Engine

        with Engine(root=self.env["BERTH_ROOT"], runroot=self.env["BERTH_RUNROOT"]) as eng:
            eng.remove_all_containers()
            eng.remove_all_networks()


def _other_root(env: dict[str, str], _image: str) -> _OtherRoot:
    from pathlib import Path

    from berth.engine import Engine
    from testimages import busybox_rootfs_tar

    tar = busybox_rootfs_tar(Path(env["BERTH_RUNROOT"] + "-img.tar"))
    with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as eng, \
            open(tar, "rb") as f:
        eng.import_image(f, "busybox:latest", changes=['CMD ["sh"]'])
    return _OtherRoot(env)
