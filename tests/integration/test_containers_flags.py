"""The run/create flags Compose files and scripts use, and ``update`` of a live container."""

from __future__ import annotations

import json
import os

import pytest

from probes import cgroup_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _cgroup_file(berth, name, controller, filename):
    pid = berth("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    return cgroup_file(pid, controller, filename)


def test_ulimit(berth, busybox_image):
    r = berth("run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=100",
              "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["512", "1024", "100"]
    hard = int(open("/proc/self/limits").read().split("Max open files")[1].split()[1])
    r = berth("run", "--rm", "--ulimit", f"nofile={hard + 1}", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.startswith(f"Error: --ulimit nofile: the hard limit {hard + 1} is above")
    for bad, msg in (("nofile=2:1", "soft limit must be less than or equal to hard limit"),
                     ("bogus=1", "invalid ulimit type: bogus"),
                     ("nofile=x", "invalid ulimit argument: x")):
        r = berth("run", "--rm", "--ulimit", bad, "busybox", "true")
        assert r.returncode == 125 and msg in r.stderr, r.stderr
    assert berth("ps", "-aq").stdout == ""


def test_namespaces_sysctl_shm_device(berth, busybox_image):
    r = berth("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl",
              "kernel.shmmax=1000000", "--shm-size", "8m", "busybox", "sh", "-c",
              "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax;"
              " df -k /dev/shm | tail -1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["1", "1000000"] and lines[2].split()[1] == "8192"
    r = berth("run", "--rm", "--sysctl", "vm.swappiness=1", "busybox", "true")
    assert r.returncode == 125 and "not in a separate kernel namespace" in r.stderr
    r = berth("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1",
              "busybox", "true")
    assert r.returncode == 125 and "not allowed with --network=host" in r.stderr
    host_ipc = os.readlink("/proc/self/ns/ipc")
    host_pid = os.readlink("/proc/self/ns/pid")
    r = berth("run", "--rm", "--ipc", "host", "--pid", "host", "busybox", "sh", "-c",
              "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid")
    assert r.stdout.split() == [host_ipc, host_pid]
    r = berth("run", "--rm", "--ipc", "none", "busybox", "sh", "-c",
              "test -e /dev/shm || echo noshm; readlink /proc/self/ns/ipc")
    assert r.stdout.split()[0] == "noshm" and r.stdout.split()[1] != host_ipc
    berth("run", "-d", "--name", "peer", "busybox", "sleep", "300")
    peer_pid = berth("inspect", "-f", "{{.State.Pid}}", "peer").stdout.strip()
    r = berth("run", "--rm", "--pid", "container:peer", "--ipc", "container:peer",
              "busybox", "sh", "-c", "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; ps")
    assert r.stdout.split()[:2] == [os.readlink(f"/proc/{peer_pid}/ns/pid"),
                                    os.readlink(f"/proc/{peer_pid}/ns/ipc")]
    assert "sleep 300" in r.stdout                   # sees the peer's processes
    r = berth("run", "--rm", "--pid", "bogus", "busybox", "true")
    assert r.returncode == 125 and "invalid PID mode: bogus" in r.stderr
    berth("rm", "-f", "peer")
    r = berth("run", "--rm", "--device", "/dev/fuse", "busybox", "sh", "-c",
              "ls -l /dev/fuse; echo x > /dev/fuse")
    assert "10, 229" in r.stdout and "can't create" not in r.stderr, r.stderr
    r = berth("run", "--rm", "--device", "/dev/fuse:/dev/rofuse:r", "busybox", "sh", "-c",
              "ls -l /dev/rofuse; echo x > /dev/rofuse")   # the cgroup allows reads only
    assert "10, 229" in r.stdout
    assert "can't create /dev/rofuse: Operation not permitted" in r.stderr
    r = berth("run", "--rm", "--device", "/dev/nope", "busybox", "true")
    assert r.returncode == 125 and 'adding custom device "/dev/nope"' in r.stderr


def test_cpu_memory_oom_cgroup_parent(berth, busybox_image):
    r = berth("run", "-d", "--name", "res", "--cpuset-cpus", "0", "-m", "64m",
              "--memory-reservation", "32m", "--oom-score-adj", "500",
              "--cgroup-parent", "/berth-test-parent", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert _cgroup_file(berth, "res", "cpuset", "cpuset.cpus") == "0"
    assert _cgroup_file(berth, "res", "memory", "memory.soft_limit_in_bytes") == \
        str(32 << 20)
    pid = berth("inspect", "-f", "{{.State.Pid}}", "res").stdout.strip()
    assert open(f"/proc/{pid}/oom_score_adj").read().strip() == "500"
    assert "/berth-test-parent/" in open(f"/proc/{pid}/cgroup").read()
    host = json.loads(berth("inspect", "-f", "{{json .HostConfig}}", "res").stdout)
    assert (host["CpusetCpus"], host["MemoryReservation"], host["OomScoreAdj"],
            host["CgroupParent"]) == ("0", 32 << 20, 500, "/berth-test-parent")
    berth("rm", "-f", "res")
    for cg in ["", *os.listdir("/sys/fs/cgroup")]:   # the parent the runtime made, everywhere
        try:
            os.rmdir(os.path.join("/sys/fs/cgroup", cg, "berth-test-parent"))
        except OSError:
            pass
    assert not any(os.path.exists(os.path.join("/sys/fs/cgroup", cg, "berth-test-parent"))
                   for cg in ["", *os.listdir("/sys/fs/cgroup")])
    for args, msg in ((["--cpuset-cpus", "0-99"], "Requested CPUs are not available"),
                      (["-m", "32m", "--memory-reservation", "64m"],
                       "can not be less than memory reservation"),
                      (["--oom-score-adj", "2000"], "range for oom score adj")):
        r = berth("run", "--rm", *args, "busybox", "true")
        assert r.returncode == 125 and msg in r.stderr, r.stderr


def test_log_drivers(berth, busybox_image, berth_env):
    r = berth("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi")
    assert r.stdout == "hi\n"
    r = berth("logs", "quiet")
    assert r.returncode == 1
    assert r.stderr.strip() == "Error: configured logging driver does not support reading"
    r = berth("run", "--name", "capped", "--log-driver", "json-file", "--log-opt",
              "max-size=16k", "--log-opt", "max-file=2", "busybox", "sh", "-c",
              "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxx;"
              " i=$((i+1)); done")
    assert r.returncode == 0, r.stderr
    log = berth("inspect", "-f", "{{.LogPath}}", "capped").stdout.strip()
    assert os.path.getsize(log) <= 16 << 10          # the file never outgrows max-size
    assert berth("logs", "--tail", "1", "capped").stdout == \
        "line-2999-xxxxxxxxxxxxxxxxxxxx\n"
    assert json.loads(berth("inspect", "-f", "{{json .HostConfig.LogConfig}}",
                            "capped").stdout) == {"Type": "json-file", "Config": {
                                "max-size": "16k", "max-file": "2"}}
    for args, msg in ((["--log-driver", "syslog"], 'logging driver "syslog" is not'),
                      (["--log-opt", "bogus=1"], "unknown log opt 'bogus'"),
                      (["--log-opt", "max-file=3"], "max-file cannot be set without")):
        r = berth("run", "--rm", *args, "busybox", "true")
        assert r.returncode == 125 and msg in r.stderr, r.stderr


def test_attach_cidfile_pull_platform(berth, busybox_image, tmp_path):
    r = berth("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "")
    r = berth("run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("", "err\n")
    r = berth("run", "-d", "-a", "stdout", "busybox", "true")
    assert r.returncode == 125 and "Conflicting options: -a and -d" in r.stderr
    r = berth("create", "-a", "stdout", "--name", "att", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert berth("inspect", "-f", "{{.Config.AttachStdout}} {{.Config.AttachStderr}}",
                 "att").stdout.strip() == "true false"
    berth("rm", "att")
    cid = tmp_path / "cid"
    r = berth("create", "--cidfile", str(cid), "busybox", "true")
    assert r.returncode == 0 and cid.read_text() == r.stdout.strip()
    r = berth("run", "--cidfile", str(cid), "busybox", "true")
    assert r.returncode == 125 and "Container ID file found" in r.stderr
    assert len(berth("ps", "-aq").stdout.split()) == 1
    r = berth("run", "--rm", "--pull", "never", "busybox", "echo", "local")
    assert r.stdout == "local\n"
    r = berth("run", "--pull", "never", "nothere:1", "true")
    assert r.returncode == 125 and r.stderr.strip() == "Error: No such image: nothere:1"
    r = berth("run", "--pull", "sometimes", "busybox", "true")
    assert r.returncode == 125 and "invalid pull option: 'sometimes'" in r.stderr
    r = berth("run", "--rm", "--platform", "linux/amd64", "busybox", "echo", "ok")
    assert r.stdout == "ok\n"
    r = berth("run", "--platform", "linux/arm64", "busybox", "true")
    assert r.returncode == 125
    assert "does not match the specified platform: wanted linux/arm64" in r.stderr


def test_update_live_container(berth, busybox_image):
    r = berth("run", "-d", "--name", "up", "-m", "64m", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    r = berth("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5",
              "--pids-limit", "50", "--restart", "on-failure:3", "up")
    assert (r.returncode, r.stdout) == (0, "up\n"), r.stderr
    assert _cgroup_file(berth, "up", "memory", "memory.limit_in_bytes") == str(128 << 20)
    assert _cgroup_file(berth, "up", "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file(berth, "up", "pids", "pids.max") == "50"
    r = berth("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} "
              "{{json .HostConfig.RestartPolicy}}", "up")
    assert r.stdout.strip() == \
        f'{128 << 20} 500000000 {{"Name":"on-failure","MaximumRetryCount":3}}'
    berth("restart", "-t", "0", "up")                # the next start keeps the new limits
    assert _cgroup_file(berth, "up", "memory", "memory.limit_in_bytes") == str(128 << 20)
    r = berth("update", "--memory", "512m", "up")
    assert r.returncode == 1 and "update the memoryswap at the same time" in r.stderr
    r = berth("update", "up")
    assert r.returncode == 1 and "must provide one or more flags" in r.stderr
    berth("run", "-d", "--rm", "--name", "auto", "busybox", "sleep", "300")
    r = berth("update", "--restart", "always", "auto", "nope")
    assert r.returncode == 1
    assert "AutoRemove is enabled" in r.stderr and "No such container: nope" in r.stderr
    berth("rm", "-f", "up", "auto")
