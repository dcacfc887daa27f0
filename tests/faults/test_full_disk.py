"""A full disk: reads and removals still work, every write fails cleanly in one line.

The store's root is a small tmpfs (mounted in the test's tmp dir, unmounted at teardown)
that the test fills to the last byte. Then, as the user would, through the real CLI:

* ``ps``, ``images``, ``inspect``, ``volume ls`` and ``network ls`` work, and so do ``rm``,
  ``rmi``, the prunes -- the commands that would free space (the store's reserve file
  lends SQLite the room for its WAL and shared-memory index);
* ``import``, ``load``, ``create``, ``run``, ``commit``, ``build`` (COPY) and ``pull`` fail
  with exactly ``Error: no space left on device`` (exit 1, 125 for run/create) and leave
  no temp entry, blob, layer, container directory or row behind;
* once space is freed the reserve is taken back and writes work again.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DISK_MB = 32
NO_SPACE = "Error: no space left on device"


@dataclass
class Disk:
    mount: Path
    root: Path
    runroot: Path
    tmp: Path

    def fill(self, leave: int = 0) -> None:
        """Write zeros until not one more byte fits (tmpfs allocates whole pages), then
        give ``leave`` bytes back: a disk that fills up in the middle of a write."""
        fd = os.open(self.mount / "fill", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = 1 << 20
            while chunk:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
            os.ftruncate(fd, os.fstat(fd).st_size - leave)
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.mount).free == leave

    def unfill(self) -> None:
        os.unlink(self.mount / "fill")

    def state(self) -> dict[str, object]:
        """Everything a failed write must leave as it was.

        Read through :class:`Store` (not ``Engine``: that would clean ``tmp/`` first),
        which borrows the reserve to open the database on the full disk, as berth does.
        """
        from berth.store.store import Store

        store = Store(str(self.root), str(self.runroot))
        try:
            rows = {t: store.db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]
                    for t in ("images", "tags", "layers", "image_layers", "containers",
                              "volumes", "build_cache")}
        finally:
            store.close()
        return {
            "rows": rows,
            "tmp": sorted(os.listdir(self.root / "tmp")),
            "blobs": sorted(os.listdir(self.root / "blobs" / "sha256")),
            "layers": sorted(os.listdir(self.root / "layers")),
            "containers": sorted(os.listdir(self.root / "containers")),
        }


def berth_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "berth", *args]


def _mounts_under(prefix: Path) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4]
            if target == str(prefix) or target.startswith(f"{prefix}/"):
                out.append(target)
    return sorted(out, key=len, reverse=True)


@pytest.fixture
def disk(berth_env, busybox_tar, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:  # type: ignore[no-untyped-def]
    """A store whose root is a DISK_MB tmpfs; torn down before berth_env's leak check."""
    tmp = Path(berth_env["tmp"])
    mount = tmp / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs",
                    str(mount)], check=True)
    d = Disk(mount, mount / "root", Path(berth_env["runroot"]), tmp)
    monkeypatch.setenv("BERTH_ROOT", str(d.root))
    try:
        yield d
    finally:
        try:
            (mount / "fill").unlink(missing_ok=True)
            from berth.engine import Engine

            with Engine(root=str(d.root), runroot=str(d.runroot)) as eng:
                eng.remove_all_containers()
                eng.remove_all_networks()
        finally:
            for m in _mounts_under(mount):
                subprocess.run(["umount", "-l", m], check=False)


@pytest.fixture
def stocked(disk: Disk, berth, busybox_tar) -> Disk:  # type: ignore[no-untyped-def]
    """busybox (also tagged b2), a created container c2, an archive and a build context."""
    assert berth("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").returncode == 0
    assert berth("tag", "busybox", "b2").returncode == 0
    assert berth("create", "--name", "c2", "--network", "none", "busybox", "true").returncode == 0
    assert berth("save", "-o", str(disk.tmp / "bb.tar"), "busybox").returncode == 0
    ctx = disk.tmp / "ctx"
    ctx.mkdir()
    (ctx / "big").write_bytes(os.urandom(4 << 20))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
    return disk


@pytest.mark.slow
def test_reads_and_removals_work_on_a_full_disk(stocked: Disk, berth) -> None:  # type: ignore[no-untyped-def]
    r = berth("run", "-d", "--name", "up", "--network", "none", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    stocked.fill()
    for args in (["ps", "-a"], ["images"], ["inspect", "busybox"], ["inspect", "c2"],
                 ["volume", "ls"], ["network", "ls"], ["system", "df"], ["logs", "up"]):
        r = berth(*args)
        assert r.returncode == 0, (args, r.stderr)
    assert "c2" in berth("ps", "-a").stdout and "up" in berth("ps").stdout
    for args in (["stop", "-t", "1", "up"], ["rm", "up"], ["rm", "c2"]):
        r = berth(*args)
        assert r.returncode == 0, (args, r.stderr)
    r = berth("rmi", "b2")
    assert (r.returncode, r.stdout.strip()) == (0, "Untagged: b2:latest"), r.stderr
    for args in (["container", "prune", "-f"], ["volume", "prune", "-f"],
                 ["network", "prune", "-f"], ["system", "prune", "-f"],
                 ["image", "prune", "-af"]):
        r = berth(*args)
        assert r.returncode == 0, (args, r.stderr)
    assert berth("images", "-q").stdout == "" and berth("ps", "-aq").stdout == ""
    r = berth("system", "check")
    assert r.returncode == 0 and "0 damaged, 0 garbage" in r.stdout, r.stdout + r.stderr


def _check_fails_cleanly(disk: Disk, berth, args: list[str], code: int) -> None:  # type: ignore[no-untyped-def]
    before = disk.state()
    r = berth(*args)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[-1] == NO_SPACE, (args, r.stderr)
    for bad in ("Traceback", "internal error", "Exception ignored"):
        assert bad not in r.stderr, r.stderr
    assert disk.state() == before, args


def test_writes_fail_in_one_line_and_leave_nothing(stocked: Disk, berth) -> None:  # type: ignore[no-untyped-def]
    bb = str(stocked.tmp / "bb.tar")
    stocked.fill()
    for args, code in (
        (["import", bb, "imported:1"], 1),
        (["load", "-i", bb], 1),
        (["create", "--network", "none", "busybox", "true"], 125),
        (["create", "--name", "named", "--network", "none", "busybox", "true"], 125),
        (["run", "--rm", "--network", "none", "busybox", "true"], 125),
        (["run", "-d", "--network", "none", "busybox", "sleep", "60"], 125),
        (["commit", "c2", "committed:1"], 1),
        (["build", "-t", "built:1", str(stocked.tmp / "ctx")], 1),
    ):
        _check_fails_cleanly(stocked, berth, args, code)
    # a load from stdin spools first: that copy must go too
    before = stocked.state()
    with open(bb, "rb") as f:
        r = subprocess.run(berth_cmd("load"), stdin=f, capture_output=True, text=True,
                           timeout=120, check=False)
    assert (r.returncode, r.stderr.strip()) == (1, NO_SPACE)
    assert stocked.state() == before


def test_disk_filling_up_mid_write_leaves_nothing(stocked: Disk, berth) -> None:  # type: ignore[no-untyped-def]
    """2 MiB free, then writes of 6-10 MB: each runs out half way and cleans up."""
    r = berth("run", "--name", "big", "--network", "none", "busybox", "sh", "-c",
              "head -c 9000000 /dev/urandom > /x")
    assert r.returncode == 0, r.stderr
    big = stocked.tmp / "big"
    big.mkdir()
    (big / "blob").write_bytes(os.urandom(10 << 20))
    subprocess.run(["tar", "cf", str(stocked.tmp / "big.tar"), "-C", str(big), "blob"],
                   check=True)
    ctx = stocked.tmp / "ctx-big"
    ctx.mkdir()
    (ctx / "blob").write_bytes(os.urandom(6 << 20))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY blob /blob\n")
    stocked.fill(leave=2 << 20)
    for args in (["commit", "big", "committed:1"],
                 ["import", str(stocked.tmp / "big.tar"), "imported:1"],
                 ["build", "-t", "built:1", str(ctx)]):
        _check_fails_cleanly(stocked, berth, args, 1)
        assert shutil.disk_usage(stocked.mount).free >= 2 << 20, args


def test_space_freed_makes_writes_work_again(stocked: Disk, berth) -> None:  # type: ignore[no-untyped-def]
    reserve = stocked.root / "reserve"
    assert reserve.stat().st_size > 0  # the store made its reserve on the first close
    stocked.fill()
    r = berth("run", "--rm", "--network", "none", "busybox", "true")
    assert (r.returncode, r.stderr.strip()) == (125, NO_SPACE)
    assert reserve.exists(), "a write must not keep the reserve it was lent"
    stocked.unfill()
    r = berth("run", "--rm", "--network", "none", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert reserve.stat().st_size > 0


def test_pull_fails_cleanly_on_a_full_disk(stocked: Disk, berth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A pull from a real registry (``berth registry serve`` on 127.0.0.1) onto a full disk."""
    import time

    log = tmp_path / "registry.log"
    env = dict(os.environ, BERTH_ROOT=str(tmp_path / "regroot"))
    with open(log, "wb") as log_f:
        srv = subprocess.Popen(berth_cmd("registry", "serve", "--addr", "127.0.0.1:0",
                                         "--storage", str(tmp_path / "regstore")),
                               stdout=subprocess.DEVNULL, stderr=log_f, env=env)
    try:
        url = ""
        for _ in range(200):
            text = log.read_text()
            if "listening on " in text:
                url = text.split("listening on ")[1].split()[0]
                break
            assert srv.poll() is None, text
            time.sleep(0.05)
        ref = f"{url.split('://')[1]}/other:1"
        # another config on busybox's layer: after rmi the pull must write new bytes
        r = berth("import", "-c", "LABEL other=1", str(stocked.tmp / "bb.tar"), ref)
        assert r.returncode == 0, r.stderr
        r = berth("push", "--tls-verify=false", ref)
        assert r.returncode == 0, r.stderr
        assert berth("rmi", ref).returncode == 0
        stocked.fill()
        _check_fails_cleanly(stocked, berth, ["pull", "--tls-verify=false", ref], 1)
    finally:
        srv.terminate()
        srv.wait(10)
