"""Health checks without a daemon: flags and image HEALTHCHECK, ps, filters, inspect, the loop."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _until(fn, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def _health(berth, name):
    r = berth("inspect", "-f", "{{json .State.Health}}", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _loops(berth_env):
    """Health loops of this test's store still running (sh with our root in argv)."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"berth-health" in argv and berth_env["root"].encode() in argv:
            out.append(int(pid))
    return out


def test_health_flags_ps_filter_inspect(berth, busybox_image, berth_env):
    r = berth("run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/ok",
              "--health-interval", "300ms", "--health-retries", "2",
              "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    r = berth("ps", "--format", "{{.Status}}")
    assert r.stdout.strip().endswith("(health: starting)")
    assert berth("ps", "-q", "--filter", "health=starting").stdout.strip()
    _until(lambda: _health(berth, "hc")["Status"] == "unhealthy")
    h = _health(berth, "hc")
    assert h["FailingStreak"] >= 2
    assert h["Log"][-1]["ExitCode"] == 1 and "No such file" in h["Log"][-1]["Output"]
    assert berth("ps", "--format", "{{.Names}} {{.Status}}").stdout.strip().endswith(
        "(unhealthy)")
    assert berth("ps", "--filter", "health=healthy", "-q").stdout == ""
    assert berth("exec", "hc", "sh", "-c", "echo fine > /tmp/ok").returncode == 0
    _until(lambda: _health(berth, "hc")["Status"] == "healthy")
    h = _health(berth, "hc")
    assert h["FailingStreak"] == 0 and h["Log"][-1]["Output"] == "fine\n"
    _until(lambda: len(_health(berth, "hc")["Log"]) == 5)
    time.sleep(0.7)
    assert len(_health(berth, "hc")["Log"]) == 5        # only the last five probes
    assert berth("ps", "--format", "{{.Status}}").stdout.strip().endswith("(healthy)")
    assert berth("ps", "-q", "--filter", "health=healthy").stdout.strip()
    assert berth("ps", "-q", "--filter", "health=none").stdout == ""
    r = berth("ps", "--filter", "health=bad")
    assert r.returncode != 0 and "Unrecognised filter value for health: bad" in r.stderr
    assert len(_loops(berth_env)) == 1
    berth("stop", "-t", "0", "hc")
    assert _loops(berth_env) == []                  # the loop ends with the run
    r = berth("inspect", "-f", "{{json .Config.Healthcheck}}", "hc")
    assert json.loads(r.stdout) == {"Test": ["CMD-SHELL", "cat /tmp/ok"],
                                    "Interval": 300_000_000, "Retries": 2}


def test_healthcheck_run_and_timeout(berth, busybox_image, berth_env):
    r = berth("run", "-d", "--name", "hr", "--health-cmd", "sleep 60",
              "--health-timeout", "200ms", "--health-interval", "1h",
              "--health-retries", "1", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    t0 = time.time()
    r = berth("healthcheck", "run", "hr")
    assert time.time() - t0 < 30                     # the 60 s probe was cut short
    assert (r.returncode, r.stdout) == (1, "unhealthy\n")
    h = _health(berth, "hr")
    assert h["Status"] == "unhealthy"
    assert h["Log"][-1]["ExitCode"] == -1
    assert h["Log"][-1]["Output"] == "Health check exceeded timeout (0.2s)"
    top = berth("top", "hr").stdout
    assert "sleep 60" not in top                     # the timed-out probe was killed
    cid = berth("run", "-d", "--name", "none", "busybox", "sleep", "300").stdout.strip()
    r = berth("healthcheck", "run", "none")
    assert r.returncode == 1 and "has no defined healthcheck" in r.stderr
    assert berth("ps", "-q", "--filter", "health=none").stdout.strip() == cid[:12]
    r = berth("inspect", "-f", "{{.State.Health}}", "none")
    assert r.stdout.strip() == "<no value>"
    berth("rm", "-f", "hr", "none")
    assert _loops(berth_env) == []


def test_image_healthcheck_start_period_and_no_healthcheck(berth, engine, busybox_tar,
                                                          berth_env):
    with open(busybox_tar, "rb") as f:
        engine.import_image(f, "hcimg:latest", changes=[
            'CMD ["sleep", "300"]',
            "HEALTHCHECK --interval=200ms --start-period=60s --retries=1 CMD false"])
    r = berth("run", "-d", "--name", "img", "--restart", "always", "hcimg")
    assert r.returncode == 0, r.stderr
    _until(lambda: len(_health(berth, "img")["Log"]) >= 3)
    h = _health(berth, "img")
    # failures inside the start period do not count while it is starting
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    r = berth("run", "-d", "--name", "img2", "--health-start-period", "1ms", "hcimg")
    _until(lambda: _health(berth, "img2")["Status"] == "unhealthy")
    time.sleep(0.5)
    r = berth("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "img2")
    assert r.stdout.strip() == "0 running"           # unhealthy is not an exit
    r = berth("run", "-d", "--name", "off", "--no-healthcheck", "hcimg")
    assert berth("inspect", "-f", "{{json .Config.Healthcheck}}", "off").stdout.strip() == \
        '{"Test":["NONE"]}'
    assert berth("ps", "-q", "--filter", "health=none").stdout.strip() == \
        berth("inspect", "-f", "{{.Id}}", "off").stdout.strip()[:12]
    r = berth("run", "--no-healthcheck", "--health-cmd", "true", "hcimg")
    assert r.returncode == 125
    assert "--no-healthcheck conflicts with --health-* options" in r.stderr
    r = berth("run", "--health-interval", "1us", "hcimg")
    assert r.returncode == 125 and "cannot be less than 1ms" in r.stderr
    assert len(_loops(berth_env)) == 2
    berth("rm", "-f", "img", "img2", "off")
    assert _loops(berth_env) == []


def test_a_loop_that_is_not_the_current_one_ends(berth, busybox_image, berth_env):
    """A loop left by a killed berth (its pid file replaced or gone) stops by itself."""
    r = berth("run", "-d", "--name", "orphan", "--health-cmd", "true",
              "--health-interval", "200ms", "busybox", "sleep", "300")
    cid = r.stdout.strip()
    _until(lambda: _loops(berth_env))
    (loop,) = _loops(berth_env)
    pid_file = os.path.join(berth_env["runroot"], "containers", cid, "health.pid")
    with open(pid_file, "w") as f:
        f.write("1")                                  # as if a newer start had replaced it
    _until(lambda: not os.path.exists(f"/proc/{loop}") or
           open(f"/proc/{loop}/stat").read().split()[2] == "Z", timeout=10)
    os.unlink(pid_file)
    berth("rm", "-f", "orphan")


def test_probe_output_is_bounded(berth, busybox_image):
    r = berth("run", "-d", "--name", "chatty", "--health-cmd",
              "yes 0123456789 | head -c 10000000; exit 0", "--health-interval", "1h",
              "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert berth("healthcheck", "run", "chatty").returncode == 0
    entry = _health(berth, "chatty")["Log"][-1]
    assert entry["ExitCode"] == 0 and len(entry["Output"]) == 4096
    assert entry["Output"].startswith("0123456789\n")
    berth("rm", "-f", "chatty")
