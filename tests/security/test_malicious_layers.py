"""Hostile layers: each must be refused (or applied harmlessly) and never touch anything
outside the layer root. A sentinel directory next to ``dest`` holds a "host file"; after
every case it must be byte-for-byte and inode-for-inode what it was."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests/tarfactory.py

from berth.errors import DigestMismatch, InvalidArchive, UnsafeLayer  # noqa: E402
from berth.oci.layer_apply import apply_layer  # noqa: E402
from tarfactory import dir, file, gzipped, hardlink, make_tar, opaque, snapshot, symlink, whiteout, zstded  # noqa: E402


class Host:
    """The layer root plus the host it must not touch."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.dest = tmp / "dest"
        self.sentinel = tmp / "sentinel"
        self.dest.mkdir()
        self.sentinel.mkdir()
        (self.sentinel / "secret").write_bytes(b"host secret")
        (self.sentinel / "dir").mkdir()
        (self.sentinel / "dir/inner").write_bytes(b"inner")
        self.before = self.state()

    def state(self) -> tuple[Any, ...]:
        outside = sorted(p.name for p in self.tmp.iterdir())
        inode = os.stat(self.sentinel / "secret")
        return (outside, snapshot(str(self.sentinel)), inode.st_ino, inode.st_nlink,
                inode.st_mode, inode.st_uid)

    def apply(self, members: list[dict[str, Any]] | bytes, **kw: Any) -> object:
        data = members if isinstance(members, bytes) else make_tar(members)
        return apply_layer(io.BytesIO(data), str(self.dest), **kw)

    def untouched(self) -> bool:
        return self.state() == self.before


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    yield h
    assert h.untouched(), "something outside the layer root changed"
    assert not os.path.exists("/etc/berth-evil")


S = "SENTINEL"  # replaced by the sentinel's absolute path in the cases below


def expand(members: list[dict[str, Any]], sentinel: Path) -> list[dict[str, Any]]:
    out = []
    for m in members:
        m = dict(m)
        for key in ("name", "linkname"):
            if key in m:
                m[key] = m[key].replace(S, str(sentinel))
        out.append(m)
    return out


REFUSED = {
    "dotdot": [file("../escaped", b"x")],
    "dotdot-deep": [file("a/b/../../../escaped", b"x")],
    "dotdot-dir": [dir("../escaped-dir")],
    "dotdot-symlink-name": [symlink("../escaped-link", "/etc/passwd")],
    "absolute": [file(f"{S}/secret", b"overwritten")],
    "absolute-dir": [dir(f"{S}/newdir")],
    "symlink-to-etc-then-write": [symlink("etc", "/etc"), file("etc/berth-evil", b"x")],
    "symlink-to-host-then-write": [symlink("s", S), file("s/secret", b"overwritten")],
    "symlink-then-mkdir-through": [symlink("s", S), dir("s/newdir")],
    "relative-symlink-escape": [dir("a"), symlink("a/up", "../../sentinel"),
                                file("a/up/secret", b"overwritten")],
    "symlink-dir-chain": [symlink("a", "."), symlink("b", "a/../.."),
                          file("b/sentinel/secret", b"overwritten")],
    "symlink-then-device-through": [symlink("s", S),
                                    {"name": "s/dev", "type": "char", "devmajor": 1,
                                     "devminor": 3}],
    "hardlink-absolute": [hardlink("h", f"{S}/secret")],
    "hardlink-dotdot": [hardlink("h", "../sentinel/secret")],
    "hardlink-through-symlink": [symlink("s", S), hardlink("h", "s/secret")],
    "hardlink-to-later-member": [hardlink("h", "f"), file("f")],
    "hardlink-to-dir": [dir("d"), hardlink("h", "d")],
    "hardlink-to-itself": [file("f"), hardlink("f", "f")],
    "whiteout-through-symlink": [symlink("s", S), whiteout("s/secret")],
    "opaque-over-symlink": [symlink("s", S), opaque("s")],
    "whiteout-empty-name": [file(".wh.")],
    "whiteout-dotdot": [file("a/.wh..."), file("x")],
    "whiteout-dot": [file(".wh..")],
    "whiteout-reserved": [file(".wh..wh.other")],
    "whiteout-as-directory": [file(".wh.x/y")],
    "root-as-symlink": [symlink("./", S)],
    "root-as-file": [file("./", b"x")],
}


@pytest.mark.parametrize("mode", ["overlay", "flat"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(host: Host, case: str, mode: str) -> None:
    with pytest.raises(UnsafeLayer) as exc:
        host.apply(expand(REFUSED[case], host.sentinel), whiteouts=mode)
    assert "layer member" in str(exc.value) and "\n" not in str(exc.value)


def test_file_over_planted_symlink_replaces_the_link(host: Host) -> None:
    host.apply([symlink("x", f"{host.sentinel}/secret"), file("x", b"mine")])
    assert (host.dest / "x").read_bytes() == b"mine"


def test_hardlink_to_replaced_symlink_links_the_symlink_itself(host: Host) -> None:
    host.apply([file("a"), symlink("a", f"{host.sentinel}/secret"), hardlink("h", "a")])
    assert os.readlink(host.dest / "h") == f"{host.sentinel}/secret"


def test_flat_whiteout_of_symlinks_removes_links_not_targets(host: Host) -> None:
    host.apply([symlink("l", f"{host.sentinel}/secret"), symlink("d", str(host.sentinel)),
                symlink("r", "../sentinel/dir")], whiteouts="flat")
    host.apply([whiteout("l"), whiteout("d"), whiteout("r")], whiteouts="flat")
    assert os.listdir(host.dest) == []


def test_flat_opaque_over_earlier_symlink(host: Host) -> None:
    host.apply([symlink("d", str(host.sentinel))], whiteouts="flat")
    with pytest.raises(UnsafeLayer):
        host.apply([opaque("d")], whiteouts="flat")
    with pytest.raises(UnsafeLayer):
        host.apply([whiteout("d/secret")], whiteouts="flat")
    with pytest.raises(UnsafeLayer):
        host.apply([file("d/secret", b"overwritten")], whiteouts="flat")


def test_hardlink_to_earlier_layer_file_is_refused(host: Host) -> None:
    host.apply([file("a", b"base")], whiteouts="flat")
    with pytest.raises(UnsafeLayer):
        host.apply([hardlink("b", "a")], whiteouts="flat")


def test_hardlink_whose_target_a_later_layer_whited_out(host: Host) -> None:
    host.apply([file("a", b"data"), hardlink("b", "a")], whiteouts="flat")
    host.apply([whiteout("a")], whiteouts="flat")
    assert os.listdir(host.dest) == ["b"]
    assert (host.dest / "b").read_bytes() == b"data"
    assert os.lstat(host.dest / "b").st_nlink == 1
    with pytest.raises(UnsafeLayer):
        host.apply([whiteout("b"), hardlink("c", "a")], whiteouts="flat")


def test_hardlink_to_member_removed_in_same_layer(host: Host) -> None:
    with pytest.raises(UnsafeLayer):
        host.apply([dir("d"), file("d/f"), file("d", b"now a file"), hardlink("h", "d/f")])


def test_member_without_parent_entry_is_accepted(host: Host) -> None:
    host.apply([file("usr/lib/x/y.so", b"elf")])
    assert (host.dest / "usr/lib/x/y.so").read_bytes() == b"elf"
    assert stat.S_IMODE(os.lstat(host.dest / "usr").st_mode) == 0o755


def test_diff_id_mismatch(host: Host) -> None:
    with pytest.raises(DigestMismatch):
        host.apply([file("a")], expected_diff_id="sha256:" + "ab" * 32)


@pytest.mark.parametrize("kind", ["truncated-data", "truncated-header", "corrupt-header",
                                  "gzip-garbage", "gzip-truncated", "zstd-garbage",
                                  "not-a-tar"])
def test_broken_archives(host: Host, kind: str) -> None:
    tar = make_tar([file("a", b"x" * 2000), file("b", b"y")])
    second = 512 + 4 * 512
    data = {
        "truncated-data": tar[:1000],
        "truncated-header": tar[:second + 300],
        "corrupt-header": tar[:second] + bytes(range(256)) * 2 + tar[second + 512:],
        "gzip-garbage": b"\x1f\x8b\x08\x00" + os.urandom(500),
        "gzip-truncated": gzipped(tar)[:-20],
        "zstd-garbage": b"\x28\xb5\x2f\xfd" + os.urandom(500),
        "not-a-tar": os.urandom(4096),
    }[kind]
    with pytest.raises(InvalidArchive):
        host.apply(data)


def test_zstd_truncated(host: Host) -> None:
    with pytest.raises(InvalidArchive):
        host.apply(zstded(make_tar([file("a", os.urandom(5000))]))[:-30])


def test_xattrs_cannot_forge_overlay_redirects(host: Host) -> None:
    host.apply([dir("d", xattrs={"trusted.overlay.redirect": b"/sentinel",
                                 "trusted.overlay.metacopy": b""})])
    assert os.listxattr(host.dest / "d") == []


def test_rejected_import_leaves_no_trace_in_the_store(berth, berth_env):  # type: ignore[no-untyped-def]
    """Through the CLI: one clear line, exit 1, and no blob, layer, row or temp file left."""
    import os

    bad = berth_env["tmp"] / "evil.tar"
    bad.write_bytes(make_tar([file("ok.txt", b"fine"), file("../../escape.txt", b"x")]))
    r = berth("import", str(bad), "evil:1")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert not (berth_env["tmp"] / "escape.txt").exists()
    root = berth_env["root"]
    assert os.listdir(os.path.join(root, "blobs", "sha256")) == []
    assert os.listdir(os.path.join(root, "layers")) == ["l"]
    assert os.listdir(os.path.join(root, "layers", "l")) == []
    assert os.listdir(os.path.join(root, "tmp")) == []
    assert berth("images", "-aq").stdout == ""
    r = berth("system", "check")
    assert r.returncode == 0 and "0 garbage" in r.stdout, r.stdout
