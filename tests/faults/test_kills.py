"""SIGKILL at named and random points of the commands that change the store.

After every kill the next command works, ``system check`` finds nothing damaged, and
whatever the killed command left is cleaned up by the next run of the same command
(``system check`` then reports no garbage either). Slow: a few rounds per command.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from faults.killing import (
    check,
    kill_after,
    kill_at,
    mounts,
    ok,
    procs_in_cgroup_prefix,
)

pytestmark = pytest.mark.slow


def _runtime_states(runroot: str, prefix: str) -> list[str]:
    out = []
    base = os.path.join(runroot, "runtime")
    for rt in os.listdir(base) if os.path.isdir(base) else []:
        d = os.path.join(base, rt)
        if os.path.isdir(d):
            out += [n for n in os.listdir(d) if n.startswith(prefix)]
    return out


def test_build_killed_during_run_step(bb, berth_env, tmp_path):  # type: ignore[no-untyped-def]
    """The RUN's process is killed, its runtime state deleted, its mounts gone, and no
    later command fails with EBUSY."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN sleep 1000\n")
    root = berth_env["root"]
    for cmd in (["ps"], ["images"], ["system", "check", "--repair"]):
        kill_at(["build", "-t", "x", str(ctx)], "build-run", tmp_path)
        cid = _run_step_id(root)
        deadline = time.monotonic() + 30  # the runtime goes on starting the container
        while not procs_in_cgroup_prefix(f"/berth/{cid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs_in_cgroup_prefix(f"/berth/{cid}"), "RUN never started"
        assert mounts(root), "the step's overlay should be mounted at the kill"
        ok(bb(*cmd))  # the first command after the kill cleans up, whichever it is
        assert mounts(root) == []
        assert procs_in_cgroup_prefix(f"/berth/{cid}") == []
        assert _runtime_states(berth_env["runroot"], cid) == []
        ok(bb("images"))
        check(bb, garbage_ok=False)


def _run_step_id(root: str) -> str:
    """The runtime ID of the RUN step a killed build left (from its workspace)."""
    import glob
    import json

    found = glob.glob(os.path.join(root, "tmp", "build-*", "release.json"))
    assert len(found) == 1, found
    with open(found[0]) as f:
        return json.load(f)["id"]


def test_build_killed_at_random_points(bb, berth_env, tmp_path):  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo a > /a && sleep 0.3\n"
                                    "COPY Dockerfile /d\nRUN echo b > /b\n")
    rng = random.Random(9)
    for _ in range(4):
        kill_after(["build", "-t", "x", str(ctx)], rng.uniform(0.2, 1.5))
        ok(bb("ps"))
        check(bb)
    kill_at(["build", "--no-cache", "-t", "x", str(ctx)], "before-commit", tmp_path)
    check(bb)
    ok(bb("build", "-q", "-t", "x", str(ctx)))
    ok(bb("run", "--rm", "x", "cat", "/a", "/b"))
    assert mounts(berth_env["root"]) == []
    check(bb, garbage_ok=False)


def test_commit_killed(bb, tmp_path):  # type: ignore[no-untyped-def]
    ok(bb("run", "-d", "--name", "ca", "--network", "none", "busybox", "sh", "-c",
          "echo hi > /f; sleep 1000"))
    for point in ("commit-frozen", "after-blob", "before-commit"):
        kill_at(["commit", "ca", "img:1"], point, tmp_path)
        check(bb)
        ok(bb("exec", "ca", "true"))  # not left frozen
    for delay in (0.15, 0.3):
        kill_after(["commit", "ca", "img:1"], delay)
        check(bb)
    ok(bb("commit", "ca", "img:1"))
    ok(bb("rm", "-f", "ca"))
    r = bb("run", "--rm", "--network", "none", "img:1", "cat", "/f")
    ok(r)
    assert r.stdout == "hi\n"
    check(bb, garbage_ok=False)


def test_pull_killed(bb, tmp_path):  # type: ignore[no-untyped-def]
    """Pull from a berth registry on 127.0.0.1 (its own store), killed mid-way."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    regroot = tmp_path / "regstore"
    reg = subprocess.Popen([sys.executable, "-m", "berth", "registry", "serve",
                            "--addr", f"127.0.0.1:{port}", "--storage", str(regroot)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ref = f"127.0.0.1:{port}/bb:1"
        ok(bb("tag", "busybox", ref))
        for _ in range(100):
            if bb("push", ref).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"push to the test registry failed: {reg.stderr}")
        ok(bb("rmi", "busybox", ref))
        for point in ("after-blob", "before-commit"):
            kill_at(["pull", ref], point, tmp_path)
            check(bb)
        kill_after(["pull", ref], 0.4)
        check(bb)
        ok(bb("pull", ref))
        ok(bb("run", "--rm", "--network", "none", ref, "true"))
        check(bb, garbage_ok=False)
    finally:
        reg.kill()
        reg.wait()


def test_run_detached_killed(bb, berth_env, tmp_path):  # type: ignore[no-untyped-def]
    """A killed ``run -d`` leaves a Created container whose ``start`` works."""
    for i, point in enumerate(("create-prepared", "start-network")):
        name = f"cc{i}"
        kill_at(["run", "-d", "--name", name, "-p", "127.0.0.1::8080", "busybox",
                 "sleep", "1000"], point, tmp_path)
        r = bb("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
        ok(r)
        assert r.stdout.strip() == "Created", r.stdout
        ok(bb("start", name))
        r = bb("inspect", "-f", "{{.State.Running}}", name)
        assert r.stdout.strip() == "true", (r.stdout, r.stderr)
        ok(bb("rm", "-f", name))
        check(bb)
    for delay in (0.3, 0.6):
        kill_after(["run", "-d", "--name", "rr", "--network", "none", "busybox",
                    "sleep", "1000"], delay)
        ok(bb("ps", "-a"))
        if bb("inspect", "rr").returncode == 0:
            ok(bb("start", "rr"))
            ok(bb("rm", "-f", "rr"))
        check(bb)
    assert mounts(berth_env["root"]) == []
    check(bb, garbage_ok=False)


def test_rm_force_killed(bb, berth_env, tmp_path):  # type: ignore[no-untyped-def]
    for how in ("rm-killed", 0.25):
        ok(bb("run", "-d", "--name", "ca", "-p", "127.0.0.1::8080", "busybox",
              "sleep", "1000"))
        if isinstance(how, str):
            kill_at(["rm", "-f", "ca"], how, tmp_path)
        else:
            kill_after(["rm", "-f", "ca"], how)
        ok(bb("ps", "-a"))
        check(bb)
        r = bb("rm", "-f", "ca")
        assert r.returncode == 0 or "No such container" in r.stderr, r.stderr
        assert bb("ps", "-aq").stdout.strip() == ""
        assert mounts(berth_env["root"]) == []
    check(bb, garbage_ok=False)


@pytest.mark.parametrize("command", [["image", "prune", "-a", "-f"],
                                     ["system", "prune", "-a", "-f"]])
def test_prune_killed(bb, tmp_path, command, busybox_tar):  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n")

    def images() -> None:
        ok(bb("import", str(busybox_tar), "busybox"))  # system prune -a removed it
        ok(bb("build", "-q", "-t", "p:1", str(ctx)))
        ok(bb("create", "--name", "stopped", "busybox", "true"))

    for how in ("gc-after-rows", 0.5):
        images()
        if isinstance(how, str):
            kill_at(command, how, tmp_path)
        else:
            kill_after(command, how)
        check(bb)
        ok(bb("images"))
        ok(bb(*command))
        check(bb, garbage_ok=False)
        bb("rm", "-f", "stopped")


def test_load_killed(bb, tmp_path):  # type: ignore[no-untyped-def]
    archive = tmp_path / "bb.tar"
    ok(bb("save", "-o", str(archive), "busybox"))
    ok(bb("rmi", "busybox"))
    for point in ("after-blob", "before-commit"):
        kill_at(["load", "-i", str(archive)], point, tmp_path)
        check(bb)
        ok(bb("images"))
    ok(bb("load", "-i", str(archive)))
    check(bb, garbage_ok=False)
