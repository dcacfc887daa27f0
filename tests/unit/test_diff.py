"""``diff`` verdicts from an overlay upper dir against lower layers (temp dirs, no mounts)."""

from __future__ import annotations

import os
import stat

import pytest

from berth.container.diff import Lowers, changes, mount_targets, placeholders

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need mknod (root)")


def _tree(base, files: dict[str, str | None]) -> str:
    """Make files (text), dirs (key ending in /) and whiteouts (value None) under base."""
    os.makedirs(base, exist_ok=True)
    for rel, text in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path.rstrip("/")), exist_ok=True)
        if rel.endswith("/"):
            os.makedirs(path, exist_ok=True)
        elif text is None:
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        else:
            with open(path, "w") as f:
                f.write(text)
    return str(base)


def _lines(upper, lowers, **kw) -> list[str]:
    return [str(c) for c in changes(upper, lowers, **kw)]


def test_added_changed_deleted_sorted(tmp_path):
    low = _tree(tmp_path / "l", {"etc/passwd": "root", "etc/group": "g", "bin/sh": "x",
                                 "etc-x/a": "1"})
    up = _tree(tmp_path / "u", {"etc/passwd": "changed", "etc/group": None, "new/sub/f": "n",
                                "etc-x/b": "2", "hello": "hi"})
    # plain byte order of the path, as Docker's changesByPath: "/etc-x" < "/etc/group"
    assert _lines(up, [low]) == [
        "C /etc", "C /etc-x", "A /etc-x/b", "D /etc/group", "C /etc/passwd", "A /hello",
        "A /new", "A /new/sub", "A /new/sub/f"]


def test_deleted_in_a_higher_lower_layer_counts_as_added(tmp_path):
    bottom = _tree(tmp_path / "l0", {"a/f": "1", "b": "2"})
    top = _tree(tmp_path / "l1", {"a/f": None, "b": None})
    up = _tree(tmp_path / "u", {"a/f": "again", "b": "again"})
    assert _lines(up, [top, bottom]) == ["C /a", "A /a/f", "A /b"]


def test_opaque_directory(tmp_path):
    low = _tree(tmp_path / "l", {"d/old1": "1", "d/old2": "2", "d/keep": "k"})
    up = _tree(tmp_path / "u", {"d/keep": "new", "d/fresh": "f"})
    os.setxattr(os.path.join(up, "d"), "trusted.overlay.opaque", b"y")
    assert _lines(up, [low]) == ["C /d", "A /d/fresh", "C /d/keep", "D /d/old1", "D /d/old2"]


def test_opaque_in_lower_hides_what_is_below(tmp_path):
    bottom = _tree(tmp_path / "l0", {"d/gone": "1"})
    top = _tree(tmp_path / "l1", {"d/": ""})
    os.setxattr(os.path.join(top, "d"), "trusted.overlay.opaque", b"y")
    assert not Lowers([top, bottom]).has(("d", "gone"))
    assert Lowers([top, bottom]).has(("d",))


def test_symlink_in_upper_is_not_followed(tmp_path):
    low = _tree(tmp_path / "l", {"x/": ""})
    up = _tree(tmp_path / "u", {})
    os.symlink("/etc", os.path.join(up, "x"))
    assert _lines(up, [low]) == ["C /x"]


def test_mount_placeholders_are_hidden(tmp_path):
    low = _tree(tmp_path / "l", {"etc/passwd": "root"})
    up = _tree(tmp_path / "u", {"etc/hosts": "", "etc/hostname": "kept", "data/": ""})
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"mounts": [{"destination": "/data"}]}')
    targets = mount_targets(str(bundle))
    assert {"/etc/hosts", "/data"} <= targets
    assert _lines(up, [low], exclude=targets) == ["C /etc", "A /etc/hostname"]
    assert placeholders(up, [low], targets) == {"etc/hosts", "data"}


def test_dir_holding_only_placeholders_is_unchanged(tmp_path):
    low = _tree(tmp_path / "l", {"etc/passwd": "root", "var/": ""})
    up = _tree(tmp_path / "u", {"etc/hosts": "", "etc/resolv.conf": "", "var/": ""})
    targets = {"/etc/hosts", "/etc/resolv.conf"}
    assert _lines(up, [low], exclude=targets) == ["C /var"]  # a chmod'ed dir still shows


def test_empty_upper(tmp_path):
    assert _lines(_tree(tmp_path / "u", {}), [_tree(tmp_path / "l", {"a": "1"})]) == []
