"""``system reset`` leaves nothing of a store on the host; prunes remove unused networks.

A store with running containers on the default bridge and on a user network (veths,
namespaces, a port proxy, nft rules), a stopped one with a volume and a mounted rootfs is
reset; afterwards no directory, mount, process, bridge, veth or firewall rule of it is left.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root and nft")


@pytest.fixture(autouse=True)
def _no_host_forwarding(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BERTH_IP_FORWARD", "0")


def _host_state(root: str, runroot: str, ids: list[str]) -> list[str]:
    """Everything on the host that names this store or its containers/networks."""
    from berth.store.wipe import mounts_under, processes_naming

    found = [f"mount {m}" for m in mounts_under([root, runroot])]
    found += [f"process {p}" for p in processes_naming([root, runroot])]
    for path in (root, runroot):
        if os.path.lexists(path):
            found.append(f"dir {path}: {sorted(os.listdir(path))}")
    rules = subprocess.run(["nft", "list", "table", "ip", "berth"], capture_output=True,
                           text=True, check=False).stdout
    found += [f"nft rule {ln.strip()}" for ln in rules.splitlines()
              if any(i in ln for i in ids)]
    links = os.listdir("/sys/class/net")
    found += [f"link {n}" for n in links if any(n in i for i in ids if len(n) > 4)]
    return found


def test_reset_removes_every_trace(berth, berth_env, busybox_image):  # type: ignore[no-untyped-def]
    root, runroot = berth_env["root"], berth_env["runroot"]
    assert berth("network", "create", "resetnet").returncode == 0
    r = berth("run", "-d", "--name", "ra", "--network", "resetnet", "-p", "127.0.0.1::80",
              "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert berth("run", "-d", "--name", "rb", "busybox", "sleep", "300").returncode == 0
    assert berth("volume", "create", "v1").returncode == 0
    r = berth("run", "--name", "rc", "-v", "v1:/data", "busybox", "sh", "-c",
              "echo hi > /data/f")
    assert r.returncode == 0, r.stderr
    out = os.path.join(berth_env["tmp"], "passwd")
    r = berth("cp", "rc:/etc/passwd", out)  # mounts the stopped container's rootfs
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(os.path.join(root, "berth.db")) as c:
        nets = c.execute("SELECT id, options FROM networks WHERE driver='bridge'").fetchall()
        cids = [r[0] for r in c.execute("SELECT id FROM containers")]
    bridges = [json.loads(o)["bridge"] for _, o in nets]
    assert len(bridges) == 2 and all(os.path.exists(f"/sys/class/net/{b}") for b in bridges)
    ids = [n for n, _ in nets] + cids + bridges
    assert _host_state(root, runroot, ids), "the setup made no host state to remove"

    r = berth("system", "reset", "--force")
    assert r.returncode == 0, r.stderr
    assert _host_state(root, runroot, ids) == []
    assert not any(os.path.exists(f"/sys/class/net/{b}") for b in bridges)


def test_reset_asks_first_and_keeps_the_config(berth, berth_env, busybox_image):  # type: ignore[no-untyped-def]
    root = berth_env["root"]
    r = berth("system", "reset", input="n\n")
    assert r.returncode == 0
    assert "WARNING! This will remove" in r.stdout and "all images" in r.stdout
    assert berth("image", "inspect", "busybox").returncode == 0  # nothing happened
    with open(os.path.join(root, "berth.toml"), "w") as f:
        f.write("[storage]\n")
    r = berth("system", "reset", input="y\n")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(root)) == ["berth.toml"]
    r = berth("images", "-q")
    assert r.returncode == 0 and r.stdout == ""


def test_prunes_remove_unused_networks_but_keep_the_default(berth, busybox_image):  # type: ignore[no-untyped-def]
    assert berth("network", "create", "unused1").returncode == 0
    assert berth("network", "create", "used1").returncode == 0
    r = berth("run", "-d", "--name", "px", "--network", "used1", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert berth("create", "--name", "py", "busybox").returncode == 0  # makes `bridge`
    r = berth("system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert "Deleted Networks:\nunused1\n" in r.stdout
    names = berth("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["bridge", "host", "none", "used1"]
    assert berth("network", "prune", "-f").returncode == 0
    names = berth("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["bridge", "host", "none", "used1"]
