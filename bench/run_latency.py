"""``berth run --rm busybox true`` latency vs podman and the raw OCI runtime, one table.

Usage: sudo .venv/bin/python bench/run_latency.py [N]   (N runs each, default 20)
Every peer runs the same busybox-static rootfs: imported into a berth store, into a
throw-away podman store (``podman import``), and unpacked as a plain bundle for
``runc run``/``crun run``. Medians in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import busybox_rootfs_tar  # noqa: E402

PY = sys.executable


def timed(argv: list[str], n: int, env: dict | None = None) -> float | None:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        samples.append(time.perf_counter() - t)
        if p.returncode != 0:
            print(f"  {argv[0]} failed: {p.stderr.decode()[-400:]}", file=sys.stderr)
            return None
    return statistics.median(samples) * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    base = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        tar = busybox_rootfs_tar(base / "rootfs.tar")
        root, run = base / "root", base / "run"
        env = dict(os.environ, BERTH_ROOT=str(root), BERTH_RUNROOT=str(run))
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed berth has its .pyc files
        subprocess.run([PY, "-m", "berth", "import", "-c", 'CMD ["sh"]', str(tar), "busybox"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        rows = [("berth run --rm busybox true",
                 timed([PY, "-m", "berth", "run", "--rm", "busybox", "true"], n, env))]
        pod = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend=file", "--root",
               str(base / "proot"), "--runroot", str(base / "prun"), "--storage-driver=vfs"]
        if shutil.which("podman"):
            imp = subprocess.run([*pod, "import", str(tar), "bb"], capture_output=True)
            if imp.returncode != 0:
                print(f"  podman import failed: {imp.stderr.decode()[-300:]}", file=sys.stderr)
            rows.append(("podman --runtime runc run --rm --network none",
                         timed([*pod, "run", "--rm", "--ulimit", "host", "--network", "none", "bb", "true"], n)))
        bundle = base / "bundle"
        (bundle / "rootfs").mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(tar), "-C", str(bundle / "rootfs")], check=True)
        for rt in ("runc", "crun"):
            path = shutil.which(rt) or f"/usr/sbin/{rt}"
            if not os.path.exists(path):
                continue
            subprocess.run([path, "spec", "-b", str(bundle)], check=False)
            spec = json.loads((bundle / "config.json").read_text())
            spec["process"]["terminal"] = False
            spec["process"]["args"] = ["true"]
            (bundle / "config.json").write_text(json.dumps(spec))
            ms = timed([path, "--root", str(base / f"{rt}-state"), "run", "-b", str(bundle),
                        f"bench-{rt}"], n)
            rows.append((f"{rt} run (bare bundle, no monitor)", ms))
            (bundle / "config.json").unlink()
        print(f"{'command':<44} {'median ms':>10}   (n={n})")
        for name, ms in rows:
            print(f"{name:<44} {('%.1f' % ms) if ms is not None else 'failed':>10}")
    finally:
        if shutil.which("podman"):
            subprocess.run(["podman", "--root", str(base / "proot"), "--runroot",
                            str(base / "prun"), "--storage-driver=vfs", "system", "reset",
                            "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([PY, "-m", "berth", "--root", str(base / "root"), "--runroot",
                        str(base / "run"), "container", "prune", "-f"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-R", "-l", str(base / "proot")], stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
