"""Rootless publishing through pasta: ``-P``, port ranges, and ports below the sysctl."""

from __future__ import annotations

import os
import socket
import time
import urllib.request

import pytest

SERVE = "mkdir /w && echo hi-$P > /w/index.html && httpd -f -p $P -h /w"


@pytest.fixture
def pasta_user(rootless_busybox):  # type: ignore[no-untyped-def]
    from berth.rootless.pasta import usable

    if usable() is not None:
        pytest.skip(f"pasta unusable here: {usable()}")
    return rootless_busybox


def _get(port: int) -> bytes:
    for _ in range(100):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
        except OSError:
            time.sleep(0.1)
    return b""


def _free_run(n: int) -> int:
    """The first of ``n`` consecutive free high ports."""
    for base in range(42000 + os.getpid() % 997, 60000, 97):
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
    raise AssertionError("no free port run")


def test_publish_all_and_ranges(pasta_user):
    u = pasta_user
    base = _free_run(3)
    # -P: every exposed port to a random ephemeral host port; a paired range alongside
    p = u.berth("run", "-d", "--name", "web", "-P", "--expose", "81", "-p",
                f"{base}-{base + 1}:82-83", "busybox", "sh", "-c",
                " & ".join(SERVE.replace("$P", str(x)).replace("/w", f"/w{x}")
                           for x in (81, 82, 83)) + " & wait")
    assert p.returncode == 0, p.stderr
    lines = u.berth("port", "web").stdout.splitlines()
    by_port = {ln.split()[0]: ln.split()[-1].rpartition(":")[2] for ln in lines}
    assert by_port["82/tcp"] == str(base) and by_port["83/tcp"] == str(base + 1), lines
    random_port = int(by_port["81/tcp"])
    lo, _hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert random_port >= lo, lines
    assert _get(random_port) == b"hi-81\n"
    assert _get(base) == b"hi-82\n" and _get(base + 1) == b"hi-83\n"
    assert f"0.0.0.0:{random_port}->81/tcp" in u.berth("ps").stdout
    assert u.berth("rm", "-f", "web").returncode == 0
    assert os.listdir(os.path.join(u.runroot, "netns")) == []   # netns, pasta, ports gone
    # HOSTRANGE:PORT takes one free port of the range
    base = _free_run(3)
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", base))
        busy.listen()
        p = u.berth("run", "-d", "--name", "one", "-p", f"{base}-{base + 2}:80", "busybox",
                    "sh", "-c", SERVE.replace("$P", "80"))
        assert p.returncode == 0, p.stderr
        got = u.berth("port", "one", "80").stdout.strip().rpartition(":")[2]
        assert got in (str(base + 1), str(base + 2)), got
        assert _get(int(got)) == b"hi-80\n"
    assert u.berth("rm", "-f", "one").returncode == 0


def test_low_host_ports_refused_with_the_sysctl(pasta_user):
    u = pasta_user
    low = int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read())
    if low <= 80:
        pytest.skip(f"net.ipv4.ip_unprivileged_port_start={low} lets users bind port 80")
    for spec, shown in (("80-81:80-81", "80"), (f"{low - 2}-{low + 5}:80",
                                                 f"{low - 2}-{low + 5}")):
        p = u.berth("run", "--rm", "-p", spec, "busybox", "true")
        assert p.returncode == 125, p.stderr
        assert p.stderr == (f"Error: cannot publish host port {shown} rootless: ports below "
                            f"{low} need root (net.ipv4.ip_unprivileged_port_start={low})\n")
    assert u.berth("ps", "-aq").stdout == ""
