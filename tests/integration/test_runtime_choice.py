"""Runtime choice, independent of this host's cgroup layout: the crun-on-hybrid fallback,
and that both runtimes really run containers (whichever one the host makes the default).

crun 1.8 refuses to run at all on a *hybrid* cgroup host (v1 controllers plus a v2
hierarchy at ``/sys/fs/cgroup/unified`` holding a controller such as hugetlb). On such a
host the crun test runs berth in a private mount namespace without that v2 mount: crun
then sees a plain v1 host and really runs the containers, while the host's own mounts and
cgroups stay as they are (fixing the host itself, ``HYBRID_FIX``, would change them for
everyone).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from berth.container import cgroups, runtime
from berth.errors import RuntimeFailure

pytestmark = pytest.mark.skipif(not (shutil.which("crun") and shutil.which("runc")),
                                reason="needs both crun and runc")


def test_hybrid_host_falls_back_to_runc_and_says_so_once(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cgroups, "hybrid_v2_controllers", lambda: ["hugetlb"])
    rt = runtime.select_runtime(None, str(tmp_path))
    assert rt.name == "runc"
    assert rt.notice and "mount -t cgroup -o hugetlb" in rt.notice
    again = runtime.select_runtime(None, str(tmp_path))
    assert again.name == "runc" and again.notice is None  # the probe is cached per boot
    with pytest.raises(RuntimeFailure, match="hugetlb"):
        runtime.select_runtime("crun", str(tmp_path))  # asked for explicitly: refuse early


def test_plain_host_prefers_crun(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cgroups, "hybrid_v2_controllers", lambda: [])
    rt = runtime.select_runtime(None, str(tmp_path))
    assert rt.name == "crun" and rt.notice is None


def test_runc_runs_containers_whatever_the_default(berth, busybox_image):  # type: ignore[no-untyped-def]
    r = berth("run", "--rm", "--runtime", "runc", "--network", "none", "busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi"
    r = berth("run", "--rm", "--runtime", "nosuch", "busybox", "true")
    assert r.returncode == 125 and "unknown or invalid runtime name: nosuch" in r.stderr


CRUN_SCRIPT = """
set -e
b() { "$PY" -m berth "$@"; }
b run --rm --runtime crun --network none busybox echo hi-from-crun
b run -d --name c1 --runtime crun --network none busybox sleep 300
b exec c1 sh -c 'echo exec-ok'
b inspect -f '{{.HostConfig.Runtime}} {{.State.Status}}' c1
b stop -t 1 c1
b rm c1
"""


def test_crun_runs_containers(berth_env, busybox_image):  # type: ignore[no-untyped-def]
    hybrid = cgroups.hybrid_v2_controllers()
    if os.geteuid() != 0:
        pytest.skip("needs root")
    cmd = ["sh", "-c", CRUN_SCRIPT]
    if hybrid:  # see the module docstring: a private view without the v2 mount
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               "umount -l /sys/fs/cgroup/unified && " + shlex.join(cmd)]
    r = subprocess.run(cmd, env=dict(os.environ, PY=sys.executable), capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["hi-from-crun", r.stdout.splitlines()[1], "exec-ok",
                                     "crun running", "c1", "c1"]
