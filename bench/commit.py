"""``berth commit`` vs ``podman commit`` (and a plain ``tar``) of a container that wrote
5,000 small files, in one run, on the same busybox rootfs.

Usage: sudo .venv/bin/python bench/commit.py [N]   (N writer containers each, default 3)
The goal is berth <= 0.3x podman. ``tar`` is the floor: writing the same files as a tar
with no ingest, no unpacked layer and no database.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import berth_env, podman_cmd, podman_reset, table, timed  # noqa: E402
from tests.testimages import busybox_rootfs_tar  # noqa: E402

FILES = 5000
# a per-container token makes every writer's files different, so each first commit is a
# genuinely new layer (both engines skip unpacking a layer they already have).
WRITE = ("t=$(cat /proc/sys/kernel/random/uuid); mkdir /w; i=0; "
         f"while [ $i -lt {FILES} ]; do echo file $i $t > /w/f$i; i=$((i+1)); done")
PY = sys.executable


def measure(engines: dict[str, tuple[list[str], list[str], dict[str, str] | None]]
            ) -> dict[str, tuple[float, float]]:
    """Per engine: (median first commit of each writer, median repeat commit of writer 0).

    The engines take turns, commit by commit, so a busy disk slows both alike.
    """
    first: dict[str, list[float]] = {k: [] for k in engines}
    again: dict[str, list[float]] = {k: [] for k in engines}
    n = min(len(names) for _, names, _ in engines.values())
    for i in range(n):
        for key, (commit, names, env) in engines.items():
            first[key].append(timed([*commit, names[i], f"bench/{names[i]}:1"], env))
    for i in range(n):
        for key, (commit, names, env) in engines.items():
            again[key].append(timed([*commit, names[0], f"bench/{names[0]}:{i + 2}"], env))
    return {k: (statistics.median(first[k]), statistics.median(again[k])) for k in engines}


def berth_writers(tmp: str, tar: str, n: int) -> tuple[dict[str, str], list[str], str]:
    """n stopped berth containers that wrote the files; (env, names, first upper dir)."""
    from berth.container.create_options import CreateOptions
    from berth.engine import Engine

    env = berth_env(tmp)
    names = [f"writer{i}" for i in range(n)]
    with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as eng:
        with open(tar, "rb") as f:
            eng.import_image(f, "busybox:latest", changes=['CMD ["sh"]'])
        uppers = []
        for name in names:
            rec, code = eng.container_run(CreateOptions(network="none", image="busybox",
                                                        name=name, command=["sh", "-c", WRITE]),
                                          stdout_fd=2, stderr_fd=2)
            assert code == 0, code
            uppers.append(rec.upper)
    return env, names, uppers[0]


def podman_writers(tmp: str, tar: str, n: int) -> tuple[list[str], list[str]]:
    # runc: crun refuses this host's hybrid cgroups; rlimits: podman's defaults exceed
    # what this host lets a container raise to.
    pod = [*podman_cmd(tmp), "--runtime", "runc"]
    p = subprocess.run([*pod, "import", tar, "bb"], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"podman import failed: {p.stderr}")
    names = [f"writer{i}" for i in range(n)]
    for name in names:
        subprocess.run([*pod, "run", "--name", name, "--network", "none", "--ulimit",
                        "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "bb", "sh", "-c",
                        WRITE], check=True, capture_output=True)
    return [*pod, "commit", "-q"], names


def cleanup_berth(env: dict[str, str]) -> None:
    from berth.engine import Engine

    with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as eng:
        eng.remove_all_containers()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    # BENCH_TMP: where both stores live. On this host ext4 file creation under /var/tmp
    # runs ~20x slower than elsewhere on the same disk (0.6 ms vs 30 us per create),
    # which would measure the inode allocator, not the engines.
    base = os.environ.get("BENCH_TMP", "/var/lib")
    with tempfile.TemporaryDirectory(prefix="berth-bench-commit-", dir=base) as tmp:
        tar = str(busybox_rootfs_tar(Path(tmp) / "busybox.tar"))
        env, names, upper = berth_writers(tmp, tar, n)
        engines = {"berth": ([PY, "-m", "berth", "commit"], names, env)}
        have_podman = shutil.which("podman") is not None
        try:
            if have_podman:
                pcommit, pnames = podman_writers(tmp, tar, n)
                engines["podman"] = (pcommit, pnames, None)
            got = measure(engines)
            out = os.path.join(tmp, "plain.tar")
            t_tar = statistics.median(timed(["tar", "-cf", out, "-C", upper, "."])
                                      for _ in range(n))
        finally:
            cleanup_berth(env)
            if have_podman:
                podman_reset(tmp)
        b_first, b_again = got["berth"]
        p_first, p_again = got.get("podman", (None, None))

        def ms(x: float | None) -> str:
            return "-" if x is None else f"{x * 1000:.0f}"

        def ratio(a: float, b: float | None) -> str:
            return "-" if not b else f"{a / b:.2f}"

        rows = [("commit, new layer (5000 new files)", ms(b_first), ms(p_first),
                 ratio(b_first, p_first)),
                ("commit again, same content (layer reused)", ms(b_again), ms(p_again),
                 ratio(b_again, p_again)),
                ("tar -cf of the same upper dir", ms(t_tar), "", "")]
        print(table(f"commit of a container that wrote {FILES} small files "
                    f"(median of {n}, ms)", rows, ("case", "berth", "podman", "berth/podman")))
        print("\ngoal: berth/podman <= 0.30")


if __name__ == "__main__":
    main()
