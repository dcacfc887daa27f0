"""Memory a health check adds per container: berth's health loop next to conmon, and podman.

berth runs one ``sh`` loop (plus an idle ``sleep``) per container with a health check;
podman delegates the timer to systemd (``systemd-run`` transient timers), so on a host
without systemd as init it starts no timer process at all and only its conmon is
measured. Sampled between probes (60 s interval): a probe itself is a short-lived berth process
(about a second of a Python interpreter per interval). Figures are PSS (proportional set size: shared pages split between sharers)
and RSS, from /proc/PID/smaps_rollup, averaged over N containers.

Usage: sudo .venv/bin/python bench/health_memory.py [N]   (default 5)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (
    BERTH,
    berth_env,
    busybox_tar,
    podman_cmd,
    podman_reset,
    table,
    tempdir,
)


def _mem(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB of one process."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def _procs(match: bytes, also: bytes) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if match in cmd and also in cmd:
            out.append(int(p))
    return out


def _group(pids: list[int]) -> list[int]:
    """The processes in the process groups led by ``pids`` (loop + its sleep)."""
    groups = set(pids)
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) in groups:
                    out.append(int(p))
            except OSError:
                pass
    return out


def _sum(pids: list[int]) -> tuple[int, int]:
    got = [_mem(p) for p in pids]
    return sum(g[0] for g in got), sum(g[1] for g in got)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rows = []
    with tempdir() as tmp:
        env = berth_env(tmp)
        def run(*a: str) -> subprocess.CompletedProcess:
            return subprocess.run([*BERTH, *a], env=env, check=True, capture_output=True,
                                  text=True)

        run("import", "-c", 'CMD ["sh"]', busybox_tar(tmp), "busybox")
        for i in range(n):
            run("run", "-d", "--name", f"h{i}", "--health-cmd", "true",
                "--health-interval", "60s", "busybox", "sleep", "600")
        time.sleep(3)
        root = env["BERTH_ROOT"].encode()
        loops = _procs(b"berth-health", root)
        health = _sum(_group(loops))
        conmon = _sum(_procs(b"conmon", root))
        rows.append(("berth health loop (sh+sleep)", f"{health[0] / n / 1024:.2f}",
                     f"{health[1] / n / 1024:.2f}", str(len(loops))))
        rows.append(("berth conmon", f"{conmon[0] / n / 1024:.2f}",
                     f"{conmon[1] / n / 1024:.2f}", str(n)))
        run("rm", "-f", *[f"h{i}" for i in range(n)])
        pod = podman_cmd(tmp) + ["--runtime", "runc"]
        try:
            subprocess.run([*pod, "import", "--change", 'CMD ["sh"]', busybox_tar(tmp),
                            "localhost/busybox"], check=True, capture_output=True)
            for i in range(n):
                subprocess.run([*pod, "run", "-d", "--ulimit", "nofile=1024:1024", "--ulimit",
                                "nproc=1024:1024", "--network", "none", "--name", f"p{i}",
                                "--health-cmd", "true",
                                "--health-interval", "60s", "localhost/busybox", "sleep",
                                "600"], check=True, capture_output=True)
            time.sleep(3)
            proot = os.path.join(tmp, "proot").encode()
            pmon = _sum(_procs(b"conmon", proot))
            rows.append(("podman conmon (timer: systemd)", f"{pmon[0] / n / 1024:.2f}",
                         f"{pmon[1] / n / 1024:.2f}", str(n)))
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            err = getattr(e, "stderr", b"") or b""
            rows.append(("podman", "failed", err.decode(errors="replace")[-200:], "-"))
        finally:
            subprocess.run([*pod, "rm", "-f", "-a"], capture_output=True, check=False)
            podman_reset(tmp)
    print(table(f"Memory per container with a health check (N={n})", rows,
                ("process", "PSS MiB", "RSS MiB", "count")))


if __name__ == "__main__":
    main()
