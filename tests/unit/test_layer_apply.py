"""apply_layer on honest layers: every member type, replacement rules, both whiteout
modes, compression, diff_id accounting, and speed."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests/tarfactory.py

from berth.errors import DigestMismatch, InvalidArchive, InvalidArgument  # noqa: E402
from berth.oci.compression import detect, open_compressor, open_decompressed  # noqa: E402
from berth.oci.layer_apply import apply_layer  # noqa: E402
from tarfactory import dir, file, gzipped, hardlink, make_tar, opaque, symlink, whiteout, zstded  # noqa: E402

MTIME = 1_600_000_000


def apply(tar: bytes, dest: Path, **kw: object) -> object:
    return apply_layer(io.BytesIO(tar), str(dest), **kw)  # type: ignore[arg-type]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def test_every_member_type_with_metadata(dest: Path) -> None:
    tar = make_tar([
        dir("etc", mode=0o750, uid=3, gid=4, mtime=MTIME - 10),
        file("etc/passwd", b"root:x:0:0\n", mode=0o644, uid=1, gid=2),
        file("bin/su", b"\x7fELF", mode=0o4755),
        file("bin/wall", b"w", mode=0o2755, gid=5),
        dir("tmp", mode=0o1777),
        symlink("etc/link", "/nonexistent/../target"),
        hardlink("bin/su2", "bin/su"),
        {"name": "dev/null", "type": "char", "devmajor": 1, "devminor": 3, "mode": 0o666},
        {"name": "dev/loop0", "type": "block", "devmajor": 7, "devminor": 0, "mode": 0o660},
        {"name": "run/fifo", "type": "fifo", "mode": 0o620},
        file("x", b"xa", xattrs={"user.k": b"v\xff\x00", "user.empty": b""}),
    ])
    result = apply(tar, dest)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert result.size == len(tar)
    assert result.unpacked_size == len(b"root:x:0:0\n") + 4 + 1 + 2

    etc = os.lstat(dest / "etc")
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_gid) == (0o750, 3, 4)
    assert etc.st_mtime == MTIME - 10  # set after its children were created
    pw = os.lstat(dest / "etc/passwd")
    assert (pw.st_uid, pw.st_gid, pw.st_mtime) == (1, 2, MTIME)
    assert (dest / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert stat.S_IMODE(os.lstat(dest / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(dest / "bin/wall").st_mode) == 0o2755
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert os.readlink(dest / "etc/link") == "/nonexistent/../target"
    assert os.lstat(dest / "etc/link").st_mtime == MTIME
    assert os.lstat(dest / "bin/su2").st_ino == os.lstat(dest / "bin/su").st_ino
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(dest / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 0)
    fifo = os.lstat(dest / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620
    assert os.getxattr(dest / "x", "user.k") == b"v\xff\x00"
    assert os.getxattr(dest / "x", "user.empty") == b""


def test_missing_parents_are_created_0755(dest: Path) -> None:
    apply(make_tar([file("a/b/c/d", b"deep")]), dest)
    assert (dest / "a/b/c/d").read_bytes() == b"deep"
    for p in ("a", "a/b", "a/b/c"):
        st = os.lstat(dest / p)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
        assert (st.st_uid, st.st_gid) == (0, 0)


def test_dot_slash_names_and_root_entry(dest: Path) -> None:
    apply(make_tar([dir("./", mode=0o711), file("./a", b"1"), dir("./d/")]), dest)
    assert (dest / "a").read_bytes() == b"1"
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o711


def test_later_member_replaces_earlier(dest: Path) -> None:
    apply(make_tar([
        file("f", b"old"), file("f", b"new"),
        dir("d"), file("d/keep", b"k"), dir("d", mode=0o700),  # dir over dir: kept
        dir("gone"), file("gone/x"), file("gone", b"now a file"),  # file over dir
        file("wasfile"), dir("wasfile"),  # dir over file
        symlink("l", "/etc"), file("l", b"plain"),  # file over symlink: link not followed
    ]), dest)
    assert (dest / "f").read_bytes() == b"new"
    assert (dest / "d/keep").read_bytes() == b"k"
    assert stat.S_IMODE(os.lstat(dest / "d").st_mode) == 0o700
    assert (dest / "gone").read_bytes() == b"now a file"
    assert (dest / "wasfile").is_dir()
    assert not (dest / "l").is_symlink() and (dest / "l").read_bytes() == b"plain"


def test_overlay_whiteouts(dest: Path) -> None:
    apply(make_tar([
        dir("a"), file("a/x", b"1"), whiteout("a/x"),  # replaces what this layer had
        whiteout("b/y"),  # parent created
        dir("o"), opaque("o"), file("o/kept"),
        opaque("p"),  # dir created for the marker
    ]), dest, whiteouts="overlay")
    for p in ("a/x", "b/y"):
        st = os.lstat(dest / p)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "o", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest / "p", "trusted.overlay.opaque") == b"y"
    assert (dest / "o/kept").exists()
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(dest) for n in ds + fs)


def test_overlay_xattrs_from_tar_cannot_forge_overlay_metadata(dest: Path) -> None:
    apply(make_tar([dir("d", xattrs={"trusted.overlay.opaque": b"y",
                                     "trusted.overlay.redirect": b"/etc"})]), dest)
    assert os.listxattr(dest / "d") == []


def test_flat_whiteouts_remove_lower_entries(dest: Path) -> None:
    apply(make_tar([file("a/x", b"1"), file("a/y", b"2"), dir("t"), file("t/s/deep"),
                    symlink("l", "/etc")]), dest, whiteouts="flat")
    apply(make_tar([whiteout("a/x"), whiteout("t"), whiteout("l"), whiteout("no/such")]),
          dest, whiteouts="flat")
    assert sorted(os.listdir(dest)) == ["a"]
    assert os.listdir(dest / "a") == ["y"]
    assert not (dest / "no").exists()


def test_flat_opaque_keeps_this_layers_entries(dest: Path) -> None:
    apply(make_tar([file("d/old1"), file("d/sub/old2"), file("d/sub/old3"), file("e")]),
          dest, whiteouts="flat")
    apply(make_tar([
        file("d/new_before"),
        dir("d/sub"),  # kept dir, but its lower children are hidden too
        file("d/sub/new"),
        opaque("d"),
        file("d/new_after"),
    ]), dest, whiteouts="flat")
    assert sorted(os.listdir(dest / "d")) == ["new_after", "new_before", "sub"]
    assert os.listdir(dest / "d/sub") == ["new"]
    assert (dest / "e").exists()
    assert os.listxattr(dest / "d") == []


def test_flat_whiteout_does_not_hide_same_layer_entry(dest: Path) -> None:
    apply(make_tar([file("a", b"mine"), whiteout("a")]), dest, whiteouts="flat")
    assert (dest / "a").read_bytes() == b"mine"


@pytest.mark.parametrize("wrap", [gzipped, zstded, lambda b: b], ids=["gzip", "zstd", "none"])
def test_compressed_layers_have_the_plain_diff_id(tmp_path: Path,
                                                  wrap: Callable[[bytes], bytes]) -> None:
    tar = make_tar([file(f"f{i}", os.urandom(3000)) for i in range(20)])
    want = "sha256:" + hashlib.sha256(tar).hexdigest()
    dest = tmp_path / "d"
    dest.mkdir()
    result = apply(wrap(tar), dest, expected_diff_id=want)
    assert (result.diff_id, result.size) == (want, len(tar))
    assert len(os.listdir(dest)) == 20


def test_diff_id_covers_trailing_padding(dest: Path) -> None:
    tar = make_tar([file("a", b"x")]) + bytes(10240)
    result = apply(tar, dest)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert result.size == len(tar)


def test_expected_diff_id_mismatch(dest: Path) -> None:
    with pytest.raises(DigestMismatch):
        apply(make_tar([file("a")]), dest, expected_diff_id="sha256:" + "0" * 64)


def test_reads_from_a_pipe(dest: Path) -> None:
    tar = gzipped(make_tar([file("a/b", b"through a pipe" * 1000)]))
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(tar), 7):
                f.write(tar[i:i + 7])
                f.flush()

    t = threading.Thread(target=feed)
    t.start()
    try:
        with os.fdopen(r, "rb", buffering=0) as f:
            apply_layer(f, str(dest))  # type: ignore[arg-type]
    finally:
        t.join()
    assert (dest / "a/b").read_bytes() == b"through a pipe" * 1000


def test_truncated_and_corrupt_streams(tmp_path: Path) -> None:
    tar = make_tar([file("a", os.urandom(5000)), file("b", b"x")])
    b_header = 512 + 10 * 512  # a's header, a's 5000 bytes in 10 blocks, then b's header
    cases = {
        "mid-data": tar[:1500],
        "mid-header": tar[:b_header + 100],
        "at-header-boundary-then-junk": tar[:b_header] + b"\x01" * 100,
        "garbage-header": tar[:b_header] + b"\x01" * 512 + tar[b_header + 512:],
        "gzip-cut": gzipped(tar)[:200],
        "gzip-garbage": b"\x1f\x8b" + os.urandom(200),
        "zstd-cut": zstded(tar)[:100],
        "empty": b"",
    }
    for name, data in cases.items():
        d = tmp_path / name
        d.mkdir()
        with pytest.raises(InvalidArchive):
            apply(data, d)
            pytest.fail(f"{name} was accepted")


def test_layer_without_end_blocks_is_accepted(dest: Path) -> None:
    apply(make_tar([file("a", b"1")], end=False), dest)
    assert (dest / "a").read_bytes() == b"1"


def test_detect_and_decompress() -> None:
    assert detect(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect(b"ustar") == detect(b"") == "none"
    data = os.urandom(100_000) + bytes(3_000_000)
    for blob in (gzipped(data), zstded(data), data, gzipped(data[:10]) + gzipped(data[10:])):
        assert open_decompressed(io.BytesIO(blob)).read() == data


def test_open_compressor_leaves_out_open() -> None:
    for kind in ("gzip", "zstd", "none"):
        out = io.BytesIO()
        w = open_compressor(kind, out)
        w.write(b"hello" * 1000)
        w.close()
        assert not out.closed
        assert open_decompressed(io.BytesIO(out.getvalue())).read() == b"hello" * 1000
    with pytest.raises(InvalidArgument):
        open_compressor("lz4", io.BytesIO())


def test_gzip_output_is_deterministic() -> None:
    outs = []
    for _ in range(2):
        out = io.BytesIO()
        w = open_compressor("gzip", out)
        w.write(b"same")
        w.close()
        outs.append(out.getvalue())
        time.sleep(0.01)
    assert outs[0] == outs[1]
    assert outs[0][4:8] == b"\0\0\0\0"  # mtime 0
    assert not outs[0][3] & 0x08  # no FNAME


def test_big_layer_applies_fast(dest: Path) -> None:
    """~200 MB, mostly large files plus a few thousand small ones, in a few seconds."""
    big = os.urandom(1 << 20)
    members = [file(f"big/{i:03d}", big) for i in range(190)]
    members += [file(f"small/{i // 100}/{i}", b"s" * 100) for i in range(3000)]
    tar = make_tar(members)
    start = time.monotonic()
    result = apply(tar, dest)
    elapsed = time.monotonic() - start
    assert result.unpacked_size == 190 * (1 << 20) + 3000 * 100
    assert elapsed < 8, f"applying {len(tar) >> 20} MB took {elapsed:.1f}s"


def test_xattr_policy(dest: Path) -> None:
    """security.* survives (as root, set after chown); ones the fs refuses are skipped."""
    cap = b"\x01\x00\x00\x02" + b"\x00\x20\x00\x00" + bytes(12)  # v2, effective, cap_net_raw
    apply(make_tar([
        file("ping", b"elf", mode=0o755, uid=7, xattrs={"security.capability": cap}),
        symlink("l", "ping", xattrs={"user.refused-on-symlinks": b"x"}),
        file("odd", xattrs={"nonamespace.key": b"x"}),
    ]), dest)
    assert os.getxattr(dest / "ping", "security.capability") == cap
    assert os.lstat(dest / "ping").st_uid == 7
    assert (dest / "odd").exists()


def test_flat_opaque_at_layer_root(dest: Path) -> None:
    apply(make_tar([file("a"), dir("b"), file("b/c")]), dest, whiteouts="flat")
    apply(make_tar([file("z"), opaque(".")]), dest, whiteouts="flat")
    assert os.listdir(dest) == ["z"]


def test_many_directories_no_fd_leak(dest: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    members = []
    for i in range(1500):
        members += [dir(f"d{i % 50}/e{i}", mtime=MTIME + i), file(f"d{i % 50}/e{i}/f", b"x")]
    apply(make_tar(members), dest)
    assert len(os.listdir("/proc/self/fd")) == before
    assert os.lstat(dest / "d7/e1007").st_mtime == MTIME + 1007
    assert sum(len(fs) for _, _, fs in os.walk(dest)) == 1500


def test_failed_apply_closes_its_fds(dest: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(Exception):
        apply(make_tar([file("a/b/c"), symlink("s", "/"), file("s/x")]), dest)
    assert len(os.listdir("/proc/self/fd")) == before


def test_many_directories_do_not_exhaust_fds(dest: Path) -> None:
    """The cache of directory fds is bounded: a layer with thousands of directories
    applies under a file limit well below their number."""
    import resource

    tar = make_tar([file(f"d{i}/sub/f", b"x") for i in range(1500)])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (800, hard))
    try:
        apply(tar, dest)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(os.listdir(dest)) == 1500 and (dest / "d1499/sub/f").read_bytes() == b"x"


def _big_members(n: int) -> list[dict[str, object]]:
    """Members whose data spans several read buffers (the corruption check's window)."""
    return [file(f"big{i}", bytes([i]) * (700 * 1024 + 333 * i)) for i in range(n)]


@pytest.mark.parametrize("where", ["after-first", "middle", "last"])
def test_corrupt_header_deep_in_a_large_layer(dest: Path, where: str) -> None:
    """tarfile stops silently at a bad header after the first: berth looks at the block
    where it stopped, however far into a multi-megabyte stream that is."""
    members = _big_members(6)
    index = {"after-first": 1, "middle": 3, "last": 5}[where]
    head = make_tar(members[:index], end=False)
    tail = make_tar(members[index:])
    bad = head + bytes(range(256)) * 2 + tail[512:]  # the next member's header garbled
    with pytest.raises(InvalidArchive, match=f"corrupt or truncated header at byte {len(head)}"):
        apply(bad, dest)


@pytest.mark.parametrize("end", [True, False])
def test_large_layer_ends_cleanly(dest: Path, end: bool) -> None:
    """Zeros or a plain EOF after the last member is a clean end, also after many MiB."""
    members = _big_members(6)
    apply(make_tar(members, end=end), dest)
    for i in range(6):
        assert (dest / f"big{i}").stat().st_size == 700 * 1024 + 333 * i


def test_flat_whiteout_keeps_this_layers_implicit_parents(dest: Path) -> None:
    """Directories a layer made only as parents of its own files are its own too: a
    whiteout later in the same layer does not remove them (flat mode)."""
    apply(make_tar([file("a/b/f", b"mine"), whiteout("a/b"), whiteout("a")]), dest,
          whiteouts="flat")
    assert (dest / "a/b/f").read_bytes() == b"mine"


def test_repeated_directory_members_do_not_leak_fds(dest: Path) -> None:
    import resource

    tar = make_tar([dir("d") for _ in range(1500)] + [file("d/f", b"x")])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, hard))
    try:
        apply(tar, dest)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (dest / "d/f").read_bytes() == b"x"
