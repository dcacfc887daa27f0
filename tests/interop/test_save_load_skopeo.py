"""berth save/load against real skopeo: each side reads what the other wrote, same image ID."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")]


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("fmt,transport", [("docker-archive", "docker-archive"),
                                           ("oci-archive", "oci-archive")])
def test_skopeo_reads_berth_save(berth, busybox_image, berth_env, fmt, transport):  # type: ignore[no-untyped-def]
    out = berth_env["tmp"] / f"bb-{fmt}.tar"
    r = berth("save", "--format", fmt, "-o", str(out), "busybox")
    assert r.returncode == 0, r.stderr
    info = json.loads(skopeo("inspect", f"{transport}:{out}"))
    assert len(info["Layers"]) == 1
    config = json.loads(skopeo("inspect", "--config", f"{transport}:{out}"))
    assert config["config"]["Cmd"] == ["sh"]
    raw = skopeo("inspect", "--raw", f"{transport}:{out}")
    assert json.loads(raw)["config"]["digest"] == busybox_image


def test_berth_loads_skopeo_archives(berth, busybox_image, berth_env):  # type: ignore[no-untyped-def]
    src = berth_env["tmp"] / "src.tar"
    assert berth("save", "-o", str(src), "busybox").returncode == 0
    oci = berth_env["tmp"] / "skopeo-oci.tar"
    dock = berth_env["tmp"] / "skopeo-docker.tar"
    skopeo("copy", f"docker-archive:{src}", f"oci-archive:{oci}:skopeo/bb:oci")
    skopeo("copy", f"oci-archive:{oci}:skopeo/bb:oci", f"docker-archive:{dock}:skopeo/bb:docker")
    assert berth("rmi", "busybox").returncode == 0
    for path in (dock, oci):
        r = berth("load", "-i", str(path))
        assert r.returncode == 0, r.stderr
        ids = berth("images", "-a", "-q", "--no-trunc").stdout.split()
        assert set(ids) == {busybox_image}  # the same image (-q prints a line per tag)
    tags = berth("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "skopeo/bb:docker" in tags
