"""Fixtures of the fault tests (helpers live in :mod:`killing`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def bb(berth, busybox_image):  # type: ignore[no-untyped-def]
    """The CLI runner with ``busybox`` imported."""
    return berth
