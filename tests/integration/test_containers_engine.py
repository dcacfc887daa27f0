"""Isolation and limits through the Engine API (behaviour only; the CLI has its own tests)."""

from __future__ import annotations

import os

import pytest

from berth.container import caps
from berth.container.create_options import CreateOptions
from engine_run import run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


PROBES = ("mount -t tmpfs x /tmp 2>/dev/null && echo MOUNTED; "
          "insmod /bin/busybox 2>&1 | grep -q 'not permitted' || echo MODULE-SYSCALL-REACHED")


def test_isolation(engine, busybox_image):
    masked = next(p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if
                  os.path.exists(p))
    rec, code, out, err = run(
        engine, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid | wc -l; "
        "hostname; grep CapEff /proc/self/status; wc -c < " + masked + "; " + PROBES)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("sh -c cat /proc/1/cmdline")
    assert int(lines[1]) <= 6  # header + a handful of our own processes
    assert lines[2] == rec.id[:12]
    assert caps.decode(int(lines[3].split()[1], 16)) == set(caps.DEFAULT_CAPS)
    assert lines[4].strip() == "0"
    assert lines[5:] == []  # neither probe got through
    engine.container_remove(rec.id)


def test_isolation_probes_can_pass(engine, busybox_image):
    """The probes above are not vacuous: privileged, both get through."""
    _, _, out, err = run(engine, "sh", "-c", PROBES, privileged=True)
    assert out.split() == ["MOUNTED", "MODULE-SYSCALL-REACHED"], err


def test_oom_killed(engine, busybox_image):
    rec, code, _, _ = run(engine, "sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a);"
                          " echo survived", memory=32 << 20, memory_swap=32 << 20)
    assert code == 137
    assert engine.container_inspect(rec.id)["State"]["OOMKilled"] is True


def test_pids_limit(engine, busybox_image):
    _, _, _, err = run(engine, "sh", "-c",
                              "for i in $(seq 100); do sleep 5 & done; echo end", pids_limit=20)
    assert "can't fork" in err or "Resource temporarily unavailable" in err


def test_inspect_shape_and_prune(engine, busybox_image):
    rec = engine.container_create(CreateOptions(image="busybox", command=["true"],
                                                labels=["a=b"], restart="on-failure:3"))
    info = engine.container_inspect(rec.name)
    assert info["Name"] == "/" + rec.name and info["Path"] == "true" and info["Args"] == []
    assert info["State"]["Status"] == "created" and info["State"]["StartedAt"].startswith("0001")
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert info["Config"]["Labels"] == {"a": "b"} and info["Config"]["Cmd"] == ["true"]
    assert info["GraphDriver"]["Name"] == "overlay"
    removed, _ = engine.container_prune()
    assert removed == [rec.id]
