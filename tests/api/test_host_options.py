"""HostConfig fields the docker CLI sends for ``--ulimit``, ``--sysctl``, ``--shm-size``,
``--group-add``, ``--ipc``/``--pid``, ``--log-opt``, ``--oom-score-adj``: applied in the
container (before, the API dropped them silently)."""

from __future__ import annotations

import json


def test_run_host_options_apply(docker):  # type: ignore[no-untyped-def]
    r = docker("run", "--rm", "--network", "none", "--ulimit", "nofile=512:1024",
               "--sysctl", "kernel.msgmax=4096", "--shm-size", "32m", "--group-add", "123",
               "--oom-score-adj", "300", "--ipc", "private",
               "busybox", "sh", "-c",
               "ulimit -n; ulimit -Hn; cat /proc/sys/kernel/msgmax; id -G; "
               "cat /proc/self/oom_score_adj; df -k /dev/shm | tail -1")
    lines = r.stdout.splitlines()
    assert lines[:3] == ["512", "1024", "4096"]
    assert "123" in lines[3].split()
    assert lines[4] == "300"
    assert lines[5].split()[1] == str(32 * 1024)
    cid = docker("create", "--log-driver", "k8s-file", "--log-opt", "max-size=1m",
                 "--pid", "host", "busybox").stdout.strip()
    hc = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", cid).stdout)
    assert hc["LogConfig"] == {"Type": "k8s-file", "Config": {"max-size": "1m"}}
    assert hc["PidMode"] == "host"
    docker("rm", cid)
    r = docker("run", "--rm", "--ulimit", "bogus=1", "busybox", "true", check=False)
    assert r.returncode == 125 and "invalid ulimit type: bogus" in r.stderr
    r = docker("run", "--rm", "--log-driver", "syslog", "busybox", "true", check=False)
    assert r.returncode == 125 and "not supported" in r.stderr
