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
            for what, net in (("--network none", ["--network", "none"]),
                              ("default network", [])):
                run = ["run", "--rm", *net, "busybox", "true"]
                ms = []
                for cmd in ([*berth, *run], [*podman, *run]):
                    median_of(1, cmd)  # warm-up: makes the pause process, page cache
                    ms.append(median_of(n, cmd) * 1000)
                rows.append((what, f"{ms[0]:.0f}", f"{ms[1]:.0f}", f"{ms[0] / ms[1]:.2f}x"))
            print(table(f"rootless run --rm busybox true, same user (median of {n}, ms)",
                        rows, ("network", "berth", "podman", "berth/podman")))
    finally:
        subprocess.run([*podman, "system", "migrate"], capture_output=True)
        _kill_user_processes(pw.pw_uid)
        subprocess.run(["userdel", "-r", name], capture_output=True)
        shutil.rmtree(f"/tmp/berth-{pw.pw_uid}", ignore_errors=True)


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
