"""Bridge networking, berth vs podman, one table (by hand, as root; not in CI).

    .venv/bin/python bench/network_run.py [N] [MiB]

* ``run --rm busybox true`` latency: ``--network none`` and the default bridge, for both;
* TCP container -> container on one bridge (busybox ``nc`` at both ends, same for both
  engines, so it measures the path plus busybox's small buffers, not the kernel's best);
* TCP host -> published port on 127.0.0.1 (a Python client on the host, busybox ``nc``
  sink in the container): berth's userland proxy vs podman's.

podman runs on a private store (cgroupfs, file events). netavark turns on the host-wide
``net.ipv4.ip_forward`` and adds nft tables and a bridge when it sets up its network; the
value is restored and what it added is removed afterwards.
berth runs with ``BERTH_IP_FORWARD=0`` and needs no host-wide switch for any of this.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BERTH, HostNetState, berth_env, busybox_tar, podman_cmd  # noqa: E402


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout


def latency(cmd: list[str], n: int, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def _extra(tool: list[str]) -> list[str]:
    # this host refuses podman's default RLIMIT_NOFILE/NPROC; explicit small limits work
    return (["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
            if tool[0] == "podman" else [])


def c2c(tool: list[str], mib: int, env: dict[str, str] | None = None) -> float:
    """MiB/s from one container to another over the bridge."""
    _run([*tool, "run", "-d", *_extra(tool), "--name", "sink", "busybox", "sh", "-c",
          "sleep 1000 | nc -l -p 5001 | wc -c"], env)
    _run([*tool, "run", "-d", *_extra(tool), "--name", "src", "busybox", "sleep", "300"], env)
    try:
        ip = _run([*tool, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "sink"],
                  env).strip() or _run([*tool, "inspect", "-f",
                                        "{{range .NetworkSettings.Networks}}{{.IPAddress}}"
                                        "{{end}}", "sink"], env).strip()
        time.sleep(0.3)
        t0 = time.perf_counter()
        _run([*tool, "exec", "src", "true"], env)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        _run([*tool, "exec", "src", "sh", "-c",
              f"head -c {mib << 20} /dev/zero | nc {ip} 5001"], env)
        return mib / max(1e-3, time.perf_counter() - t0 - base)
    finally:
        subprocess.run([*tool, "rm", "-f", "sink", "src"], env=env, capture_output=True)


def host_to_published(tool: list[str], mib: int, port: int,
                      env: dict[str, str] | None = None) -> float:
    """MiB/s from the host to 127.0.0.1:port published to a busybox nc sink."""
    _run([*tool, "run", "-d", *_extra(tool), "--name", "psink", "-p", f"127.0.0.1:{port}:5001", "busybox",
          "sh", "-c", "sleep 1000 | nc -l -p 5001 | wc -c"], env)
    try:
        end = time.time() + 10
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.1)
        buf = b"\0" * (1 << 20)
        t0 = time.perf_counter()
        for _ in range(mib):
            s.sendall(buf)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # EOF once the sink has taken everything
        dt = time.perf_counter() - t0
        s.close()
        return mib / dt
    finally:
        subprocess.run([*tool, "rm", "-f", "psink"], env=env, capture_output=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        env = berth_env(tmp)
        env["BERTH_IP_FORWARD"] = "0"
        tar = busybox_tar(tmp)
        _run([*BERTH, "import", "--change", 'CMD ["sh"]', tar, "busybox:latest"], env)
        # runc like berth (crun refuses this host's cgroups); --ulimit host: this host
        # forbids raising RLIMIT_NOFILE to podman's default
        pod = [podman_cmd(tmp)[0], "--runtime", "runc", *podman_cmd(tmp)[1:]]
        host = HostNetState()
        try:
            podman_ok = subprocess.run([*pod, "import", "--change", 'CMD ["sh"]', tar,
                                        "busybox:latest"], capture_output=True).returncode == 0
            if podman_ok:  # probe without a bridge first: a failing podman never gets one
                probe = subprocess.run([*pod, "run", "--rm", *_extra(pod), "--network",
                                        "none", "busybox", "true"], capture_output=True,
                                       text=True)
                if probe.returncode != 0:
                    podman_ok = False
                    lines = probe.stderr.strip().splitlines() or ["?"]
                    print(f"podman cannot run containers here: {lines[-1]}", file=sys.stderr)
            for mode in ("none", "bridge"):
                b = latency([*BERTH, "run", "--rm", "--network", mode, "busybox", "true"], n,
                            env)
                p = latency([*pod, "run", "--rm", *_extra(pod), "--network", mode, "busybox",
                             "true"], n) \
                    if podman_ok else float("nan")
                rows.append((f"run --rm true, --network {mode} (ms, median of {n})",
                             f"{b:.0f}", f"{p:.0f}"))
            b = c2c(BERTH, mib, env)
            p = c2c(pod, mib) if podman_ok else float("nan")
            rows.append((f"TCP container->container, {mib} MiB (MiB/s)", f"{b:.0f}",
                         f"{p:.0f}"))
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            b = host_to_published(BERTH, mib * 4, port, env)
            p = host_to_published(pod, mib * 4, port) if podman_ok else float("nan")
            rows.append((f"TCP host->127.0.0.1 published, {mib * 4} MiB (MiB/s)", f"{b:.0f}",
                         f"{p:.0f}"))
        finally:
            subprocess.run([*BERTH, "rm", "-f", "sink", "src", "psink"], env=env,
                           capture_output=True)
            host.restore(env, tmp)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'berth':>8}  {'podman':>8}")
    for name, b, p in rows:
        print(f"{name:<{width}}  {b:>8}  {p:>8}")


if __name__ == "__main__":
    main()
