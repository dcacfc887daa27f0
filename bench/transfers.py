"""Push and pull of a real ~600 MB Debian-based image: berth vs Podman vs skopeo, one run.

The image is what users push: Debian bookworm (mmdebstrap, the tests' cached base) plus
apt-installed PostgreSQL (with its LLVM JIT, as in Debian), built once by podman with host
networking and cached as a docker-archive under ``~/.cache/berth-tests/``. Its layers are
plain tars, so every tool must compress on push. Each measurement gets a fresh
docker-registry on 127.0.0.1, so nobody skips an upload by mounting a blob seen earlier.

    .venv/bin/python bench/transfers.py [ROUNDS]

Measured:
* push bytes (sum of the layer blobs the registry holds) and time, at each tool's default
  and at gzip levels 3 and 6 where the tool has a level flag (podman 4.3 has none);
* a re-push of the same image to a new repository of the same registry (berth: no
  recompression, cross-repository mounts);
* pull + first ``run --rm --network none IMAGE true`` in a fresh store, berth vs Podman.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _common import BERTH, podman_cmd, table, tempdir, timed  # noqa: E402
from pull_push import Registry  # noqa: E402

from debian import cache_dir, debian_rootfs_tar  # noqa: E402

SKOPEO = shutil.which("skopeo") or "skopeo"
PACKAGES = "postgresql"  # with its LLVM JIT: the 622 MB image of the issue
ACCEPT = ("application/vnd.oci.image.manifest.v1+json,"
          "application/vnd.docker.distribution.manifest.v2+json")
PODMAN_RUN = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit",
              "nproc=1024:1024"]


def big_image(tmp: str) -> str:
    """The cached docker-archive of the ~600 MB image (built by podman on first use)."""
    out = cache_dir() / "bench-transfers.tar"
    if out.exists():
        return str(out)
    pod = podman_cmd(os.path.join(tmp, "build"))
    subprocess.run([*pod, "import", "--change", "CMD [\"bash\"]", str(debian_rootfs_tar()),
                    "debian:bookworm"], check=True, stdout=subprocess.DEVNULL)
    ctx = Path(tmp, "ctx")
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM debian:bookworm\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {PACKAGES} && rm -rf /var/lib/apt/lists/*\n"
        "RUN echo done > /opt/marker\n")
    subprocess.run([*pod, "build", "--network", "host", "--runtime", "runc", "-t",
                    "bench/transfers:1", str(ctx)], check=True, stdout=subprocess.DEVNULL)
    tmp_out = str(out) + ".tmp"
    subprocess.run([*pod, "save", "--format", "docker-archive", "-o", tmp_out,
                    "bench/transfers:1"], check=True)
    os.replace(tmp_out, out)
    subprocess.run([*pod, "system", "reset", "-f"], capture_output=True)
    return str(out)


def layer_bytes(reg: Registry, repo: str) -> int:
    m = httpx.get(f"http://{reg.host}/v2/{repo}/manifests/1", headers={"Accept": ACCEPT})
    m.raise_for_status()
    return sum(layer["size"] for layer in m.json()["layers"])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    res: dict[str, list[float]] = {}
    size: dict[str, int] = {}

    def add(key: str, v: float) -> None:
        res.setdefault(key, []).append(v)

    with tempdir() as tmp:
        archive = big_image(tmp)
        raw = os.path.getsize(archive)
        benv = {**os.environ, "BERTH_ROOT": f"{tmp}/b/r", "BERTH_RUNROOT": f"{tmp}/b/rr"}
        subprocess.run([*BERTH, "load", "-q", "-i", archive], env=benv, check=True,
                       stdout=subprocess.DEVNULL)
        pod = podman_cmd(os.path.join(tmp, "p"))
        subprocess.run([*pod, "load", "-q", "-i", archive], check=True,
                       stdout=subprocess.DEVNULL)
        for i in range(rounds):
            # podman 4.3 has no --compression-level: its default (pgzip) only
            for tool, level in (("berth", None), ("berth", 6), ("podman", None),
                                ("skopeo", None), ("skopeo", 3), ("skopeo", 6)):
                reg = Registry(os.path.join(tmp, f"reg-{i}-{tool}-{level}"))
                try:
                    dest = f"{reg.host}/bench/{tool}:1"
                    lv = [] if level is None else [str(level)]
                    if tool == "berth":
                        subprocess.run([*BERTH, "tag", "localhost/bench/transfers:1", dest], env=benv,
                                       check=True)
                        cmd = [*BERTH, "push", "-q", *(["--compression-level", *lv] if lv
                                                       else []), dest]
                        with_env = benv
                    elif tool == "podman":
                        cmd = [*pod, "push", "--tls-verify=false", "--compression-format",
                               "gzip", "localhost/bench/transfers:1", f"docker://{dest}"]
                        with_env = None
                    else:
                        cmd = [SKOPEO, "copy", "--quiet", "--dest-tls-verify=false",
                               "--dest-compress-format", "gzip",
                               *(["--dest-compress-level", *lv] if lv else []),
                               f"docker-archive:{archive}", f"docker://{dest}"]
                        with_env = None
                    key = f"{tool} {'default' if level is None else 'gzip -' + str(level)}"
                    add(f"push {key}", timed(cmd, env=with_env))
                    size[key] = layer_bytes(reg, f"bench/{tool}")
                    if tool == "berth" and level is None:
                        again = f"{reg.host}/bench/again:1"
                        subprocess.run([*BERTH, "tag", "localhost/bench/transfers:1", again], env=benv,
                                       check=True)
                        add("re-push berth (new repository)",
                            timed([*BERTH, "push", "-q", again], env=benv))
                        fresh = {**os.environ, "BERTH_ROOT": f"{tmp}/f{i}/r",
                                 "BERTH_RUNROOT": f"{tmp}/f{i}/rr"}
                        t = timed([*BERTH, "pull", "-q", dest], env=fresh)
                        t += timed([*BERTH, "run", "--rm", "--network", "none", dest, "true"],
                                   env=fresh)
                        add("pull + first run berth", t)
                        shutil.rmtree(f"{tmp}/f{i}", ignore_errors=True)
                        fpod = podman_cmd(os.path.join(tmp, f"fp{i}"))
                        t = timed([*fpod, "pull", "-q", "--tls-verify=false", dest])
                        t += timed([*fpod, "run", *PODMAN_RUN, "--rm", "--network", "none",
                                    dest, "true"])
                        add("pull + first run podman", t)
                        subprocess.run([*fpod, "system", "reset", "-f"], capture_output=True)
                finally:
                    reg.stop()
        subprocess.run([*pod, "system", "reset", "-f"], capture_output=True)
    rows = [(k, f"{statistics.median(v):.2f}s",
             f"{size[k.removeprefix('push ')] / 1e6:.1f} MB" if k.startswith("push ") else "")
            for k, v in res.items()]
    print(table(f"transfers of a {raw / 1e6:.0f} MB image (plain layers), median of {rounds}",
                rows, ("what", "time", "layer bytes")))
    print(json.dumps({k: statistics.median(v) for k, v in res.items()}))


if __name__ == "__main__":
    main()
