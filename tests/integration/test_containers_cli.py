"""The container commands as a user sees them: output, exit codes, error text, state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from probes import until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _inspect(berth, name, fmt):
    return berth("inspect", "-f", fmt, name).stdout.strip()


def _until(pred, timeout=10.0):  # type: ignore[no-untyped-def]
    return until(pred, timeout, interval=0.1)


def test_run_foreground_output_and_exit_code(berth, busybox_image):
    r = berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert berth("ps", "-aq").stdout == ""


def test_run_errors(berth, busybox_image):
    r = berth("run", "--rm", "nosuchimage")
    assert r.returncode == 125
    assert "Unable to find image 'nosuchimage:latest' locally" in r.stderr
    r = berth("run", "--rm", "busybox", "nosuchcmd")
    assert r.returncode == 127 and r.stderr.startswith("Error:")
    assert berth("run", "--rm", "busybox", "/etc/passwd").returncode == 126
    r = berth("run", "--memory", "lots", "busybox", "true")
    assert r.returncode == 125 and "Traceback" not in r.stderr
    assert berth("run", "--restart", "sometimes", "busybox", "true").returncode == 125
    assert berth("ps", "-aq").stdout == ""  # nothing half-made


def test_name_conflict_and_rename(berth, busybox_image):
    cid = berth("create", "--name", "one", "busybox", "true").stdout.strip()
    r = berth("create", "--name", "one", "busybox", "true")
    assert r.returncode == 125
    assert (f'Conflict. The container name "/one" is already in use by container "{cid}". '
            "You have to remove (or rename) that container to be able to reuse that name."
            ) in r.stderr
    assert berth("rename", "one", "two").returncode == 0
    assert _inspect(berth, cid, "{{.Name}}") == "/two"
    auto = berth("create", "busybox", "true").stdout.strip()
    name = _inspect(berth, auto, "{{.Name}}")
    assert "_" in name and name.startswith("/")


def test_detached_lifecycle(berth, busybox_image):
    cid = berth("run", "-d", "--name", "web", "busybox", "sh", "-c",
                "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    assert _until(lambda: "ready" in berth("logs", "web").stdout)
    assert _inspect(berth, "web", "{{.State.Status}} {{.State.Running}}") == "running true"
    assert _inspect(berth, "web", "{{.Config.Hostname}}") == cid[:12]
    ps = berth("ps").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "PORTS", "NAMES"]
    assert cid[:12] in ps[1] and "Up " in ps[1] and ps[1].endswith("web")
    assert '"sh -c \'trap \'exit 0…"' in ps[1]
    r = berth("rm", "web")
    assert r.returncode == 1
    assert ('cannot remove container "/web": container is running: stop the container before '
            "removing or force remove") in r.stderr
    assert berth("pause", "web").returncode == 0
    assert "(Paused)" in berth("ps").stdout
    assert berth("unpause", "web").returncode == 0
    r = berth("exec", "web", "sh", "-c", "echo in; exit 4")
    assert (r.returncode, r.stdout) == (4, "in\n")
    assert berth("exec", "web", "nosuch").returncode == 127
    r = berth("stop", "web")
    assert (r.returncode, r.stdout) == (0, "web\n")
    assert _inspect(berth, "web", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    assert "Exited (0)" in berth("ps", "-a").stdout
    assert berth("start", "web").stdout == "web\n"
    assert berth("restart", "-t", "1", "web").returncode == 0
    assert _inspect(berth, "web", "{{.State.Status}}") == "running"
    assert berth("kill", "web").stdout == "web\n"
    assert _inspect(berth, "web", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    assert berth("wait", "web").stdout == "137\n"
    assert berth("port", "web").stdout == ""
    assert berth("rm", "web").stdout == "web\n"
    assert berth("rm", "web").returncode == 1


def test_wait_and_logs_options(berth, busybox_image):
    berth("run", "-d", "--name", "ww", "busybox", "sh", "-c",
          "for i in 1 2 3; do echo line$i; done; echo bad >&2; sleep 1; exit 5")
    assert berth("wait", "ww").stdout == "5\n"
    r = berth("logs", "ww")
    assert r.stdout == "line1\nline2\nline3\n" and r.stderr == "bad\n"
    assert berth("logs", "--tail", "1", "ww").stdout == ""
    assert berth("logs", "--tail", "2", "ww").stdout == "line3\n"
    ts = berth("logs", "-t", "ww").stdout.splitlines()[0]
    assert ts.endswith(" line1") and "T" in ts.split()[0]
    assert berth("logs", "--since", "1h", "ww").stdout.count("line") == 3
    assert berth("logs", "--until", "1h", "ww").stdout == ""


def test_ps_filters_and_formats(berth, busybox_image):
    a = berth("create", "--name", "a1", "-l", "tier=web", "busybox", "true").stdout.strip()
    berth("run", "--name", "b1", "busybox", "sh", "-c", "exit 2")
    c = berth("run", "-d", "--name", "c1", "busybox", "sleep", "30").stdout.strip()
    assert berth("ps", "-q").stdout.split() == [c[:12]]
    assert berth("ps", "-aq").stdout.split()[2] == a[:12]
    assert berth("ps", "-q", "--filter", "status=created").stdout.split() == [a[:12]]
    assert berth("ps", "-aq", "--filter", "label=tier=web").stdout.split() == [a[:12]]
    assert berth("ps", "-a", "-f", "exited=2", "--format", "{{.Names}}").stdout == "b1\n"
    assert berth("ps", "-a", "-f", "name=^c", "--format", "{{.Names}}").stdout == "c1\n"
    assert berth("ps", "-a", "-f", f"id={a[:5]}", "--format", "{{.Names}}").stdout == "a1\n"
    assert berth("ps", "-a", "-f", "ancestor=busybox", "-q").stdout.count("\n") == 3
    assert berth("ps", "-a", "-f", "before=c1", "--format", "{{.Names}}").stdout == "b1\na1\n"
    assert berth("ps", "-a", "-f", "since=a1", "--format", "{{.Names}}").stdout == "c1\nb1\n"
    assert berth("ps", "-l", "--format", "{{.Names}}").stdout == "c1\n"
    assert berth("ps", "-n", "2", "--format", "{{.Names}}").stdout == "c1\nb1\n"
    assert "Exited (2)" in berth("ps", "-a", "--format", "{{.Status}}").stdout
    assert "Created" in berth("ps", "-a", "--format", "{{.Status}}").stdout
    row = json.loads(berth("ps", "--format", "json").stdout)
    assert row["Names"] == "c1" and row["State"] == "running"
    t = berth("ps", "-a", "--format", "table {{.Names}}\t{{.State}}").stdout.splitlines()
    assert t[0].split() == ["NAMES", "STATE"] and len(t) == 4
    assert berth("ps", "--no-trunc", "-q").stdout.strip() == c
    assert "SIZE" in berth("ps", "-s").stdout.splitlines()[0]
    r = berth("ps", "-f", "bogus=1")
    assert (r.returncode, r.stderr) == (1, "Error: invalid filter 'bogus'\n")
    assert berth("rm", "-f", "c1").returncode == 0


def test_restart_policies(berth, busybox_image):
    berth("run", "-d", "--name", "of", "--restart", "on-failure:2", "busybox",
          "sh", "-c", "exit 3")
    assert _until(lambda: _inspect(berth, "of", "{{.State.Status}} {{.RestartCount}}")
                  == "exited 2")
    assert _inspect(berth, "of", "{{.State.ExitCode}}") == "3"
    berth("run", "-d", "--name", "al", "--restart", "always", "busybox", "sh", "-c",
          "sleep 0.2; exit 0")
    assert _until(lambda: int(_inspect(berth, "al", "{{.RestartCount}}")) >= 2)
    berth("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sleep", "30")
    assert berth("stop", "-t", "1", "us").returncode == 0
    time.sleep(1)
    assert _inspect(berth, "us", "{{.State.Status}} {{.RestartCount}}") == "exited 0"
    assert berth("rm", "-f", "al").returncode == 0


def test_rm_detached_and_prune(berth, busybox_image):
    cid = berth("run", "-d", "--rm", "busybox", "true").stdout.strip()
    assert _until(lambda: berth("ps", "-aq").stdout == "")
    assert berth("inspect", cid).returncode == 1
    berth("create", "--name", "p1", "-l", "keep=1", "busybox", "true")
    berth("create", "--name", "p2", "busybox", "true")
    r = berth("container", "prune", "-f", "--filter", "label!=keep")
    assert r.stdout.startswith("Deleted Containers:\n") and "Total reclaimed space:" in r.stdout
    assert berth("ps", "-a", "--format", "{{.Names}}").stdout == "p1\n"


def test_rmi_refuses_used_image(berth, busybox_image):
    cid = berth("create", "busybox", "true").stdout.strip()
    r = berth("rmi", "busybox")
    assert r.returncode == 1
    assert f"container {cid[:12]} is using its referenced image" in r.stderr


def test_killed_cli_leaves_container_manageable(berth, busybox_image, berth_env):
    berth("run", "-d", "--name", "kk", "busybox", "sh", "-c",
          "while true; do echo tick; sleep 0.2; done")
    for cmd in (["logs", "-f", "kk"], ["attach", "--no-stdin", "kk"]):
        p = subprocess.Popen([sys.executable, "-m", "berth", *cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(1)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        assert _inspect(berth, "kk", "{{.State.Status}}") == "running"
    assert berth("exec", "kk", "true").returncode == 0
    assert berth("stop", "-t", "1", "kk").returncode == 0


def test_foreground_cli_killed_keeps_container(berth, busybox_image):
    p = subprocess.Popen([sys.executable, "-m", "berth", "run", "--name", "fg", "busybox",
                          "sleep", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _until(lambda: _inspect(berth, "fg", "{{.State.Status}}") == "running")
    p.kill()
    p.communicate()
    assert _inspect(berth, "fg", "{{.State.Status}}") == "running"
    assert berth("kill", "fg").returncode == 0
    assert _inspect(berth, "fg", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_concurrent_run_d(berth, busybox_image):
    with ThreadPoolExecutor(20) as ex:
        results = list(ex.map(lambda _: berth("run", "-d", "busybox", "sleep", "30"),
                              range(20)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert len(set(berth("ps", "--format", "{{.Names}}").stdout.split())) == 20


def test_create_flags_reach_the_container(berth, busybox_image, tmp_path):
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "f").write_text("hostfile")
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROMFILE=yes\n")
    r = berth("run", "--rm", "-e", "A=1", "--env-file", str(envf), "-w", "/tmp", "-u",
              "nobody", "-h", "myhost", "-v", f"{tmp_path / 'vol'}:/data:ro", "--tmpfs",
              "/scratch", "--add-host", "db:10.0.0.5", "--read-only", "busybox", "sh", "-c",
              "echo $A $FROMFILE; pwd; id -u; hostname; cat /data/f; echo;"
              " touch /data/x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs;"
              " grep db /etc/hosts; touch /z 2>/dev/null || echo rootro")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["1 yes", "/tmp", "65534", "myhost", "hostfile", "ro",
                                    "tmpfs", "10.0.0.5\tdb", "rootro", ""]
    r = berth("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert r.stdout == "a b\n"
    r = berth("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert "init" in r.stdout
