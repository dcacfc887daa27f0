"""write_layer: deterministic bytes, faithful metadata, round trips through apply_layer,
and overlayfs upper dirs turned into OCI whiteouts (against a real overlay mount)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests/tarfactory.py

from berth.errors import InvalidArgument  # noqa: E402
from berth.oci.layer_apply import apply_layer  # noqa: E402
from berth.oci.layer_write import WriteResult, write_layer  # noqa: E402
from tarfactory import snapshot  # noqa: E402

T0 = 1_500_000_000


def build_tree(root: Path) -> None:
    """A tree with one of everything a layer can hold."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_bytes(b"root:x:0:0\n")
    os.chown(root / "etc/passwd", 10, 20)
    (root / "bin").mkdir()
    (root / "bin/su").write_bytes(b"\x7fELF" * 1000)
    os.chown(root / "bin/su", 0, 0)
    os.chmod(root / "bin/su", 0o4755)  # after chown, which would clear setuid
    os.link(root / "bin/su", root / "bin/su-again")
    (root / "bin/sh").symlink_to("/bin/su")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(root / "dev/null", 0o666)
    os.mknod(root / "dev/sda", stat.S_IFBLK | 0o660, os.makedev(8, 0))
    os.mkfifo(root / "fifo", 0o600)
    (root / "empty").mkdir()
    (root / "x").write_bytes(b"with xattr")
    os.setxattr(root / "x", "user.mime", b"text/plain")
    os.setxattr(root / "x", "user.bin", b"\xff\x00\x01")
    (root / "unicodé").write_bytes(b"u")
    (root / ("long" * 40)).write_bytes(b"long name")
    for i, p in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(p, (T0 + i, T0 + i), follow_symlinks=False)


def write(src: Path, **kw: object) -> tuple[bytes, WriteResult]:
    out = io.BytesIO()
    result = write_layer(str(src), out, **kw)  # type: ignore[arg-type]
    return out.getvalue(), result


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    build_tree(tmp_path / "one")
    build_tree(tmp_path / "two")  # other inodes, other creation order in the dir
    for compression in ("none", "gzip", "zstd"):
        a, ra = write(tmp_path / "one", compression=compression)
        b, rb = write(tmp_path / "one", compression=compression)
        c, rc = write(tmp_path / "two", compression=compression)
        assert a == b == c
        assert ra == rb == rc
        assert ra.digest == "sha256:" + hashlib.sha256(a).hexdigest()
        assert ra.compressed_size == len(a)
    plain, r = write(tmp_path / "one")
    assert (r.diff_id, r.size) == (r.digest, r.compressed_size) == (
        "sha256:" + hashlib.sha256(plain).hexdigest(), len(plain))
    _, rz = write(tmp_path / "one", compression="gzip")
    assert (rz.diff_id, rz.size) == (r.diff_id, r.size)


def test_headers(tmp_path: Path) -> None:
    build_tree(tmp_path / "t")
    data, _ = write(tmp_path / "t")
    ms = members(data)
    names = [m.name for m in ms]
    assert names == sorted(names, key=lambda n: [os.fsencode(p) for p in n.split("/")])
    assert names.index("bin") < names.index("bin/sh")
    for m in ms:
        assert m.uname == m.gname == ""
    by = {m.name: m for m in ms}
    assert by["bin/su"].mode == 0o4755 and by["tmp"].mode == 0o1777
    assert (by["etc/passwd"].uid, by["etc/passwd"].gid) == (10, 20)
    assert by["bin/su-again"].islnk() and by["bin/su-again"].linkname == "bin/su"
    assert by["bin/sh"].issym() and by["bin/sh"].linkname == "/bin/su"
    assert (by["dev/sda"].devmajor, by["dev/sda"].devminor) == (8, 0)
    assert by["fifo"].isfifo()
    assert by["x"].pax_headers["SCHILY.xattr.user.mime"] == "text/plain"
    assert "unicodé" in by and "long" * 40 in by
    # POSIX pax on the wire: every header is ustar ("ustar\\0" "00"), long names and
    # xattrs go in pax 'x' records, never GNU ('ustar  \\0', 'L'/'K' long-name members)
    headers = _raw_headers(data)
    assert {h[257:265] for h in headers} == {b"ustar\x0000"}
    types = {h[156:157] for h in headers}
    assert b"x" in types and not types & {b"L", b"K"}


def _raw_headers(data: bytes) -> list[bytes]:
    """Every 512-byte member header of a tar stream, pax extension headers included
    (``tarfile`` reports the format it would *write*, not the one it read)."""
    out, pos = [], 0
    while pos + 512 <= len(data) and data[pos:pos + 512] != bytes(512):
        h = data[pos:pos + 512]
        out.append(h)
        size = int(h[124:136].rstrip(b"\0 ") or b"0", 8)
        pos += 512 + (size + 511) // 512 * 512
    return out


def test_source_date_epoch_clamps_and_exclude(tmp_path: Path) -> None:
    build_tree(tmp_path / "t")
    data, _ = write(tmp_path / "t", source_date_epoch=T0 + 3,
                    exclude=lambda p: p == "etc" or p.endswith("fifo"))
    ms = members(data)
    assert max(m.mtime for m in ms) == T0 + 3
    assert min(m.mtime for m in ms) == T0
    assert not any(m.name.startswith("etc") or m.name == "fifo" for m in ms)


def test_round_trip_write_then_apply(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_tree(src)
    dst.mkdir()
    data, written = write(src, compression="gzip")
    applied = apply_layer(io.BytesIO(data), str(dst))
    assert applied.diff_id == written.diff_id and applied.size == written.size
    assert snapshot(str(dst)) == snapshot(str(src))
    assert os.lstat(dst / "bin/su").st_ino == os.lstat(dst / "bin/su-again").st_ino
    assert os.getxattr(dst / "x", "user.bin") == b"\xff\x00\x01"


def test_upper_dir_markers_become_oci_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    os.mknod(upper / "gone", stat.S_IFCHR, 0)
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "d", "trusted.overlay.origin", b"junk")
    (upper / "d/new").write_bytes(b"n")
    data, _ = write(upper)
    by = {m.name: m for m in members(data)}
    assert set(by) == {".wh.gone", "d", "d/.wh..wh..opq", "d/new"}
    assert by[".wh.gone"].isreg() and by[".wh.gone"].size == 0 and by[".wh.gone"].mode == 0
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in by["d"].pax_headers)
    names = [m.name for m in members(data)]
    assert names.index("d/.wh..wh..opq") < names.index("d/new")
    plain, _ = write(upper, overlay_upper=False)
    assert {m.name for m in members(plain)} == {"gone", "d", "d/new"}


def test_reserved_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t/.wh.sneaky").write_bytes(b"")
    with pytest.raises(InvalidArgument):
        write(tmp_path / "t")


# -- a real overlay mount -----------------------------------------------------------------


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(lower, upper, merged) with merged mounted; always unmounted afterwards."""
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    yield lower, upper, merged
    if os.path.ismount(merged):
        subprocess.run(["umount", str(merged)], check=True)


def mount_overlay(lower: Path, upper: Path, merged: Path) -> None:
    work = upper.parent / "work"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)],
        capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {proc.stderr.strip()}")


def test_overlay_upper_to_layer_matches_merged_view(tmp_path: Path,
                                                   overlay: tuple[Path, Path, Path]) -> None:
    lower, upper, merged = overlay
    base = tmp_path / "base"
    build_tree(base)
    (base / "opq/sub").mkdir(parents=True)
    (base / "opq/sub/old").write_bytes(b"old")
    (base / "opq/old2").write_bytes(b"old2")
    (base / "tree/a/b").mkdir(parents=True)
    (base / "tree/a/b/c").write_bytes(b"c")
    base_tar, _ = write(base)
    apply_layer(io.BytesIO(base_tar), str(lower))  # lower = an applied layer

    mount_overlay(lower, upper, merged)
    try:
        (merged / "etc/passwd").unlink()  # whiteout
        shutil.rmtree(merged / "tree")  # whiteout of a whole dir
        (merged / "bin/sh").unlink()  # whiteout of a symlink
        shutil.rmtree(merged / "opq")  # then recreated: opaque dir
        (merged / "opq").mkdir()
        (merged / "opq/fresh").write_bytes(b"fresh")
        (merged / "x").write_bytes(b"changed")  # copy-up
        os.chmod(merged / "tmp", 0o1775)
        (merged / "etc/new").write_bytes(b"new file")
        os.chown(merged / "etc/new", 33, 33)
        expected = snapshot(str(merged))
    finally:
        subprocess.run(["umount", str(merged)], check=True)

    data, _ = write(upper)
    names = {m.name for m in members(data)}
    assert {"etc/.wh.passwd", ".wh.tree", "bin/.wh.sh", "opq/.wh..wh..opq"} <= names

    flat = tmp_path / "flat"  # a rootfs built layer by layer: base, then the upper's diff
    flat.mkdir()
    apply_layer(io.BytesIO(base_tar), str(flat), whiteouts="flat")
    apply_layer(io.BytesIO(data), str(flat), whiteouts="flat")
    got = snapshot(str(flat))
    assert got.keys() == expected.keys()
    for path in expected:  # including dir mtimes: the tar carries the upper's
        assert got[path] == expected[path], path

    layered = tmp_path / "layered"  # and the layer works as an overlay lowerdir too
    layered.mkdir()
    apply_layer(io.BytesIO(data), str(layered), whiteouts="overlay")
    assert stat.S_ISCHR(os.lstat(layered / "etc/passwd").st_mode)
    assert os.getxattr(layered / "opq", "trusted.overlay.opaque") == b"y"
