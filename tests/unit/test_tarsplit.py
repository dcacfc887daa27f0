"""Tar-split records: a layer's tar is rebuilt byte for byte from its tree plus the record,
in every tar dialect (ustar, GNU long names, pax), and refused when the tree cannot give
the contents back (a file written twice, a whiteout of a file of the same layer)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from berth.errors import DigestMismatch
from berth.oci.digest import sha256_bytes
from berth.oci.layer_apply import apply_layer
from berth.oci.tarsplit import RebuiltTar, TarSplitter


def _tar(fmt: int, members: list[tuple[str, str, bytes | str]], *, tail: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for kind, name, data in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            if kind == "f":
                assert isinstance(data, bytes)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = str(data)
                tf.addfile(ti)
            elif kind == "h":
                ti.type = tarfile.LNKTYPE
                ti.linkname = str(data)
                tf.addfile(ti)
    return buf.getvalue() + tail


LONG = "d/" + "n" * 150 + "/" + "f" * 120
MEMBERS = [("d", "d", b""), ("f", "d/a", b"hello\n"), ("f", "d/empty", b""),
           ("f", "d/block", os.urandom(512)), ("f", "d/big", os.urandom(70_000)),
           ("l", "d/link", "a"), ("h", "d/hard", "d/a"), ("d", "d/" + "n" * 150, b""),
           ("f", LONG, b"long name\n"), ("f", "d/caf\u00e9", b"utf8 name")]


def _split_and_rebuild(tar: bytes, tmp: Path) -> tuple[TarSplitter, bytes | None, bytes]:
    dest = tmp / "tree"
    dest.mkdir()
    sp = TarSplitter()
    res = apply_layer(io.BytesIO(tar), str(dest), tap=sp.feed)
    record = sp.finish()
    assert sp.content_size == res.unpacked_size
    if record is None:
        return sp, None, b""

    def open_file(path: bytes):  # type: ignore[no-untyped-def]
        return open(os.path.join(os.fsencode(dest), path), "rb")

    with RebuiltTar(io.BytesIO(record), open_file, res.diff_id) as r:
        out = r.read()
    return sp, record, out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.PAX_FORMAT])
def test_rebuild_is_byte_exact(tmp_path: Path, fmt: int) -> None:
    members = MEMBERS if fmt != tarfile.USTAR_FORMAT else [
        m for m in MEMBERS if len(m[1]) < 100 and m[1].isascii()]
    tar = _tar(fmt, members)
    sp, record, out = _split_and_rebuild(tar, tmp_path)
    assert record is not None and sp.exact
    assert out == tar
    assert len(record) < len(tar) // 10  # headers only, compressed


def test_trailing_bytes_after_the_end_blocks_are_kept(tmp_path: Path) -> None:
    tar = _tar(tarfile.PAX_FORMAT, MEMBERS[:3], tail=bytes(4096))
    _, record, out = _split_and_rebuild(tar, tmp_path)
    assert record is not None and out == tar


def test_read_in_small_pieces_gives_the_same_bytes(tmp_path: Path) -> None:
    tar = _tar(tarfile.GNU_FORMAT, MEMBERS)
    _, record, _ = _split_and_rebuild(tar, tmp_path)
    assert record is not None
    tree = os.fsencode(tmp_path / "tree")
    r = RebuiltTar(io.BytesIO(record), lambda p: open(os.path.join(tree, p), "rb"),
                   sha256_bytes(tar))
    pieces = []
    while chunk := r.read(333):
        pieces.append(chunk)
    assert b"".join(pieces) == tar


def test_a_file_written_twice_is_not_rebuildable(tmp_path: Path) -> None:
    tar = _tar(tarfile.PAX_FORMAT, [("f", "x", b"first"), ("f", "x", b"second")])
    sp, record, _ = _split_and_rebuild(tar, tmp_path)
    assert record is None and not sp.exact


def test_a_whiteout_of_a_file_of_the_same_layer_is_not_rebuildable() -> None:
    tar = _tar(tarfile.PAX_FORMAT, [("d", "d", b""), ("f", "d/x", b"data"),
                                    ("f", "d/.wh.x", b"")])
    sp = TarSplitter()
    sp.feed(tar)
    assert sp.finish() is None


def test_a_changed_tree_fails_the_digest(tmp_path: Path) -> None:
    tar = _tar(tarfile.PAX_FORMAT, MEMBERS)
    _, record, _ = _split_and_rebuild(tar, tmp_path)
    assert record is not None
    target = tmp_path / "tree" / "d" / "a"
    target.write_bytes(b"HELLO\n")  # same length, other bytes
    tree = os.fsencode(tmp_path / "tree")
    with pytest.raises(DigestMismatch), RebuiltTar(
            io.BytesIO(record), lambda p: open(os.path.join(tree, p), "rb"),
            sha256_bytes(tar)) as r:
        r.read()


def test_content_size_counts_regular_files_only() -> None:
    sp = TarSplitter(record=False)
    tar = _tar(tarfile.GNU_FORMAT, MEMBERS)
    for i in range(0, len(tar), 1000):  # fed in pieces that split headers
        sp.feed(tar[i:i + 1000])
    assert sp.content_size == sum(len(d) for k, _, d in MEMBERS if k == "f")
    assert sp.finish() is None  # record=False keeps no record
