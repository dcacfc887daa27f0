"""Docker's detach-key syntax and the escape filter that holds back a partial sequence."""

from __future__ import annotations

import pytest

from berth.container.detachkeys import DEFAULT, EscapeFilter, parse
from berth.errors import InvalidArgument


def test_parse():
    assert parse(None) == DEFAULT == b"\x10\x11"
    assert parse("ctrl-a,d") == b"\x01d"
    assert parse("ctrl-@,ctrl-[,ctrl-_") == b"\x00\x1b\x1f"
    for bad in ("ctrl-", "ctrl-ab", "ab", "ctrl-1"):
        with pytest.raises(InvalidArgument, match="Invalid detach keys"):
            parse(bad)


def test_filter_holds_a_prefix_until_it_is_broken():
    f = EscapeFilter(b"\x10\x11")
    assert f.feed(b"ab\x10") == (b"ab", False)
    assert f.feed(b"x") == (b"\x10x", False)
    assert f.feed(b"\x10\x10") == (b"\x10", False)
    assert f.feed(b"\x11rest") == (b"", True)
