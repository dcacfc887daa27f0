"""Published ports: ``-p``/``-P``, ranges, ``port``, the PORTS column, conflicts, teardown.

Only 127.0.0.1 is dialled (the userland proxy serves loopback, as docker-proxy does).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from test_networks import leftovers  # noqa: E402 - same directory (pytest rootdir import)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root and nft")
IPV6 = os.path.exists("/proc/net/if_inet6")


@pytest.fixture(autouse=True)
def _no_host_forwarding(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BERTH_IP_FORWARD", "0")


def free_port(n: int = 1) -> int:
    """The first of ``n`` consecutive ports free on every address right now."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        first = s.getsockname()[1]
        s.close()
        if first + n > 60999:
            continue
        ok = True
        for p in range(first, first + n):
            for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                t = socket.socket(fam)
                try:
                    t.bind((addr, p))
                except OSError:
                    ok = False
                finally:
                    t.close()
        if ok:
            return first
    raise RuntimeError("no free ports")


def assert_port_free(port: int) -> None:
    """Nobody listens there (TIME_WAIT leftovers of our own requests do not count)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    finally:
        s.close()


def get(port: int, path: str = "/hostname", timeout: float = 10.0) -> str:
    end = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.read().decode().strip()
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.1)


def _httpd(*ports: int) -> list[str]:
    """busybox httpd on each port (serving /etc), in one container."""
    cmd = " & ".join(f"httpd -f -p {p} -h /etc" for p in ports)
    return ["sh", "-c", cmd + " & wait"]


def test_publish_loopback_column_port_and_inspect(berth, busybox_image, berth_env):
    hp = free_port()
    r = berth("run", "-d", "--name", "web", "-p", f"127.0.0.1:{hp}:80", "busybox",
              *_httpd(80))
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert get(hp) == cid[:12]
    # loopback is DNAT'ed: no process serves the port, conmon is the container's only helper
    assert _helpers(cid) == ["conmon"]
    ps = berth("ps", "--format", "{{.Names}}|{{.Ports}}").stdout
    assert ps == f"web|127.0.0.1:{hp}->80/tcp\n"
    table = berth("ps").stdout.splitlines()
    assert "PORTS" in table[0] and f"127.0.0.1:{hp}->80/tcp" in table[1]
    assert berth("port", "web").stdout == f"80/tcp -> 127.0.0.1:{hp}\n"
    assert berth("port", "web", "80/tcp").stdout == f"127.0.0.1:{hp}\n"
    r = berth("port", "web", "81")
    assert (r.returncode, r.stderr) == (1, "Error: No public port '81/tcp' published for web\n")
    ns = json.loads(berth("inspect", "web").stdout)[0]
    assert ns["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                          "HostPort": str(hp)}]}
    assert ns["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                            "HostPort": str(hp)}]}
    # stop: proxy and rules go, the port is free again; start: published again
    assert berth("stop", "-t", "1", "web").returncode == 0
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []
    assert berth("ps", "-a", "--format", "{{.Names}}:{{.Ports}}").stdout == "web:\n"
    assert_port_free(hp)
    assert berth("start", "web").returncode == 0
    assert get(hp) == cid[:12]
    assert berth("rm", "-f", "web").returncode == 0
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []


def _helpers(cid: str) -> list[str]:
    """Names of host processes whose command line names the container."""
    from leaks import procs_of

    names = []
    for pid, _cmd in procs_of(cid, set()):
        try:
            with open(f"/proc/{pid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            continue
    return sorted(n for n in names if n != "berth")  # (not a CLI that is just exiting)


def test_a_port_another_root_publishes_is_taken(berth, busybox_image, berth_env, tmp_path):
    """Two berth roots share the host's ports: the nft table says who has which."""
    hp = free_port()
    assert berth("run", "-d", "--name", "web", "-p", f"127.0.0.1:{hp}:80", "busybox",
                 *_httpd(80)).returncode == 0
    env = dict(os.environ, BERTH_ROOT=str(tmp_path / "r2"), BERTH_RUNROOT=str(tmp_path / "x2"))
    from pathlib import Path

    from berth.engine import Engine
    from testimages import busybox_rootfs_tar

    tar = busybox_rootfs_tar(Path(tmp_path / "bb2.tar"))
    with Engine(env["BERTH_ROOT"], env["BERTH_RUNROOT"]) as eng, open(tar, "rb") as f:
        eng.import_image(f, "busybox:latest", changes=['CMD ["sh"]'])
    try:
        r = subprocess.run([sys.executable, "-m", "berth", "run", "-d", "-p", f"{hp}:80",
                            "busybox", "sleep", "30"], env=env, capture_output=True, text=True)
        assert (r.returncode, r.stderr) == (
            125, f"Error: Bind for 0.0.0.0:{hp} failed: port is already allocated\n")
        assert get(hp) == berth("inspect", "--format", "{{.Config.Hostname}}", "web").stdout.strip()
    finally:
        with Engine(env["BERTH_ROOT"], env["BERTH_RUNROOT"]) as eng:
            eng.remove_all_containers()
            eng.remove_all_networks()
    berth("rm", "-f", "web")
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []


def test_publish_all_addresses_ranges_and_publish_all(berth, engine, busybox_tar, berth_env):
    with open(busybox_tar, "rb") as f:
        engine.import_image(f, "webimg:latest",
                            changes=['CMD ["sh"]', "EXPOSE 80", "EXPOSE 81/tcp"])
    hp = free_port(3)
    r = berth("run", "-d", "--name", "multi", "-p", f"{hp}:80",
              "-p", f"127.0.0.1:{hp + 1}-{hp + 2}:81-82", "--expose", "9000",
              "webimg", *_httpd(80, 81, 82))
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    for p in (hp, hp + 1, hp + 2):
        assert get(p) == cid[:12]
    col = berth("ps", "--format", "{{.Ports}}").stdout.strip()
    want = [f"0.0.0.0:{hp}->80/tcp", f"127.0.0.1:{hp + 1}->81/tcp",
            f"127.0.0.1:{hp + 2}->82/tcp", "9000/tcp"] + ([f"[::]:{hp}->80/tcp"] if IPV6 else [])
    assert sorted(col.split(", ")) == sorted(want), col
    lines = berth("port", "multi").stdout.splitlines()
    assert f"80/tcp -> 0.0.0.0:{hp}" in lines and f"81/tcp -> 127.0.0.1:{hp + 1}" in lines
    # -P: every exposed port (image EXPOSE + --expose) to a random host port
    r = berth("run", "-d", "--name", "rand", "-P", "--expose", "82", "webimg",
              *_httpd(80, 81, 82))
    assert r.returncode == 0, r.stderr
    got = {}
    for line in berth("port", "rand").stdout.splitlines():
        priv, _, pub = line.partition(" -> ")
        if pub.startswith("0.0.0.0:"):
            got[priv] = int(pub.rsplit(":", 1)[1])
    assert sorted(got) == ["80/tcp", "81/tcp", "82/tcp"]
    lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert all(lo <= p <= hi for p in got.values())
    assert get(got["81/tcp"]) == r.stdout.strip()[:12]
    assert berth("rm", "-f", "multi", "rand").returncode == 0
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []


def test_taken_port_is_a_clear_error_and_leaves_nothing(berth, busybox_image, berth_env):
    hp = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", hp))
    holder.listen(1)
    try:
        r = berth("run", "-d", "-p", f"127.0.0.1:{hp}:80", "busybox", "sleep", "30")
        assert r.returncode == 125
        assert r.stderr == f"Error: Bind for 127.0.0.1:{hp} failed: port is already allocated\n"
        r = berth("run", "-d", "-p", f"{hp}:80", "busybox", "sleep", "30")
        assert r.returncode == 125
        assert r.stderr == f"Error: Bind for 0.0.0.0:{hp} failed: port is already allocated\n"
    finally:
        holder.close()
    assert berth("ps", "-aq").stdout == ""
    # a port another berth container holds is taken as well
    assert berth("run", "-d", "--name", "first", "-p", f"127.0.0.1:{hp}:80", "busybox",
                 "sleep", "60").returncode == 0
    r = berth("run", "--rm", "-p", f"{hp}:80", "busybox", "true")
    assert (r.returncode, r.stderr) == (
        125, f"Error: Bind for 0.0.0.0:{hp} failed: port is already allocated\n")
    assert berth("ps", "-aq").stdout.count("\n") == 1
    # a port already taken is refused at create: nothing half-made
    second = berth("create", "--name", "second", "-p", f"127.0.0.1:{hp}:80", "busybox",
                   "sleep", "60")
    assert (second.returncode, second.stderr) == (
        125, f"Error: Bind for 127.0.0.1:{hp} failed: port is already allocated\n")
    berth("rm", "-f", "first")
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []


def test_port_taken_between_create_and_start(berth, busybox_image, berth_env):
    hp = free_port()
    assert berth("create", "--name", "late", "-p", f"127.0.0.1:{hp}:80", "busybox", "httpd",
                 "-f", "-p", "80", "-h", "/etc").returncode == 0
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", hp))
    holder.listen(1)
    try:
        r = berth("start", "late")
        assert (r.returncode, r.stderr) == (  # Docker's two lines: the cause, then the summary
            1, f"Error: Bind for 127.0.0.1:{hp} failed: port is already allocated\n"
               "Error: failed to start containers: late\n")
        state = json.loads(berth("inspect", "late").stdout)[0]["State"]
        assert state["Status"] == "created" and state["Pid"] == 0
        assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []
    finally:
        holder.close()
    # nothing of the failed start stands in the way once the port is free again
    assert berth("start", "late").returncode == 0
    assert get(hp) == json.loads(berth("inspect", "late").stdout)[0]["Config"]["Hostname"]
    berth("rm", "-f", "late")


def test_sigkilled_cli_then_prune_leaves_nothing(berth, busybox_image, berth_env):
    hp = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "berth", "run", "--name", "victim", "-p",
                             f"127.0.0.1:{hp}:80", "busybox", "sh", "-c",
                             "httpd -p 80 -h /etc; sleep 3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ))
    try:
        assert get(hp, timeout=20)  # published and served: the CLI is mid-run
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    end = time.time() + 20
    while time.time() < end and "Exited" not in berth("ps", "-a").stdout:
        time.sleep(0.2)
    assert "Exited" in berth("ps", "-a").stdout
    r = berth("container", "prune", "-f")
    assert r.returncode == 0 and "Deleted Containers:" in r.stdout
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []
    assert_port_free(hp)
