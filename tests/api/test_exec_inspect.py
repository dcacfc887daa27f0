"""Exec inspect through docker-py: Docker keeps an exec's ``Pid`` after it ended."""

from __future__ import annotations

import time


def test_exec_pid_is_kept_after_the_exit(service):  # type: ignore[no-untyped-def]
    import docker

    client = docker.DockerClient(base_url=service["host"], version="1.41", timeout=60)
    try:
        c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="ex",
                                  network_mode="none")
        api = client.api
        eid = api.exec_create(c.id, ["sh", "-c", "exit 3"])["Id"]
        assert api.exec_inspect(eid)["Pid"] == 0          # not started yet
        api.exec_start(eid)
        got = api.exec_inspect(eid)
        assert (got["Running"], got["ExitCode"]) == (False, 3)
        assert got["Pid"] > 0
        # detached: the pid while it runs is the process's, and stays after it ended
        eid = api.exec_create(c.id, ["sleep", "1"])["Id"]
        api.exec_start(eid, detach=True)
        got = api.exec_inspect(eid)
        assert got["Running"] is True and got["Pid"] > 0
        with open(f"/proc/{got['Pid']}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:2] == [b"sleep", b"1"]
        pid = got["Pid"]
        for _ in range(100):
            got = api.exec_inspect(eid)
            if not got["Running"]:
                break
            time.sleep(0.05)
        assert (got["Running"], got["ExitCode"], got["Pid"]) == (False, 0, pid)
        c.remove(force=True)
    finally:
        client.close()
