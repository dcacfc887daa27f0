"""``docker update`` and ``--device`` through the API: the docker CLI 20.10 and docker-py,
checked in the container's cgroup files (not just in inspect)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from probes import cgroup_file as _cgroup_file


def _pid(docker, name: str) -> int:  # type: ignore[no-untyped-def]
    return int(docker("inspect", "-f", "{{.State.Pid}}", name).stdout)


def test_docker_update_applies_resources_live_and_on_restart(docker):  # type: ignore[no-untyped-def]
    docker("run", "-d", "--name", "up", "--network", "none", "-m", "64m", "busybox",
           "sleep", "300")
    r = docker("update", "--memory", "128m", "--memory-swap", "256m",
               "--memory-reservation", "32m", "--cpus", "0.5", "--cpu-shares", "512",
               "--pids-limit", "50", "--restart", "on-failure:3", "up")
    assert r.stdout == "up\n"
    pid = _pid(docker, "up")
    assert _cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20)
    assert _cgroup_file(pid, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file(pid, "cpu", "cpu.shares") == "512"
    assert _cgroup_file(pid, "pids", "pids.max") == "50"
    hc = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", "up").stdout)
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"], hc["NanoCpus"],
            hc["CpuShares"], hc["PidsLimit"]) == (128 << 20, 256 << 20, 32 << 20,
                                                  500000000, 512, 50)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    # only what was given changes (the CLI sends zeros for the rest)
    docker("update", "--cpu-quota", "25000", "--cpu-period", "50000", "up")
    pid = _pid(docker, "up")
    assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20)
    docker("restart", "-t", "0", "up")            # the next start keeps the new limits
    pid = _pid(docker, "up")
    assert _cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20)
    assert _cgroup_file(pid, "pids", "pids.max") == "50"
    r = docker("update", "--memory", "512m", "up", check=False)
    assert r.returncode == 1 and "update the memoryswap at the same time" in r.stderr
    r = docker("update", "--blkio-weight", "300", "up", check=False)
    assert r.returncode == 1 and "cannot update BlkioWeight" in r.stderr
    r = docker("update", "--memory", "64m", "nope", check=False)
    assert r.returncode == 1 and "No such container: nope" in r.stderr
    docker("rm", "-f", "up")


def test_docker_py_update_and_restart_policy(service):  # type: ignore[no-untyped-def]
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=service["host"], version="1.41", timeout=60)
    try:
        c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="dp",
                                  network_mode="none")
        assert client.api.update_container("dp", mem_limit="96m", memswap_limit=-1,
                                           cpuset_cpus="0", cpu_quota=20000,
                                           restart_policy={"Name": "always"}) \
            == {"Warnings": []}
        pid = int(client.api.inspect_container("dp")["State"]["Pid"])
        assert _cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(96 << 20)
        assert _cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
        assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "20000"
        c.reload()
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
        # the policy is applied, not just stored: an exit (not a docker stop/kill)
        # brings the container back
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            c.reload()
            if c.attrs["RestartCount"] >= 1 and c.status == "running":
                break
            time.sleep(0.1)
        assert c.attrs["RestartCount"] >= 1 and c.status == "running"
        with pytest.raises(dockerpy.errors.APIError) as e:
            client.api.update_container("dp", mem_reservation="200m")
        assert e.value.status_code == 400 and "reservation" in str(e.value)
        with pytest.raises(dockerpy.errors.APIError) as e:
            client.api.update_container("dp", cpu_quota=20000, cpu_period=-5)
        assert e.value.status_code == 400
        c.remove(force=True)
    finally:
        client.close()


def test_run_with_devices(docker):  # type: ignore[no-untyped-def]
    r = docker("run", "--rm", "--network", "none", "--device", "/dev/null:/dev/xnull",
               "busybox", "sh", "-c", "echo hi > /dev/xnull && ls -l /dev/xnull")
    assert r.stdout.startswith("c") and "1,   3" in r.stdout
    # /dev/null is allowed to every container anyway: the permissions show on /dev/fuse
    r = docker("run", "--rm", "--network", "none", "--device", "/dev/fuse:/dev/rofuse:r",
               "busybox", "sh", "-c", "ls -l /dev/rofuse; echo x > /dev/rofuse", check=False)
    assert "10, 229" in r.stdout
    assert r.returncode != 0
    assert "can't create /dev/rofuse: Operation not permitted" in r.stderr
    cid = docker("create", "--device", "/dev/zero", "busybox").stdout.strip()
    hc = json.loads(docker("inspect", "-f", "{{json .HostConfig.Devices}}", cid).stdout)
    assert hc == [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero",
                   "CgroupPermissions": "rwm"}]
    docker("rm", cid)
    # a 400 from create; the docker CLI itself turns "no such file" into exit 127
    r = docker("run", "--rm", "--device", "/dev/nope", "busybox", "true", check=False)
    assert r.returncode == 127
    assert 'adding custom device "/dev/nope": no such file or directory' in r.stderr
    assert docker("ps", "-aq").stdout == ""
