"""Runtime choice, independent of this host's cgroup layout: the crun-on-hybrid fallback,
and that both runtimes really run containers (whichever one the host makes the default)."""

from __future__ import annotations

import shutil

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
