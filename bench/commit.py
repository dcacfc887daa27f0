"""``berth commit`` vs ``podman commit`` (and a plain ``tar``) of a container that wrote
5,000 small files, in one run, on the same busybox rootfs.

Usage: sudo .venv/bin/python bench/commit.py [N]   (N commits each, default 5; medians)
The goal is berth <= 0.3x podman. ``tar`` is the floor: writing the same files as a tar
with no ingest, no unpacked layer and no database.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import berth_env, podman_cmd, podman_reset, table, tempdir  # noqa: E402
from tests.conftest import busybox_rootfs_tar  # noqa: E402

FILES = 5000
WRITE = (f"mkdir /w; i=0; while [ $i -lt {FILES} ]; do echo file $i > /w/f$i; "
         "i=$((i+1)); done")
PY = sys.executable


def timed(argv: list[str], n: int, env: dict[str, str] | None = None,
          tag: bool = True) -> float:
    samples = []
    for i in range(n):
        cmd = [*argv, f"bench:{i}"] if tag else argv
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed: {p.stderr.decode()[-400:]}")
    return statistics.median(samples)


def berth_container(tmp: str, tar: str) -> tuple[list[str], dict[str, str], str]:
    """A stopped berth container that wrote the files; (commit argv, env, its upper dir)."""
    from berth.container.create_options import CreateOptions
    from berth.engine import Engine

    env = berth_env(tmp)
    with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as eng:
        with open(tar, "rb") as f:
            eng.import_image(f, "busybox:latest", changes=['CMD ["sh"]'])
        rec, code = eng.container_run(CreateOptions(image="busybox", name="writer",
                                                    command=["sh", "-c", WRITE]),
                                      stdout_fd=2, stderr_fd=2)
        assert code == 0, code
        upper = rec.upper
    return [PY, "-m", "berth", "commit", "writer"], env, upper


def podman_container(tmp: str, tar: str) -> list[str]:
    # runc: crun refuses this host's hybrid cgroups; rlimits: podman's defaults exceed
    # what this host lets a container raise to.
    pod = [*podman_cmd(tmp), "--runtime", "runc"]
    p = subprocess.run([*pod, "import", tar, "bb"], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"podman import failed: {p.stderr}")
    subprocess.run([*pod, "run", "--name", "writer", "--network", "none", "--ulimit",
                    "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "bb", "sh", "-c",
                    WRITE], check=True, capture_output=True)
    return [*pod, "commit", "-q", "writer"]


def cleanup_berth(env: dict[str, str]) -> None:
    from berth.engine import Engine

    with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as eng:
        eng.remove_all_containers()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempdir() as tmp:
        tar = str(busybox_rootfs_tar(Path(tmp) / "busybox.tar"))
        rows = []
        argv, env, upper = berth_container(tmp, tar)
        try:
            t_berth = timed(argv, n, env)
            out = os.path.join(tmp, "plain.tar")
            t_tar = timed(["tar", "-cf", out, "-C", upper, "."], n, tag=False)
        finally:
            cleanup_berth(env)
        rows.append(("berth commit", f"{t_berth * 1000:.0f}", "1.00"))
        t_pod = None
        if shutil.which("podman"):
            try:
                t_pod = timed(podman_container(tmp, tar), n)
            finally:
                podman_reset(tmp)
            rows.append(("podman commit", f"{t_pod * 1000:.0f}", f"{t_pod / t_berth:.2f}"))
        rows.append(("tar -cf (same upper dir)", f"{t_tar * 1000:.0f}", f"{t_tar / t_berth:.2f}"))
        print(table(f"commit of a container that wrote {FILES} small files "
                    f"(median of {n})", rows, ("what", "ms", "x berth")))
        if t_pod:
            ratio = t_berth / t_pod
            print(f"\nberth / podman = {ratio:.2f} (goal <= 0.30): "
                  f"{'met' if ratio <= 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
