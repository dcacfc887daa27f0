"""Fixtures for rootless berth: a real unprivileged user per test (see :mod:`rlusers`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rootless.rlusers import make_user, remove_user


@pytest.fixture
def rootless_user():  # type: ignore[no-untyped-def]
    if not shutil.which("newuidmap") or os.geteuid() != 0:
        pytest.skip("needs root to create a user, and uidmap installed")
    u = make_user()
    yield u
    leaks = remove_user(u)
    if leaks:
        pytest.fail("rootless test left behind:\n  " + "\n  ".join(leaks), pytrace=False)


@pytest.fixture
def rootless_busybox(rootless_user, busybox_tar):  # type: ignore[no-untyped-def]
    """``busybox:latest`` imported by the rootless user (tar passed on stdin)."""
    p = rootless_user.berth("import", "-c", 'CMD ["sh"]', "-", "busybox",
                            input=Path(busybox_tar).read_bytes())
    assert p.returncode == 0, p.stderr
    return rootless_user
