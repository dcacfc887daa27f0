"""Rootless ``run --rm busybox true``: berth vs rootless podman as the same user.

Two rows: ``--network none``, and the default network (berth: pasta; podman 4.3 here:
slirp4netns, its rootless default).

    .venv/bin/python bench/rootless.py [-n 20]      (as root: it makes a throw-away user)

A user is created with ``useradd`` (which gives it /etc/subuid and /etc/subgid ranges),
busybox-static is imported into its berth store and its podman store, both tools run as
that user through ``runuser`` (``env -i``, so both see the same plain environment), and the
user is deleted again. Both keep a namespace alive between commands (berth's and podman's
pause process), made by the first, untimed, run. Medians in milliseconds. berth's
sources are byte-compiled first: the bench user cannot write the venv's ``__pycache__``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import busybox_tar, median_of, table, tempdir  # noqa: E402

PODMAN = ["podman", "--cgroup-manager=cgroupfs", "--events-backend=file", "--runtime", "runc"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    n = ap.parse_args().n
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve()
                                                                  .parent.parent / "src")])
    name = "brlbench" + os.urandom(2).hex()
    subprocess.run(["useradd", "-m", name], check=True)
    pw = pwd.getpwnam(name)
    as_user = ["runuser", "-u", name, "--", "env", "-i", f"HOME={pw.pw_dir}",
               "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    berth = [*as_user, sys.executable, "-m", "berth"]
    podman = [*as_user, *PODMAN]
    try:
        with tempdir() as tmp:
            tar = os.path.join(pw.pw_dir, "busybox.tar")
            shutil.copy(busybox_tar(tmp), tar)
            os.chmod(tar, 0o644)
            subprocess.run([*berth, "import", tar, "busybox"], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([*podman, "import", tar, "busybox"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rows = []
            for what, net in (("run --rm true, --network none", ["--network", "none"]),
                              ("run --rm true, default network", [])):
                run = ["run", "--rm", *net, "busybox", "true"]
                ms = []
                for cmd in ([*berth, *run], [*podman, *run]):
                    median_of(1, cmd)  # warm-up: makes the pause process, page cache
                    ms.append(median_of(n, cmd) * 1000)
                rows.append((what, f"{ms[0]:.0f}", f"{ms[1]:.0f}", f"{ms[0] / ms[1]:.2f}x"))
            rows.append(_build_row(pw.pw_dir, berth, podman, max(3, n // 4)))
            rows.append(_pull_row(berth, podman, tar, max(3, n // 4)))
            print(table(f"rootless, same user (medians; run: {n}, build/pull: "
                        f"{max(3, n // 4)} samples; ms)",
                        rows, ("what", "berth", "podman", "berth/podman")))
    finally:
        subprocess.run([*podman, "system", "migrate"], capture_output=True)
        _kill_user_processes(pw.pw_uid)
        subprocess.run(["userdel", "-r", name], capture_output=True)
        shutil.rmtree(f"/tmp/berth-{pw.pw_uid}", ignore_errors=True)


def _row(what: str, ms: list[float]) -> tuple[str, ...]:
    return (what, f"{ms[0]:.0f}", f"{ms[1]:.0f}", f"{ms[0] / ms[1]:.2f}x")


def _build_row(home: str, berth: list[str], podman: list[str], n: int) -> tuple[str, ...]:
    """``build --no-cache`` of FROM busybox + RUN + COPY (each tool's default network)."""
    ctx = os.path.join(home, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w", encoding="utf-8") as f:
        f.write("FROM busybox\nRUN echo hi > /hello && mkdir -p /app\nCOPY a.txt /app/\n")
    with open(os.path.join(ctx, "a.txt"), "w", encoding="utf-8") as f:
        f.write("a\n" * 1000)
    subprocess.run(["chown", "-R", f"{os.stat(home).st_uid}", ctx], check=True)
    ms = []
    for cmd in ([*berth, "build", "--no-cache", "-t", "b", ctx],
                [*podman, "build", "--no-cache", "--pull=never", "-t", "b", ctx]):
        median_of(1, cmd)
        ms.append(median_of(n, cmd) * 1000)
    return _row("build --no-cache (RUN + COPY)", ms)


def _pull_row(berth: list[str], podman: list[str], tar: str, n: int) -> tuple[str, ...]:
    """``pull`` of busybox from a registry on 127.0.0.1 (root's berth serves it)."""
    import socket
    import tempfile
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root_store = tempfile.mkdtemp(prefix="berth-bench-reg-", dir="/var/tmp")
    env = dict(os.environ, BERTH_ROOT=f"{root_store}/r", BERTH_RUNROOT=f"{root_store}/rr")
    reg = subprocess.Popen([sys.executable, "-m", "berth", "registry", "serve", "--addr",
                            f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    ref = f"127.0.0.1:{port}/bench/busybox:1"
    try:
        subprocess.run([sys.executable, "-m", "berth", "import", tar, ref], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        for _ in range(100):
            if subprocess.run([sys.executable, "-m", "berth", "push", ref], env=env,
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        ms = []
        for tool, pull in ((berth, [*berth, "pull", ref]),
                           (podman, [*podman, "pull", "--tls-verify=false", ref])):
            samples = []
            for _ in range(n + 1):
                subprocess.run([*tool, "rmi", "-f", ref], capture_output=True)
                samples.append(median_of(1, pull))
            ms.append(sorted(samples[1:])[len(samples[1:]) // 2] * 1000)
        return _row("pull busybox from 127.0.0.1", ms)
    finally:
        reg.terminate()
        reg.wait(10)
        shutil.rmtree(root_store, ignore_errors=True)


def _kill_user_processes(uid: int) -> None:
    """The pause processes (berth's catatonit, podman's) and anything else of the user."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main()
