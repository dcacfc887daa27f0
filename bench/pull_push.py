"""berth push/pull vs skopeo copy, same image, same docker-registry, same run.

The image: the busybox rootfs layer plus a 200 MiB layer (80 MiB random bytes, 120 MiB of
hex text that gzips to about half), both gzip -6, ~147 MB of blobs. It is written once as
an OCI layout; berth loads it into a temp root (so it pushes the very same blobs) and
skopeo pushes it from the layout. Each round starts a fresh docker-registry on a new port,
so neither tool can skip uploads by mounting blobs it saw in an earlier round.

    .venv/bin/python bench/pull_push.py [ROUNDS]

Pulls: berth pulls into an empty root (download, verify, unpack); skopeo copies into an
empty ``oci:`` directory (download and verify only — it does not unpack).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BERTH, table, tempdir, timed  # noqa: E402

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "skopeo"


def _sha(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(path)


def _busybox_tar(out: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from testimages import busybox_rootfs_tar

    busybox_rootfs_tar(Path(out))


def _big_tar(out: str) -> None:
    """80 MiB random + 120 MiB hex text (gzip keeps ~55% of it) in one tar."""
    import tarfile

    src = out + ".d"
    os.makedirs(src)
    with open(os.path.join(src, "random.bin"), "wb") as f:
        for _ in range(80):
            f.write(os.urandom(1 << 20))
    with open(os.path.join(src, "text.txt"), "wb") as f:
        for _ in range(120):
            raw = os.urandom(1 << 19).hex().encode()
            f.write(b"\n".join(raw[i:i + 63] for i in range(0, len(raw), 64))[: 1 << 20]
                    .ljust(1 << 20, b"\n"))
    with tarfile.open(out, "w") as tar:
        tar.add(src, arcname="data")
    shutil.rmtree(src)


def build_layout(tmp: str) -> str:
    """An OCI layout with the two gzip layers; returns its path (tag ``bench``)."""
    layout = os.path.join(tmp, "layout")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    layers, diff_ids = [], []
    for name, make in (("busybox.tar", _busybox_tar), ("big.tar", _big_tar)):
        tar = os.path.join(tmp, name)
        make(tar)
        diff_ids.append(_sha(tar)[0])
        gz = tar + ".gz"
        with open(tar, "rb") as fi, open(gz, "wb") as fo:
            with gzip.GzipFile(fileobj=fo, mode="wb", compresslevel=6, mtime=0) as z:
                shutil.copyfileobj(fi, z, 1 << 20)
        os.unlink(tar)
        digest, size = _sha(gz)
        os.rename(gz, os.path.join(blobs, digest[7:]))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": size})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdig = "sha256:" + hashlib.sha256(config).hexdigest()
    Path(blobs, cdig[7:]).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cdig, "size": len(config)},
                           "layers": layers}).encode()
    mdig = "sha256:" + hashlib.sha256(manifest).hexdigest()
    Path(blobs, mdig[7:]).write_bytes(manifest)
    Path(layout, "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    Path(layout, "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig,
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
    return layout


class Registry:
    def __init__(self, base: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.host = f"127.0.0.1:{s.getsockname()[1]}"
        os.makedirs(base)
        cfg = os.path.join(base, "config.yml")
        Path(cfg).write_text(
            f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: "
            f"{base}/data}}, delete: {{enabled: true}}}}\nhttp: {{addr: {self.host}}}\n")
        self.proc = subprocess.Popen([REGISTRY, "serve", cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", int(self.host.split(":")[1]))) == 0:
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def env_for(root: str) -> dict[str, str]:
    return {**os.environ, "BERTH_ROOT": root + "/r", "BERTH_RUNROOT": root + "/rr"}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    results: dict[str, list[float]] = {k: [] for k in
                                       ("berth push", "skopeo push", "berth pull", "skopeo pull")}
    with tempdir() as tmp:
        layout = build_layout(tmp)
        size = sum(os.path.getsize(os.path.join(layout, "blobs", "sha256", b))
                   for b in os.listdir(os.path.join(layout, "blobs", "sha256")))
        src_root = os.path.join(tmp, "src")
        subprocess.run([*BERTH, "load", "-i", layout], env=env_for(src_root), check=True,
                       stdout=subprocess.DEVNULL)
        image_id = subprocess.run([*BERTH, "images", "-a", "-q", "--no-trunc"],
                                  env=env_for(src_root), check=True, capture_output=True,
                                  text=True).stdout.split()[0]
        for i in range(rounds):
            reg = Registry(os.path.join(tmp, f"reg{i}"))
            try:
                ref_b, ref_s = f"{reg.host}/bench/berth:1", f"{reg.host}/bench/skopeo:1"
                subprocess.run([*BERTH, "tag", image_id, ref_b], env=env_for(src_root),
                               check=True)
                results["berth push"].append(timed([*BERTH, "push", "-q", ref_b],
                                                   env=env_for(src_root)))
                results["skopeo push"].append(timed(
                    [SKOPEO, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:bench",
                     f"docker://{ref_s}"]))
                dst = os.path.join(tmp, f"dst{i}")
                results["berth pull"].append(timed([*BERTH, "pull", "-q", ref_b],
                                                   env=env_for(dst)))
                results["skopeo pull"].append(timed(
                    [SKOPEO, "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref_s}",
                     f"oci:{os.path.join(tmp, f'oci{i}')}:bench"]))
                shutil.rmtree(dst, ignore_errors=True)
                shutil.rmtree(os.path.join(tmp, f"oci{i}"), ignore_errors=True)
            finally:
                reg.stop()
    rows = []
    for op in ("push", "pull"):
        b = statistics.median(results[f"berth {op}"])
        s = statistics.median(results[f"skopeo {op}"])
        rows.append((op, f"{b:.2f}s", f"{s:.2f}s", f"{b / s:.2f}x"))
    print(table(f"pull/push, {size / 1e6:.0f} MB of blobs, median of {rounds} rounds "
                f"(fresh docker-registry per round)", rows,
                ("op", "berth", "skopeo", "berth/skopeo")))


if __name__ == "__main__":
    main()
