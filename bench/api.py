"""The Docker Engine API: berth's service vs dockerd 20.10, both driven by the same docker CLI.

dockerd (Debian's docker.io) runs on a private socket with its own --data-root, --exec-root,
pidfile and bridge (no iptables changes), and is stopped at the end. Both get the same busybox
image (``docker load`` of one save). Measured: ``docker ps`` with 20 containers, ``docker
images`` with 100 tags, ``docker run --rm busybox true``, ``docker run -d``, ``docker exec``,
1,000 ``GET /containers/json`` over 10 concurrent connections, and ``berth run --rm`` for the
"warm service vs a fresh interpreter" comparison.

    .venv/bin/python bench/api.py
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import BERTH, berth_env, busybox_tar, median_of, table, tempdir, timed

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
BRIDGE = "bbench0"


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix)


def _wait_socket(path: str, proc: subprocess.Popen, what: str) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        try:
            c = _Unix(path)
            c.request("GET", "/_ping")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up")


def list_load(sock: str, total: int = 1000, conns: int = 10) -> float:
    """Seconds for ``total`` GET /containers/json spread over ``conns`` keep-alive clients."""
    per = total // conns
    errors: list[str] = []

    def worker() -> None:
        c = _Unix(sock)
        for _ in range(per):
            c.request("GET", "/v1.41/containers/json")
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(str(r.status))
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.perf_counter() - t
    if errors:
        raise SystemExit(f"GET /containers/json failed: {errors[:3]}")
    return took


def measure(env: dict[str, str], tar: str) -> dict[str, float]:
    def d(*args: str) -> list[str]:
        return [DOCKER, *args]

    timed(d("load", "-i", tar), env)
    out: dict[str, float] = {}
    out["docker run --rm busybox true"] = median_of(5, d("run", "--rm", "busybox", "true"),
                                                    env)
    ids = []
    t = []
    for _ in range(20):
        s = time.perf_counter()
        p = subprocess.run(d("run", "-d", "--network", "none", "busybox", "sleep", "600"),
                           env=env, capture_output=True, text=True)
        t.append(time.perf_counter() - s)
        if p.returncode != 0:
            raise SystemExit(f"docker run -d failed: {p.stderr[-400:]}")
        ids.append(p.stdout.strip())
    out["docker run -d (median of 20)"] = sorted(t)[len(t) // 2]
    out["docker ps (20 containers)"] = median_of(5, d("ps"), env)
    out["docker exec"] = median_of(5, d("exec", ids[0], "true"), env)
    sock = env["DOCKER_HOST"][len("unix://"):]
    out["1,000 GET /containers/json (10 conns)"] = list_load(sock)
    timed(d("rm", "-f", *ids), env)
    for i in range(100):
        timed(d("tag", "busybox", f"bench/img{i}:v{i}"), env)
    out["docker images (100 tags)"] = median_of(5, d("images"), env)
    return out


def main() -> None:
    with tempdir() as tmp:
        tar = busybox_tar(tmp)
        benv = berth_env(tmp)
        subprocess.run([*BERTH, "import", tar, "busybox:latest"], env=benv, check=True,
                       capture_output=True)
        save = os.path.join(tmp, "bb-save.tar")
        subprocess.run([*BERTH, "save", "-o", save, "busybox:latest"], env=benv, check=True)
        results: dict[str, dict[str, float]] = {}

        # berth's service
        bsock = os.path.join(tmp, "berth.sock")
        svc = subprocess.Popen([*BERTH, "system", "service", "-H", f"unix://{bsock}",
                                "--timeout", "0"], env=benv, stderr=subprocess.DEVNULL)
        try:
            _wait_socket(bsock, svc, "berth service")
            env = dict(benv, DOCKER_HOST=f"unix://{bsock}", DOCKER_BUILDKIT="0",
                       DOCKER_CONFIG=os.path.join(tmp, "dcfg"))
            results["berth service"] = measure(env, save)
        finally:
            svc.send_signal(signal.SIGINT)
            svc.wait(timeout=30)
            subprocess.run([*BERTH, "rm", "-f", *subprocess.run(
                [*BERTH, "ps", "-aq"], env=benv, capture_output=True,
                text=True).stdout.split()], env=benv, capture_output=True)
        berth_run = median_of(5, [*BERTH, "run", "--rm", "--network", "none", "busybox",
                                  "true"], benv)

        # dockerd on a private socket, data root, exec root and bridge
        dsock = os.path.join(tmp, "dockerd.sock")
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "10.213.0.1/24", "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        dd = subprocess.Popen([DOCKERD, "-H", f"unix://{dsock}", "--data-root",
                               os.path.join(tmp, "droot"), "--exec-root",
                               os.path.join(tmp, "dexec"), "--pidfile",
                               os.path.join(tmp, "dockerd.pid"), "--bridge", BRIDGE,
                               "--iptables=false", "--ip6tables=false",
                               "--ip-masq=false", "--userland-proxy=false",
                               "--containerd-namespace", "bench", "--containerd-plugins-namespace",
                               "benchp"],
                              stdout=subprocess.DEVNULL, stderr=open(
                                  os.path.join(tmp, "dockerd.log"), "wb"))
        try:
            _wait_socket(dsock, dd, "dockerd")
            env = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_BUILDKIT="0",
                       DOCKER_CONFIG=os.path.join(tmp, "dcfg2"))
            results["dockerd 20.10"] = measure(env, save)
        finally:
            ids = subprocess.run([DOCKER, "-H", f"unix://{dsock}", "ps", "-aq"],
                                 capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run([DOCKER, "-H", f"unix://{dsock}", "rm", "-f", *ids],
                               capture_output=True)
            dd.send_signal(signal.SIGTERM)
            try:
                dd.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dd.kill()
                dd.wait()
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
            subprocess.run(["umount", "-R", os.path.join(tmp, "droot")], capture_output=True)

        rows = []
        b, d = results["berth service"], results["dockerd 20.10"]
        for k in b:
            rows.append((k, f"{b[k]:.3f}s", f"{d[k]:.3f}s", f"{b[k] / d[k]:.2f}x"))
        rows.append(("berth run --rm (CLI, no service)", f"{berth_run:.3f}s", "", ""))
        print(table("Docker Engine API: berth service vs dockerd (same docker CLI)", rows,
                    ("operation", "berth", "dockerd", "berth/dockerd")))


if __name__ == "__main__":
    main()
