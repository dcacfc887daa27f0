"""``berth build`` vs ``podman build`` (and Docker BuildKit when a dockerd is reachable):
a cold build and a fully cached rebuild of the same Dockerfile, side by side, in one run.

Usage: sudo .venv/bin/python bench/build.py [N]     (N repetitions, default 3)

The Dockerfile: ``FROM`` a local busybox, three RUN steps writing files, a COPY of a 50 MB
file. "Cold" is ``build --no-cache`` with the base image present; "cached" is the same
build again with nothing changed. BuildKit is measured when ``DOCKER_HOST`` (or the
default socket) answers ``docker version``: start one by hand with
``dockerd --iptables=false --bridge=none --data-root /tmp/x`` and stop it afterwards.
Goals: cached <= 1.0x BuildKit (<= 0.5x podman without it); cold <= 0.6x podman.
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

BIG_MB = 50
STEPS = ("RUN echo one > /one\nRUN echo two > /two\nRUN echo three > /three\n"
         "COPY big.bin /big.bin\n")
PY = sys.executable
DOCKER = os.environ.get("BENCH_DOCKER", "docker")  # a CLI with BuildKit built in (20.10's)


def context(tmp: str) -> str:
    ctx = os.path.join(tmp, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "big.bin"), "wb") as f:
        for _ in range(BIG_MB):
            f.write(os.urandom(1 << 20))
    for name, base in (("Dockerfile.berth", "busybox"), ("Dockerfile.podman",
                                                           "localhost/busybox:latest"),
                       ("Dockerfile.docker", "bench-busybox:latest")):
        with open(os.path.join(ctx, name), "w") as f:
            f.write(f"FROM {base}\n{STEPS}")
    return ctx


def berth_engine(tmp: str, tar: str, ctx: str) -> tuple[list[str], list[str], dict[str, str]]:
    env = berth_env(tmp)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure berth as installed: .pyc cached
    subprocess.run([PY, "-m", "berth", "import", tar, "busybox:latest"], env=env, check=True,
                   capture_output=True)
    build = [PY, "-m", "berth", "build", "--network", "none", "-f",
             os.path.join(ctx, "Dockerfile.berth"), "-t", "bench", ctx]
    return [*build[:4], "--no-cache", *build[4:]], build, env


def podman_engine(tmp: str, tar: str, ctx: str) -> tuple[list[str], list[str]]:
    # runc: crun refuses this host's hybrid cgroups; ulimits: podman's default NOFILE is
    # more than this host lets a container raise to.
    pod = [*podman_cmd(tmp), "--runtime", "runc", "--tmpdir", os.path.join(tmp, "ptmp")]
    subprocess.run([*pod, "import", tar, "localhost/busybox:latest"], check=True,
                   capture_output=True)
    build = [*pod, "build", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
             "--network", "none", "-f", os.path.join(ctx, "Dockerfile.podman"), "-t", "bench",
             ctx]
    i = build.index("build") + 1
    return [*build[:i], "--no-cache", *build[i:]], build


def docker_engine(tar: str, ctx: str) -> tuple[list[str], list[str], dict[str, str]] | None:
    """BuildKit through a running dockerd, if there is one."""
    if shutil.which(DOCKER) is None:
        return None
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    if subprocess.run([DOCKER, "version"], env=env, capture_output=True).returncode:
        return None
    subprocess.run([DOCKER, "import", tar, "bench-busybox:latest"], env=env, check=True,
                   capture_output=True)
    build = [DOCKER, "build", "--network", "none", "-f",
             os.path.join(ctx, "Dockerfile.docker"), "-t", "bench-build", ctx]
    return [*build[:2], "--no-cache", *build[2:]], build, env


def measure(cold: list[str], cached: list[str], env: dict[str, str] | None, n: int
            ) -> tuple[float, float]:
    timed(cached, env)  # warm the base image / first build
    c = statistics.median(timed(cold, env) for _ in range(n))
    timed(cached, env)
    h = statistics.median(timed(cached, env) for _ in range(max(n, 5)))
    return c, h


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    base = os.environ.get("BENCH_TMP", "/var/lib")
    with tempfile.TemporaryDirectory(prefix="berth-bench-build-", dir=base) as tmp:
        tar = str(busybox_rootfs_tar(Path(tmp) / "busybox.tar"))
        ctx = context(tmp)
        got: dict[str, tuple[float, float]] = {}
        notes = []
        cold, cached, env = berth_engine(tmp, tar, ctx)
        got["berth"] = measure(cold, cached, env, n)
        if shutil.which("podman"):
            try:
                pcold, pcached = podman_engine(tmp, tar, ctx)
                got["podman"] = measure(pcold, pcached, None, n)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"podman: {e}")
            finally:
                podman_reset(tmp)
        dk = docker_engine(tar, ctx)
        if dk is not None:
            try:
                got["buildkit"] = measure(dk[0], dk[1], dk[2], n)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"buildkit: {e}")
            finally:
                subprocess.run([DOCKER, "rmi", "-f", "bench-build", "bench-busybox"],
                               env=dk[2], capture_output=True)
        else:
            notes.append("buildkit: no dockerd answering (see the module docstring)")

    def ms(key: str, i: int) -> str:
        return f"{got[key][i] * 1000:.0f}" if key in got else "-"

    def ratio(key: str, i: int) -> str:
        return f"{got['berth'][i] / got[key][i]:.2f}" if key in got else "-"

    rows = [(case, ms("berth", i), ms("podman", i), ms("buildkit", i), ratio("podman", i),
             ratio("buildkit", i))
            for i, case in enumerate(("cold build (--no-cache)", "fully cached rebuild"))]
    print(table(f"build: FROM busybox, 3 RUN, COPY {BIG_MB} MB (median, ms)", rows,
                ("case", "berth", "podman", "buildkit", "berth/podman", "berth/buildkit")))
    for note in notes:
        print(note)
    print("\ngoals: cold <= 0.6x podman; cached <= 1.0x buildkit (<= 0.5x podman without it)")


if __name__ == "__main__":
    main()
