"""Bind mounts of single files, missing ``-v`` sources, ``--mount`` sources that must exist."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_single_file_bind_is_a_file(berth, busybox_image, tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("key=value\n")
    r = berth("run", "--rm", "-v", f"{conf}:/etc/app.conf:ro", "busybox", "sh", "-c",
              "cat /etc/app.conf; test -f /etc/app.conf && echo file;"
              " echo x >> /etc/app.conf 2>/dev/null || echo ro")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "key=value\nfile\nro\n"
    r = berth("run", "--rm", "--mount", f"type=bind,source={conf},target=/new/dir/app.conf",
              "busybox", "sh", "-c", "echo more >> /new/dir/app.conf && cat /new/dir/app.conf")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "key=value\nmore\n"
    assert conf.read_text() == "key=value\nmore\n"      # the host's file, written through


def test_missing_sources(berth, busybox_image, tmp_path):
    missing = tmp_path / "made" / "by" / "run"
    r = berth("run", "--rm", "-v", f"{missing}:/data", "busybox", "sh", "-c",
              "touch /data/x && echo ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert missing.is_dir() and (missing / "x").exists()
    gone = tmp_path / "gone"
    r = berth("run", "--rm", "--mount", f"type=bind,src={gone},dst=/data", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.strip() == ("Error: invalid mount config for type \"bind\": bind source "
                                f"path does not exist: {gone}")
    assert not gone.exists()
    assert berth("ps", "-aq").stdout == ""
