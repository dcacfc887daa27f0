"""Real workloads on a Debian base, berth vs podman side by side (by hand, as root).

    .venv/bin/python bench/workloads.py [N]

* build of an image that apt-installs a package set: cold (``--no-cache``, apt downloads
  from deb.debian.org) and cached (same Dockerfile again; median of N);
* ``run -d`` of a small HTTP service (busybox httpd from that image) with a published
  port, timed until its first answer on 127.0.0.1 (median of N);
* memory per container with one published port and a health check (60 s interval):
  PSS and RSS of every host process that exists for the container besides its own
  (berth: conmon and the health loop's ``sh`` + ``sleep``; podman: conmon, its health
  timer is systemd's and this host has no systemd; with berth's earlier userland proxy a
  published port also cost a ~20 MiB Python process).

The Debian base is ``mmdebstrap --variant=apt bookworm``, cached like the tests'
(``tests/debian.py``). Builds use ``--network host`` for both engines: berth's RUN steps
get the bridge in another change; host networking measures the same apt work for both.
podman runs on a private store with cgroupfs, file events and runc (this host's needs);
what netavark adds to the host (forwarding switch, nft tables, bridge) is undone.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _common import BERTH, HostNetState, berth_env, podman_cmd, tempdir, timed  # noqa: E402

from debian import IMAGE_CHANGES, debian_rootfs_tar  # noqa: E402

PACKAGES = "busybox-static procps python3-minimal"
DOCKERFILE = f"""FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends {PACKAGES} \\
    && rm -rf /var/lib/apt/lists/*
COPY index.html /srv/index.html
CMD ["busybox", "httpd", "-f", "-p", "8000", "-h", "/srv"]
"""
# this host refuses podman's default RLIMIT_NOFILE/NPROC; explicit small limits work
PODMAN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} failed: {p.stderr[-800:]}")
    return p.stdout


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def first_answer(tool: list[str], image: str, env: dict[str, str] | None,
                 extra: list[str]) -> float:
    """Seconds from ``run -d`` to the service's first HTTP answer on 127.0.0.1."""
    port = _free_port()
    t = time.perf_counter()
    cid = _run([*tool, "run", "-d", *extra, "-p", f"127.0.0.1:{port}:8000", image], env)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    r.read()
                    break
            except OSError:
                if time.perf_counter() - t > 60:
                    raise SystemExit(f"{tool[0]}: no answer on {port}") from None
                time.sleep(0.005)
        return time.perf_counter() - t
    finally:
        subprocess.run([*tool, "rm", "-f", cid.strip()], env=env, capture_output=True)


def _kib(pid: int, field: str) -> int:
    """``Rss``/``Pss`` of a process in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def helper_pids(cid: str) -> list[int]:
    """Host processes that exist for the container: their command line names its ID,
    plus the rest of the process group of a health loop (``sh``; its idle ``sleep``)."""
    named, groups = [], {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            groups[int(name)] = os.getpgid(int(name))
        except OSError:
            continue
        if cid.encode() in cmd:
            named.append(int(name))
    loops = {groups[p] for p in named if b"berth-health" in _cmdline(p)}
    return sorted(set(named) | {p for p, g in groups.items() if g in loops})


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def memory_per_container(tool: list[str], image: str, env: dict[str, str] | None,
                         extra: list[str], n: int = 3) -> tuple[float, float, str]:
    """Median PSS and RSS (MiB) of a published container's helper processes; names."""
    samples, rss, names = [], [], ""
    for _ in range(n):
        port = _free_port()
        cid = _run([*tool, "run", "-d", *extra, "-p", f"127.0.0.1:{port}:8000", image],
                   env).strip()
        try:
            time.sleep(1.0)  # steady state
            pids = helper_pids(cid)
            samples.append(sum(_kib(p, "Pss") for p in pids) / 1024)
            rss.append(sum(_kib(p, "Rss") for p in pids) / 1024)
            names = "+".join(sorted({open(f"/proc/{p}/comm").read().strip()
                                     for p in pids if os.path.exists(f"/proc/{p}/comm")}))
        finally:
            subprocess.run([*tool, "rm", "-f", cid], env=env, capture_output=True)
    return statistics.median(samples), statistics.median(rss), names


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rows: list[tuple[str, str, str, str]] = []
    base = debian_rootfs_tar()
    changes = [a for c in IMAGE_CHANGES for a in ("--change", c)]
    with tempdir() as tmp:
        env = berth_env(tmp)
        env["BERTH_IP_FORWARD"] = "0"
        ctx = os.path.join(tmp, "ctx")
        os.makedirs(ctx)
        Path(ctx, "Dockerfile").write_text(DOCKERFILE)
        Path(ctx, "index.html").write_text("hello from the bench\n")
        pod = [podman_cmd(tmp)[0], "--runtime", "runc", *podman_cmd(tmp)[1:]]
        host = HostNetState()
        try:
            _run([*BERTH, "import", *changes, str(base), "debian:bookworm"], env)
            _run([*pod, "import", *changes, str(base), "debian:bookworm"])
            def bb(*flags: str) -> list[str]:
                return [*BERTH, "build", *flags, "--network", "host", "-t", "web", ctx]

            def pb(*flags: str) -> list[str]:
                return [*pod, "build", *flags, "--network", "host", *PODMAN_LIMITS,
                        "-t", "web", ctx]

            # both start from an unpacked base: podman unpacks at import, berth on first use
            _run([*BERTH, "run", "--rm", "--network", "none", "debian:bookworm", "true"], env)
            _run([*pod, "run", "--rm", *PODMAN_LIMITS, "--network", "none", "debian:bookworm",
                  "true"])
            colds = [(timed(bb("--no-cache"), env), timed(pb("--no-cache")))
                     for _ in range(max(2, n // 2))]  # alternating: the mirror's speed drifts
            b_cold = statistics.median(c[0] for c in colds)
            p_cold = statistics.median(c[1] for c in colds)
            rows.append((f"build, apt-get install (cold, s, median of {len(colds)})",
                         f"{b_cold:.1f}", f"{p_cold:.1f}", f"{b_cold / p_cold:.2f}x"))
            b_hot = statistics.median(timed(bb(), env) for _ in range(n))
            p_hot = statistics.median(timed(pb()) for _ in range(n))
            rows.append((f"build, all cached (s, median of {n})", f"{b_hot:.2f}",
                         f"{p_hot:.2f}", f"{b_hot / p_hot:.2f}x"))
            b_run = statistics.median(first_answer(BERTH, "web", env, []) for _ in range(n))
            p_run = statistics.median(first_answer(pod, "web", None, PODMAN_LIMITS)
                                      for _ in range(n))
            rows.append((f"run -d + first HTTP answer (ms, median of {n})",
                         f"{b_run * 1000:.0f}", f"{p_run * 1000:.0f}",
                         f"{b_run / p_run:.2f}x"))
            health = ["--health-cmd", "true", "--health-interval", "60s"]
            b_mem, b_rss, b_names = memory_per_container(BERTH, "web", env, health)
            p_mem, p_rss, p_names = memory_per_container(pod, "web", None,
                                                         [*PODMAN_LIMITS, *health])
            rows.append(("memory per container, port + health (MiB PSS)", f"{b_mem:.1f}",
                         f"{p_mem:.1f}", f"{b_names} / {p_names}"))
            rows.append(("memory per container, port + health (MiB RSS)", f"{b_rss:.1f}",
                         f"{p_rss:.1f}", f"{b_names} / {p_names}"))
        finally:
            host.restore(env, tmp)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'berth':>8}  {'podman':>8}  ratio / notes")
    for name, b, p, note in rows:
        print(f"{name:<{width}}  {b:>8}  {p:>8}  {note}")


if __name__ == "__main__":
    main()
