"""Shared bits of the benchmarks: timing, peers' command lines, tables, test data.

Benchmarks run by hand (``.venv/bin/python bench/NAME.py``), never in CI; each prints a
table with berth and the peer tool measured side by side in the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BERTH = [sys.executable, "-m", "berth"]


def podman_cmd(tmp: str) -> list[str]:
    """podman on a private store (this host needs cgroupfs + file events)."""
    return ["podman", "--root", os.path.join(tmp, "proot"), "--runroot",
            os.path.join(tmp, "prun"), "--tmpdir", os.path.join(tmp, "ptmp"),
            "--cgroup-manager=cgroupfs",
            "--events-backend=file", "--storage-driver=overlay"]


def podman_reset(tmp: str) -> None:
    subprocess.run([*podman_cmd(tmp), "system", "reset", "-f"], capture_output=True)


def timed(cmd: list[str], env: dict[str, str] | None = None, **kw) -> float:  # type: ignore[no-untyped-def]
    """Seconds one command takes; a failure stops the bench with the tail of its stderr."""
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {p.stderr.decode()[-600:]}")
    return took


def median_of(n: int, cmd: list[str], env: dict[str, str] | None = None) -> float:
    return statistics.median(timed(cmd, env) for _ in range(n))


def berth_env(tmp: str) -> dict[str, str]:
    e = dict(os.environ)
    e["BERTH_ROOT"] = os.path.join(tmp, "broot")
    e["BERTH_RUNROOT"] = os.path.join(tmp, "brun")
    return e


def busybox_tar(tmp: str) -> str:
    sys.path.insert(0, str(REPO / "scripts"))
    from make_busybox_rootfs import build

    out = os.path.join(tmp, "busybox.tar")
    build(out)
    return out


def big_rootfs_tar(tmp: str, random_mib: int = 80, text_mib: int = 120) -> str:
    """The issues' 200 MiB test layer: random bytes plus compressible text."""
    import tarfile

    src = os.path.join(tmp, "bigsrc")
    os.makedirs(os.path.join(src, "data"), exist_ok=True)
    with open(os.path.join(src, "data", "random.bin"), "wb") as f:
        for _ in range(random_mib):
            f.write(os.urandom(1 << 20))
    line = b"the quick brown fox jumps over the lazy berth container engine 0123456789\n"
    with open(os.path.join(src, "data", "text.txt"), "wb") as f:
        chunk = line * ((1 << 20) // len(line) + 1)
        for _ in range(text_mib):
            f.write(chunk[: 1 << 20])
    out = os.path.join(tmp, "big.tar")
    with tarfile.open(out, "w") as tar:
        tar.add(os.path.join(src, "data"), arcname="data")
    shutil.rmtree(src)
    return out


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([title, line(header), line(tuple("-" * w for w in widths)),
                      *map(line, rows)])


def tempdir() -> tempfile.TemporaryDirectory:  # type: ignore[type-arg]
    return tempfile.TemporaryDirectory(prefix="berth-bench-", dir="/var/tmp")


class HostNetState:
    """What podman's netavark changes on the host during a bench, undone afterwards.

    netavark turns on ``net.ipv4.ip_forward`` and adds its nft table and bridge; berth's
    own store is emptied through its Engine. Only netavark's tables and podman's links
    are removed: other tools (and other people's tests) on the host stay untouched.
    """

    FWD = "/proc/sys/net/ipv4/ip_forward"

    def __init__(self) -> None:
        self.fwd = Path(self.FWD).read_text().strip()
        self.tables = self._tables()
        self.links = set(os.listdir("/sys/class/net"))

    @staticmethod
    def _tables() -> set[str]:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def restore(self, env: dict[str, str], tmp: str) -> None:
        from berth.engine import Engine

        os.environ["BERTH_IP_FORWARD"] = "0"
        with Engine(env["BERTH_ROOT"], env["BERTH_RUNROOT"]) as eng:
            eng.remove_all_containers()
            eng.remove_all_networks()
        podman_reset(tmp)
        if Path(self.FWD).read_text().strip() != self.fwd:
            Path(self.FWD).write_text(self.fwd)
        for table in self._tables() - self.tables:
            if "netavark" in table:
                subprocess.run(["nft", "delete", *table.split()], capture_output=True)
        for link in set(os.listdir("/sys/class/net")) - self.links:
            if link.startswith(("podman", "veth")) and not _berth_link(link):
                subprocess.run(["ip", "link", "del", link], capture_output=True)


def _berth_link(name: str) -> bool:
    """berth's host-side veths are gone with their containers; never delete others'."""
    master = Path(f"/sys/class/net/{name}/master")
    return master.exists() and master.resolve().name.startswith(("brt-", "berth0"))
