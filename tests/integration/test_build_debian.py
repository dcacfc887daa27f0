"""Builds on a real Debian bookworm base: apt over the default RUN network, real users.

What busybox cannot show: ``apt-get update`` needs DNS and outbound NAT from the RUN step
(issue 10: it failed with "Temporary failure resolving" before RUN had a network), and
``COPY --chown=NAME`` must find names in the image's own /etc/passwd and /etc/group.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_apt_get_install_in_run(berth, debian_image, tmp_path: Path):  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "conf").write_text("x\n")
    (ctx / "Dockerfile").write_text(
        "FROM debian:bookworm\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends hello "
        "&& rm -rf /var/lib/apt/lists/*\n"
        "COPY --chown=www-data:adm conf /srv/conf\n"
        "RUN hello && stat -c '%U:%G' /srv/conf && getent hosts $(hostname)\n")
    r = berth("build", "--progress", "plain", "-t", "withhello", str(ctx), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Hello, world!" in r.stderr + r.stdout
    assert "www-data:adm" in r.stderr + r.stdout
    r = berth("run", "--rm", "--network", "none", "withhello", "hello")
    assert r.returncode == 0 and "Hello, world!" in r.stdout, r.stderr
