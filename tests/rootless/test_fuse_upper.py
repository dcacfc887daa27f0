"""Unit tests: fuse-overlayfs upper-dir marks become OCI whiteouts (layer writer and diff)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from berth.container import diff
from berth.errors import InvalidArgument
from berth.oci import fuse_upper
from berth.oci.layer_write import write_layer


def _upper(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """An upper dir as fuse-overlayfs 1.10 leaves it (both whiteout styles, opaque file)."""
    up = tmp_path / "upper"
    (up / "sbin").mkdir(parents=True)
    (up / "sbin" / "new").write_text("n")
    (up / "sbin" / ".wh..wh..opq").touch()
    os.mknod(up / "sbin" / ".wh..opq", 0o600 | 0o020000, 0)   # its own marker's whiteout
    (up / "bin").mkdir()
    os.mknod(up / "bin" / "ls", 0o600 | 0o020000, 0)           # device whiteout
    (up / "bin" / ".wh.cat").touch()                             # file whiteout
    os.mknod(up / "bin" / "dup", 0o600 | 0o020000, 0)          # both styles, one deletion
    (up / "bin" / ".wh.dup").touch()
    os.setxattr(up / "bin", "user.fuseoverlayfs.origin", b"x")  # bookkeeping, never kept
    return str(up)


def _members(upper: str) -> dict[str, tarfile.TarInfo]:
    buf = io.BytesIO()
    write_layer(upper, buf)
    buf.seek(0)
    return {m.name: m for m in tarfile.open(fileobj=buf)}


def test_layer_writer_translates_fuse_marks(tmp_path, monkeypatch):
    upper = _upper(tmp_path)
    monkeypatch.setattr(fuse_upper, "active", lambda: True)
    members = _members(upper)
    assert sorted(members) == ["bin", "bin/.wh.cat", "bin/.wh.dup", "bin/.wh.ls",
                               "sbin", "sbin/.wh..wh..opq", "sbin/new"]
    for name in ("bin/.wh.cat", "bin/.wh.dup", "bin/.wh.ls", "sbin/.wh..wh..opq"):
        assert members[name].isreg() and members[name].size == 0 and members[name].mode == 0
    assert not any("fuseoverlayfs" in k for m in members.values() for k in m.pax_headers)


def test_root_upper_keeps_refusing_wh_names(tmp_path, monkeypatch):
    """Outside the rootless namespace a ``.wh.`` file is a container's file: refused."""
    upper = _upper(tmp_path)
    monkeypatch.setattr(fuse_upper, "active", lambda: False)
    with pytest.raises(InvalidArgument, match="reserved for whiteouts"):
        _members(upper)


def test_diff_reads_fuse_marks(tmp_path, monkeypatch):
    upper = _upper(tmp_path)
    lower = tmp_path / "lower"
    for d in ("bin", "sbin"):
        (lower / d).mkdir(parents=True)
    for f in ("bin/ls", "bin/cat", "bin/dup", "sbin/old", "sbin/new"):
        (lower / f).write_text("l")
    monkeypatch.setattr(fuse_upper, "active", lambda: True)
    got = [str(c) for c in diff.changes(upper, [str(lower)])]
    assert got == ["C /bin", "D /bin/cat", "D /bin/dup", "D /bin/ls", "C /sbin",
                   "C /sbin/new", "D /sbin/old"]


def test_marker_classification(tmp_path):
    (tmp_path / "f").touch()
    (tmp_path / "big").write_text("data")
    os.mknod(tmp_path / "d", 0o600 | 0o020000, 0)
    empty, big, dev0 = (os.lstat(tmp_path / n) for n in ("f", "big", "d"))
    assert fuse_upper.marker("a", empty) is None
    assert fuse_upper.marker(".wh.a", empty) == "a"
    assert fuse_upper.marker(".wh..wh..opq", empty) == fuse_upper.SKIP
    assert fuse_upper.marker(".wh..opq", dev0) == fuse_upper.SKIP
    assert fuse_upper.marker(".wh.a", big) is None   # data: not a marker, refused upstream


def test_tar_split_rebuilds_a_layer_with_whiteouts(tmp_path):
    """A whiteout member is no file of the unpacked tree: the rebuild must not open it."""
    import hashlib

    from berth.oci.tarsplit import RebuiltTar, TarSplitter

    (tmp_path / "u" / "d").mkdir(parents=True)
    (tmp_path / "u" / "d" / "f").write_text("data")
    os.mknod(tmp_path / "u" / "gone", 0o600 | 0o020000, 0)
    buf = io.BytesIO()
    write_layer(str(tmp_path / "u"), buf)
    blob = buf.getvalue()
    assert b".wh.gone" in blob
    sp = TarSplitter()
    sp.feed(blob)
    record = sp.finish()
    assert record is not None

    def open_file(rel: bytes):  # type: ignore[no-untyped-def]
        return open(tmp_path / "u" / rel.decode(), "rb")   # .wh.gone is not there

    r = RebuiltTar(io.BytesIO(record), open_file,
                   "sha256:" + hashlib.sha256(blob).hexdigest())
    assert r.read() == blob
