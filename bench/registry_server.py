"""Benchmark: berth's registry server against Docker's ``docker-registry``, side by side.

Run by hand (``.venv/bin/python bench/registry_server.py [--rounds N]``); prints a table.
The image is made here: one busybox layer and one 200 MiB layer (80 MiB random + 120 MiB
text, gzipped) in an OCI layout. Each round starts both registries fresh on new ports (so
skopeo's blob-info cache cannot turn pushes into mounts) and measures:

* ``skopeo copy`` push of the image from the OCI layout,
* ``skopeo copy`` pull back into a fresh OCI layout,
* 16 concurrent ``curl`` downloads of the big blob.

Medians over the rounds are reported; the goal is berth ≤ 1.2× docker-registry.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

MiB = 1 << 20


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    hexd = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(data)
    return "sha256:" + hexd, len(data)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, 1700000000
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_layout(layout: Path) -> str:
    """The benchmark image as an OCI layout; returns the digest of the big layer."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    busybox = Path("/bin/busybox").read_bytes()
    words = b" ".join(b"lorem%dipsum" % (i % 9973) for i in range(40000)) + b"\n"
    text = (words * (120 * MiB // len(words) + 1))[:120 * MiB]
    raws = [_tar({"bin/busybox": busybox}),
            _tar({"data/random.bin": os.urandom(80 * MiB), "data/text.txt": text})]
    layers, diff_ids = [], []
    for raw in raws:
        d, n = _blob(layout, gzip.compress(raw, compresslevel=1, mtime=0))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": d, "size": n})
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cn = _blob(layout, json.dumps(cfg).encode())
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": cd, "size": cn}, "layers": layers}
    md, mn = _blob(layout, json.dumps(man).encode())
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
            "size": mn, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layers[1]["digest"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("registry exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("registry did not start")


def start_berth(work: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.Popen([sys.executable, "-m", "berth", "registry", "serve", "--addr",
                             f"127.0.0.1:{port}", "--storage", str(work / "berth-storage")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def start_distribution(work: Path, port: int) -> subprocess.Popen[bytes]:
    cfg = work / "config.yml"
    cfg.write_text(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {work / 'dist-storage'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
    return subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def concurrent_pulls(url: str, n: int = 16) -> float:
    t = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", url]) for _ in range(n)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"curl failed: {codes}")
    return time.perf_counter() - t


def one_round(kind: str, layout: Path, big: str, work: Path) -> dict[str, float]:
    work.mkdir()
    port = free_port()
    proc = (start_berth if kind == "berth" else start_distribution)(work, port)
    try:
        wait_port(port, proc)
        ref = f"docker://127.0.0.1:{port}/bench/image:1"
        push = timed(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                      f"oci:{layout}:latest", ref])
        pull = timed(["skopeo", "copy", "-q", "--src-tls-verify=false", ref,
                      f"oci:{work / 'pulled'}:latest"])
        fan = concurrent_pulls(f"http://127.0.0.1:{port}/v2/bench/image/blobs/{big}")
        return {"push": push, "pull": pull, "16 pulls": fan}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for tool in ("skopeo", "docker-registry", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required")
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp:
        layout = Path(tmp) / "layout"
        big = make_layout(layout)
        size = sum(f.stat().st_size for f in (layout / "blobs" / "sha256").iterdir())
        results: dict[str, dict[str, list[float]]] = {"berth": {}, "docker-registry": {}}
        for i in range(args.rounds):
            for kind in results:  # interleave so drift in the machine hits both alike
                r = one_round(kind, layout, big, Path(tmp) / f"{kind}-{i}")
                for k, v in r.items():
                    results[kind].setdefault(k, []).append(v)
    print(f"image: {size / MiB:.0f} MiB compressed, 2 layers; median of {args.rounds} rounds")
    print(f"{'operation':<34}{'berth':>10}{'docker-registry':>17}{'ratio':>8}")
    for op, label in (("push", "skopeo copy push"), ("pull", "skopeo copy pull"),
                      ("16 pulls", "16 concurrent curl pulls (big blob)")):
        b = statistics.median(results["berth"][op])
        d = statistics.median(results["docker-registry"][op])
        print(f"{label:<34}{b:>9.2f}s{d:>16.2f}s{b / d:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
