"""The Docker Engine API: berth's service vs dockerd 20.10, both driven by the same docker CLI.

dockerd (Debian's docker.io) runs on a private socket with its own --data-root, --exec-root,
pidfile and bridge (no iptables changes), and is stopped at the end. Both get the same busybox
image (``docker load`` of one save). Measured: ``docker ps`` with 20 containers, ``docker
images`` with 100 tags, ``docker run --rm busybox true``, ``docker run -d``, ``docker exec``,
1,000 ``GET /containers/json`` over 10 concurrent connections, one such request's latency
on a warm connection (the server's share of ``docker ps``: the CLI's own start is most of
its wall time and the same for both), and ``berth run --rm`` for the
"warm service vs a fresh interpreter" comparison.

    .venv/bin/python bench/api.py
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
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


def list_latency(sock: str, n: int = 200) -> float:
    """Median seconds of one ``GET /containers/json`` on a warm keep-alive connection: the
    server's share of ``docker ps`` (whose wall time is mostly the docker CLI starting)."""
    c = _Unix(sock)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/v1.41/containers/json")
        r = c.getresponse()
        r.read()
        samples.append(time.perf_counter() - t)
    c.close()
    return statistics.median(samples)


def _docker(env: dict[str, str], *args: str) -> str:
    p = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:3])} failed: {p.stderr[-400:]}")
    return p.stdout


def measure(envs: dict[str, dict[str, str]], tar: str, rounds: int = 7
            ) -> dict[str, dict[str, float]]:
    """Each operation alternates between the engines, round by round, so a load spike on
    this shared machine hits both alike; the median of each side is reported."""
    out: dict[str, dict[str, float]] = {k: {} for k in envs}
    for env in envs.values():
        timed([DOCKER, "load", "-i", tar], env)

    def alternate(label: str, cmd: list[str], n: int = rounds) -> None:
        samples: dict[str, list[float]] = {k: [] for k in envs}
        for _ in range(n):
            for k, env in envs.items():
                samples[k].append(timed([DOCKER, *cmd], env))
        for k, v in samples.items():
            out[k][label] = statistics.median(v)

    alternate("docker run --rm busybox true", ["run", "--rm", "busybox", "true"])
    ids: dict[str, list[str]] = {k: [] for k in envs}
    run_d: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(20):
        for k, env in envs.items():
            t = time.perf_counter()
            ids[k].append(_docker(env, "run", "-d", "--network", "none", "busybox", "sleep",
                                  "600").strip())
            run_d[k].append(time.perf_counter() - t)
    for k in envs:
        out[k]["docker run -d (20 runs)"] = statistics.median(run_d[k])
    alternate("docker ps (20 containers)", ["ps"], n=15)
    alternate("docker --version (the CLI alone, no request)", ["--version"])
    for k, env in envs.items():
        out[k]["GET /containers/json latency (20 containers)"] = list_latency(
            env["DOCKER_HOST"][len("unix://"):])
    samples: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(rounds):
        for k, env in envs.items():
            samples[k].append(timed([DOCKER, "exec", ids[k][0], "true"], env))
    for k in envs:
        out[k]["docker exec"] = statistics.median(samples[k])
    for _ in range(3):
        for k, env in envs.items():
            sock = env["DOCKER_HOST"][len("unix://"):]
            took = list_load(sock)
            out[k]["1,000 GET /containers/json (10 conns)"] = min(
                took, out[k].get("1,000 GET /containers/json (10 conns)", took))
    for k, env in envs.items():
        _docker(env, "rm", "-f", *ids[k])
        for i in range(100):
            _docker(env, "tag", "busybox", f"bench/img{i}:v{i}")
    alternate("docker images (100 tags)", ["images"])
    return out


def main() -> None:
    with tempdir() as tmp:
        tar = busybox_tar(tmp)
        benv = berth_env(tmp)
        subprocess.run([*BERTH, "import", tar, "busybox:latest"], env=benv, check=True,
                       capture_output=True)
        save = os.path.join(tmp, "bb-save.tar")
        subprocess.run([*BERTH, "save", "-o", save, "busybox:latest"], env=benv, check=True)
        bsock = os.path.join(tmp, "berth.sock")
        dsock = os.path.join(tmp, "dockerd.sock")
        svc = subprocess.Popen([*BERTH, "system", "service", "-H", f"unix://{bsock}",
                                "--timeout", "0"], env=benv, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "10.213.0.1/24", "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        with open(os.path.join(tmp, "dockerd.log"), "wb") as log:
            dd = subprocess.Popen([DOCKERD, "-H", f"unix://{dsock}", "--data-root",
                                   os.path.join(tmp, "droot"), "--exec-root",
                                   os.path.join(tmp, "dexec"), "--pidfile",
                                   os.path.join(tmp, "dockerd.pid"), "--bridge", BRIDGE,
                                   "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                                   "--userland-proxy=false", "--containerd-namespace", "bench",
                                   "--containerd-plugins-namespace", "benchp"],
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_socket(bsock, svc, "berth service")
            _wait_socket(dsock, dd, "dockerd")
            envs = {
                "berth service": dict(benv, DOCKER_HOST=f"unix://{bsock}", DOCKER_BUILDKIT="0",
                                      DOCKER_CONFIG=os.path.join(tmp, "dcfg")),
                "dockerd 20.10": dict(os.environ, DOCKER_HOST=f"unix://{dsock}",
                                      DOCKER_BUILDKIT="0",
                                      DOCKER_CONFIG=os.path.join(tmp, "dcfg2")),
            }
            results = measure(envs, save)
            berth_run = median_of(7, [*BERTH, "run", "--rm", "--network", "none", "busybox",
                                      "true"], benv)
        finally:
            for sock in (bsock, dsock):
                ids = subprocess.run([DOCKER, "-H", f"unix://{sock}", "ps", "-aq"],
                                     capture_output=True, text=True).stdout.split()
                if ids:
                    subprocess.run([DOCKER, "-H", f"unix://{sock}", "rm", "-f", *ids],
                                   capture_output=True)
            svc.send_signal(signal.SIGINT)
            svc.wait(timeout=30)
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
            fmt = (lambda v: f"{v * 1000:.2f}ms") if b[k] < 0.01 else (lambda v: f"{v:.3f}s")
            rows.append((k, fmt(b[k]), fmt(d[k]), f"{b[k] / d[k]:.2f}x"))
        rows.append(("berth run --rm (CLI, no service)", f"{berth_run:.3f}s", "", ""))
        print(table("Docker Engine API: berth service vs dockerd (same docker CLI, "
                    "interleaved)", rows, ("operation", "berth", "dockerd", "berth/dockerd")))


if __name__ == "__main__":
    main()
