"""Scale: N detached runs, ``ps -a`` over 1,000 created containers, stop/rm, conmon RSS.

Usage: sudo .venv/bin/python bench/containers_scale.py [N_DETACHED]  (default 20)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.testimages import busybox_rootfs_tar  # noqa: E402

PY = sys.executable


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = dict(os.environ, BERTH_ROOT=str(base / "root"), BERTH_RUNROOT=str(base / "run"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def berth(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "berth", *args], env=env, capture_output=True,
                              text=True, check=True)

    rows = []
    try:
        berth("import", "-c", 'CMD ["sh"]', str(busybox_rootfs_tar(base / "bb.tar")), "busybox")
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            ids = [r.stdout.strip() for r in ex.map(
                lambda _: berth("run", "-d", "busybox", "sleep", "600"), range(n))]
        rows.append((f"run -d x{n} (8 parallel)", time.perf_counter() - t))
        rss = []
        for line in subprocess.run(["ps", "-eo", "rss,args"], capture_output=True,
                                   text=True).stdout.splitlines():
            if "conmon" in line and str(base) in line:
                rss.append(int(line.split()[0]))
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda c: berth("stop", "-t", "1", c), ids))
        rows.append((f"stop x{n}", time.perf_counter() - t))
        t = time.perf_counter()
        berth("rm", *ids)
        rows.append((f"rm x{n} (one command)", time.perf_counter() - t))
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda _: berth("create", "busybox", "true"), range(1000)))
        samples = []
        for _ in range(10):
            t = time.perf_counter()
            out = berth("ps", "-a").stdout
            samples.append(time.perf_counter() - t)
        assert out.count("\n") == 1001
        rows.append(("ps -a, 1,000 containers (median of 10)", statistics.median(samples)))
        print(f"{'operation':<42} {'seconds':>9}")
        for name, secs in rows:
            print(f"{name:<42} {secs:>9.3f}")
        if rss:
            print(f"conmon RSS with {len(rss)} detached containers: median "
                  f"{statistics.median(rss) / 1024:.1f} MiB, total {sum(rss) / 1024:.1f} MiB")
    finally:
        subprocess.run([PY, "-c", "from berth.engine import Engine; import sys;"
                        "Engine(sys.argv[1], sys.argv[2]).remove_all_containers()",
                        str(base / "root"), str(base / "run")], env=env)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
