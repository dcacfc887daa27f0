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
