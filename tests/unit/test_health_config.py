"""Docker's merge of --health-* flags over an image's HEALTHCHECK, and the probe argv."""

from __future__ import annotations

import pytest

from berth.container.health import merge, probe_argv
from berth.errors import InvalidArgument

IMAGE = {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 4}


def test_no_flags_keep_the_image_check():
    assert merge(IMAGE) == IMAGE
    assert merge(None) is None


def test_flags_override_field_by_field():
    assert merge(IMAGE, timeout="2s") == {"Test": ["CMD", "true"], "Interval": 5_000_000_000,
                                          "Timeout": 2_000_000_000, "Retries": 4}
    assert merge(IMAGE, cmd="curl -f x", interval="1m30s") == {
        "Test": ["CMD-SHELL", "curl -f x"], "Interval": 90_000_000_000, "Retries": 4}
    assert merge(None, retries=2) == {"Retries": 2}      # no test: nothing to run


def test_disabled_and_errors():
    assert merge(IMAGE, disabled=True) == {"Test": ["NONE"]}
    with pytest.raises(InvalidArgument, match="conflicts with --health"):
        merge(IMAGE, disabled=True, cmd="true")
    with pytest.raises(InvalidArgument, match="cannot be negative"):
        merge(None, retries=-1)
    with pytest.raises(InvalidArgument, match="less than 1ms"):
        merge(None, interval="10us")
    with pytest.raises(InvalidArgument, match="invalid duration"):
        merge(None, timeout="soon")


def test_the_probe_argv():
    assert probe_argv({"Test": ["CMD-SHELL", "a && b"]}) == ["/bin/sh", "-c", "a && b"]
    assert probe_argv({"Test": ["CMD", "x", "y"]}) == ["x", "y"]
    assert probe_argv({"Test": ["NONE"]}) is None
    assert probe_argv({"Retries": 2}) is None
