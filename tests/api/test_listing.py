"""``GET /containers/json`` in a long-lived service: cached rows and pidfd-held proofs of life
(berth.container.liveness) must never show a stale answer. Driven by docker-py."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest


@pytest.fixture
def client(service):  # type: ignore[no-untyped-def]
    import docker

    c = docker.DockerClient(base_url=service["host"], version="1.41", timeout=60)
    yield c
    c.close()


def _names(client, **kw) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Names and states from ``GET /containers/json`` alone (docker-py's
    ``containers.list()`` would also inspect each one: a lookup of its own)."""
    return {x["Names"][0][1:]: x["State"] for x in client.api.containers(**kw)}


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.02)


def test_ps_sees_an_exit_nobody_recorded(client, engine):  # type: ignore[no-untyped-def]
    """conmon SIGKILLed, then the container's process: no exit file, no exit command, the
    row still says running. A warm listing must notice (the held pidfd turns readable)."""
    a = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="ca",
                              network_mode="none")
    client.containers.run("busybox", ["sleep", "1000"], detach=True, name="cb",
                          network_mode="none")
    for _ in range(3):  # warm: rows parsed once, proofs held
        assert _names(client) == {"ca": "running", "cb": "running"}
    rec = engine.container_service.get(a.id)
    conmon, pid = rec.monitor["conmon_pid"], rec.monitor["container_pid"]
    os.kill(conmon, signal.SIGKILL)
    _wait_gone(conmon)
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    assert _names(client) == {"cb": "running"}
    assert _names(client, all=True) == {"ca": "exited", "cb": "running"}
    assert client.api.inspect_container("ca")["State"]["ExitCode"] == 255


def test_ps_follows_restarts_and_removals(client):  # type: ignore[no-untyped-def]
    """A restart starts new processes (a new proof); a removal drops the row at once."""
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="cr",
                              network_mode="none")
    assert _names(client) == {"cr": "running"}
    c.restart(timeout=0)
    assert _names(client) == {"cr": "running"}
    c.kill()
    assert _names(client, all=True) == {"cr": "exited"}
    c.start()
    assert _names(client) == {"cr": "running"}
    c.remove(force=True)
    assert _names(client, all=True) == {}


def test_warm_listing_thaws_a_container_a_killed_commit_left_frozen(
        client, engine):  # type: ignore[no-untyped-def]
    """``commit`` freezes the container and notes its pid under <runroot>/frozen; if it is
    killed there, the next lookup thaws the container. The warm listing must too."""
    from berth.container.orphans import freeze_marker

    c = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="cf",
                              network_mode="none")
    for _ in range(2):
        assert _names(client) == {"cf": "running"}
    svc = engine.container_service
    rec = svc.get(c.id)
    rt = svc._runtime_of(rec)
    dead = subprocess.Popen(["true"])
    dead.wait()
    marker = freeze_marker(rec)
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w") as f:
        f.write(str(dead.pid))
    rt.pause(c.id)
    assert rt.state(c.id)["status"] == "paused"
    # the listing alone (docker-py's containers.list() also inspects each one)
    assert [x["State"] for x in client.api.containers()] == ["running"]
    assert rt.state(c.id)["status"] == "running"
    assert not os.path.exists(marker)
    assert c.exec_run(["true"]).exit_code == 0


def test_ps_size_shows_the_virtual_size(client, docker):  # type: ignore[no-untyped-def]
    """``docker ps -s``: the container's own bytes and, as Docker, the image's on top."""
    client.containers.run("busybox", ["sh", "-c", "head -c 100000 /dev/zero > /f; sleep 100"],
                          detach=True, name="sz", network_mode="none")
    image_size = client.images.get("busybox").attrs["Size"]
    for _ in range(100):
        (x,) = client.api.containers(size=True)
        if x["SizeRw"] >= 100000:
            break
        time.sleep(0.05)
    assert x["SizeRw"] >= 100000 and x["SizeRootFs"] == image_size + x["SizeRw"]
    out = docker("ps", "-s", "--format", "{{.Size}}").stdout.strip()
    assert out.startswith("10") and "(virtual " in out, out
