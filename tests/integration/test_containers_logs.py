"""``logs`` with a last line that has no newline (conmon's ``P`` record)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_last_line_without_newline(berth, busybox_image):
    r = berth("run", "--name", "ctr", "busybox", "sh", "-c",
              "printf 'one\\ntwo\\nlast'; printf 'err-last' >&2")
    assert r.returncode == 0, r.stderr
    r = berth("logs", "ctr")
    assert r.stdout == "one\ntwo\nlast"
    assert r.stderr == "err-last"
    r = berth("logs", "--tail", "1", "ctr")
    assert (r.stdout, r.stderr) == ("", "err-last")
    r = berth("logs", "--tail", "2", "ctr")
    assert (r.stdout, r.stderr) == ("last", "err-last")
    r = berth("logs", "-f", "ctr")
    assert r.stdout == "one\ntwo\nlast"
