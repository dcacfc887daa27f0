"""``--stop-signal``, ``--stop-timeout``, ``--cpus``, ``--cpu-shares`` and the restart
backoff, each checked by its effect (the signal the process got, the time stop took, the
cgroup files the kernel enforces, the gaps between restarts), not by ``inspect`` alone."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import pytest

from probes import until as _until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _inspect(berth, name: str) -> dict:  # type: ignore[no-untyped-def]
    r = berth("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]




def test_stop_signal(berth, busybox_image):
    r = berth("run", "-d", "--name", "sig", "--stop-signal", "SIGUSR1", "busybox", "sh", "-c",
              "trap 'echo got-usr1; exit 7' USR1; trap 'echo got-term; exit 8' TERM; "
              "echo ready; while true; do sleep 0.1; done")
    assert r.returncode == 0, r.stderr
    assert _until(lambda: "ready" in berth("logs", "sig").stdout)
    assert _inspect(berth, "sig")["Config"]["StopSignal"] == "SIGUSR1"
    assert berth("stop", "sig").returncode == 0
    st = _inspect(berth, "sig")["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 7)
    assert berth("logs", "sig").stdout == "ready\ngot-usr1\n"
    berth("rm", "sig")


@pytest.mark.parametrize("timeout", [1, 3])
def test_stop_timeout(berth, busybox_image, timeout):
    """PID 1 without a handler ignores SIGTERM: stop must wait the container's own timeout
    (not Docker's default 10 s), then SIGKILL."""
    r = berth("run", "-d", "--name", "st", "--stop-timeout", str(timeout), "busybox",
              "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert _inspect(berth, "st")["Config"]["StopTimeout"] == timeout
    t0 = time.monotonic()
    assert berth("stop", "st").returncode == 0
    took = time.monotonic() - t0
    assert timeout - 0.1 <= took < timeout + 5, took  # Docker's default would be 10 s
    assert _inspect(berth, "st")["State"]["ExitCode"] == 137
    berth("rm", "st")


def _cgroup_files(pid: int) -> dict[str, str]:
    """The CPU controller files of a process's cgroup, v1 or v2, read on the host."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "cpu" in controllers.split(","):  # cgroup v1
            d = next(p for p in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu")
                     if os.path.isdir(p)) + path
            names = ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares")
            return {n: Path(d, n).read_text().strip() for n in names}
    path = next(p for h, c, p in lines if h == "0")
    d = "/sys/fs/cgroup" + path
    return {n: Path(d, n).read_text().strip() for n in ("cpu.max", "cpu.weight")}


def test_cpus_and_cpu_shares_reach_the_cgroup(berth, busybox_image):
    r = berth("run", "-d", "--name", "cpu", "--cpus", "1.5", "--cpu-shares", "512", "busybox",
              "sleep", "300")
    assert r.returncode == 0, r.stderr
    files = _cgroup_files(_inspect(berth, "cpu")["State"]["Pid"])
    if "cpu.max" in files:  # v2: shares map to weight 1 + (shares-2)*9999/262142
        assert files == {"cpu.max": "150000 100000", "cpu.weight": "20"}
    else:
        assert files == {"cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000",
                         "cpu.shares": "512"}
    berth("rm", "-f", "cpu")


def test_no_cpu_limits_by_default(berth, busybox_image):
    assert berth("run", "-d", "--name", "free", "busybox", "sleep", "300").returncode == 0
    files = _cgroup_files(_inspect(berth, "free")["State"]["Pid"])
    assert files.get("cpu.cfs_quota_us", "-1") == "-1"
    assert files.get("cpu.max", "max 100000").startswith("max")
    assert files.get("cpu.shares", "1024") == "1024"
    berth("rm", "-f", "free")


# Each run appends the host's uptime (system-wide, so comparable across runs) to a file on
# a bind mount; the seventh run (index 6) lasts over 10 s, which resets the backoff.
LONG_RUN = 6
BACKOFF_SCRIPT = ("n=$(cat /data/starts 2>/dev/null | wc -l); "
                  "cut -d' ' -f1 /proc/uptime >> /data/starts; "
                  f"if [ $n -eq {LONG_RUN} ]; then sleep 10.3; fi; exit 1")
# The waits Docker's restart manager makes before each restart: 100 ms doubling, and
# back to 100 ms after the long run.
WANT = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 0.1, 0.2]
SLACK = 1.5  # one exit + start on a loaded 2-core machine; the checks below tolerate it


@pytest.mark.slow
def test_restart_backoff_doubles_and_resets(berth, busybox_image, tmp_path):
    """Each gap between two starts is the backoff plus one exit-and-start: never shorter
    than the backoff, and the large waits (1.6 s, 3.2 s, or the 6.4 s a missing reset
    would make) stand out from the start-up jitter."""
    data = tmp_path / "data"
    data.mkdir()
    r = berth("run", "-d", "--name", "bo", "--restart", f"on-failure:{len(WANT)}", "-v",
              f"{data}:/data", "busybox", "sh", "-c", BACKOFF_SCRIPT)
    assert r.returncode == 0, r.stderr
    starts_file = data / "starts"
    assert _until(lambda: starts_file.exists() and
                  len(starts_file.read_text().split()) == len(WANT) + 1, timeout=90)
    assert _until(lambda: _inspect(berth, "bo")["State"]["Status"] == "exited")
    starts = [float(x) for x in starts_file.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    gaps[LONG_RUN] -= 10.3  # the long run itself
    for got, delay in zip(gaps, WANT):
        assert delay - 0.02 <= got <= delay + SLACK, (gaps, WANT)
    # doubling: 1.6 s more before the sixth restart than before the fifth
    assert 1.6 - 0.8 <= gaps[5] - gaps[4] <= 1.6 + 0.8, gaps
    assert gaps[5] - gaps[2] >= 2.0, gaps  # 3.2 s vs 0.4 s
    # reset: 0.1 s after the long run, not 6.4 s; then 0.2 s, not 12.8 s
    assert gaps[LONG_RUN] < gaps[5] - 1.5 and gaps[LONG_RUN + 1] < gaps[5] - 1.5, gaps
    assert _inspect(berth, "bo")["RestartCount"] == len(WANT)
    berth("rm", "bo")
