"""A reboot, simulated: processes killed, mounts gone, the runroot (a tmpfs) emptied,
bridges gone. And the runroot deleted while containers run.

After a reboot every container starts again (everything a start needs under the runroot
is recreated), ``--restart`` containers come back through ``berth system boot`` (the hook
``contrib/systemd/berth-restart.service`` runs) and show Exited until then.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from faults.killing import mounts, ok

pytestmark = pytest.mark.slow


def _pids_with(text: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(name))
    return out


def _cgroup_pids(cid: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cgroup") as f:
                if f"/berth/{cid}" in f.read():
                    out.append(int(name))
        except OSError:
            continue
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ids(berth) -> list[str]:  # type: ignore[no-untyped-def]
    return berth("ps", "-aq", "--no-trunc").stdout.split()


def _reboot(berth, env: dict) -> None:  # type: ignore[no-untyped-def]
    """What a power cycle does to berth's world (the root on disk survives)."""
    root, runroot = env["root"], env["runroot"]
    ids = _ids(berth)
    with sqlite3.connect(os.path.join(root, "berth.db")) as db:
        bridges = [json.loads(o or "{}").get("bridge") for (o,) in
                   db.execute("SELECT options FROM networks")]
    # a power cycle stops everything at once; here processes die one by one, so a
    # monitor or exit command spawned meanwhile is caught by the next pass
    for _ in range(3):
        for _ in range(50):  # conmon first (no exit command), and whatever it spawned
            pids = [p for p in _pids_with(root) if p != os.getpid()]
            if not pids:
                break
            _kill(pids)
            time.sleep(0.05)
        for cid in ids:
            _kill(_cgroup_pids(cid))
            _kill(_pids_with(f"ctr:{cid}"))  # userland proxies run "--for ctr:<id>"
        time.sleep(0.2)
        for m in sorted(mounts(root) + mounts(runroot), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(runroot, ignore_errors=True)
    for br in filter(None, bridges):
        subprocess.run(["ip", "link", "del", br], check=False)


def _state(berth, name: str) -> str:  # type: ignore[no-untyped-def]
    r = berth("inspect", "-f", "{{.State.Status}}", name)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _connects(port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def test_reboot_then_start_and_boot_hook(bb, berth_env):  # type: ignore[no-untyped-def]
    ok(bb("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox",
          "httpd", "-f", "-p", "80", "-h", "/"))
    ok(bb("run", "-d", "--name", "always", "--network", "none", "--restart", "always",
          "busybox", "sleep", "1000"))
    ok(bb("run", "-d", "--name", "unless", "--network", "none", "--restart",
          "unless-stopped", "busybox", "sleep", "1000"))
    ok(bb("stop", "-t", "0", "unless"))  # stopped by the user: stays stopped
    ok(bb("run", "-d", "--name", "plain", "--network", "none", "busybox", "sleep", "1000"))
    _reboot(bb, berth_env)

    r = bb("ps", "-a", "--format", "{{.Names}} {{.State}}")
    ok(r)
    states = dict(line.split() for line in r.stdout.splitlines())
    assert states == {"web": "exited", "always": "exited", "unless": "exited",
                      "plain": "exited"}, r.stdout

    ok(bb("start", "web"))  # -p: proxy log, netns, veth, bridge all made again
    port = int(bb("port", "web", "80").stdout.strip().rsplit(":", 1)[1])
    assert _connects(port)

    r = bb("system", "boot")
    ok(r)
    assert r.stdout.split() == ["always"]
    assert _state(bb, "always") == "running"
    assert _state(bb, "unless") == "exited"
    assert _state(bb, "plain") == "exited"
    ok(bb("system", "boot"))  # again: nothing starts twice
    assert bb("system", "boot").stdout.strip() == ""
    ok(bb("start", "plain"))
    for name in ("web", "always", "plain", "unless"):
        ok(bb("rm", "-f", name))


def test_restarting_container_after_reboot_shows_exited(bb, berth_env):  # type: ignore[no-untyped-def]
    """A container between two restarts when the machine went down shows Exited, not
    Restarting forever."""
    ok(bb("run", "-d", "--name", "flap", "--network", "none", "--restart", "always",
          "busybox", "sh", "-c", "exit 3"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # backoff doubles: from the 5th restart on, the
        r = bb("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "flap")  # gap is
        state, count = r.stdout.split()  # over 1.6 s, long enough to reboot within
        if state == "restarting" and int(count) >= 5:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("never saw the container between two restarts")
    _reboot(bb, berth_env)
    assert _state(bb, "flap") == "exited"
    ok(bb("system", "boot"))
    assert _state(bb, "flap") in ("running", "restarting")
    ok(bb("rm", "-f", "flap"))


def test_runroot_deleted_while_containers_run(bb, berth_env):  # type: ignore[no-untyped-def]
    """stop, kill and rm -f reach the processes through the cgroup, and never report
    success while a process lives."""
    pids = {}
    for name in ("sa", "ka", "ra", "pa"):
        ok(bb("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000"))
        pids[name] = int(bb("inspect", "-f", "{{.State.Pid}}", name).stdout)
        assert os.path.exists(f"/proc/{pids[name]}")
    ok(bb("pause", "pa"))  # frozen: a SIGKILL alone would wait for a thaw forever
    for m in sorted(mounts(berth_env["runroot"]), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(berth_env["runroot"])

    ok(bb("stop", "-t", "1", "sa"))
    assert not _alive(pids["sa"])
    ok(bb("kill", "ka"))
    assert not _alive(pids["ka"])
    ok(bb("rm", "-f", "ra"))
    assert not _alive(pids["ra"])
    assert bb("inspect", "ra").returncode != 0
    ok(bb("rm", "-f", "pa"))
    assert not _alive(pids["pa"])
    for name in ("sa", "ka"):
        ok(bb("rm", "-f", name))
    assert mounts(berth_env["root"]) == []


def _alive(pid: int) -> bool:
    """Still there 3 s later (a zombie, or gone, counts as dead)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:
            return False
        time.sleep(0.05)
    return True
