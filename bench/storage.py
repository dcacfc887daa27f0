"""Storage: disk per GB imported (berth vs podman), GC pass time, GC's cost to a command
under the budget, ``system df`` at scale.

Goals (issue 12): store ≤ 1.15x the unpacked size for local layers; the budget check a
``build``/``pull`` pays ≤ 2 ms; ``system df`` ≤ 200 ms with 1,000 images and 1,000
containers. The GC pass runs on 1,000 images / 5,000 layers (rows and real layer dirs,
half of the images dangling).

    .venv/bin/python bench/storage.py [--images 1000] [--layers-per-image 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import BERTH, REPO, berth_env, podman_cmd, podman_reset, table, tempdir


def disk(path: str) -> int:
    """Allocated bytes under ``path`` (each inode once), like ``du -s``."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += st.st_blocks * 512
    return total


def content_bytes(tar_path: str) -> int:
    import tarfile

    with tarfile.open(tar_path) as tf:
        return sum(m.size for m in tf if m.isreg())


def debian_tar() -> str:
    sys.path.insert(0, str(REPO / "tests"))
    from debian import debian_rootfs_tar

    return str(debian_rootfs_tar())


def bench_disk(tmp: str) -> list[tuple[str, ...]]:
    tar = debian_tar()
    content = content_bytes(tar)
    env = berth_env(tmp)
    subprocess.run([*BERTH, "import", tar, "deb:1"], env=env, check=True,
                   capture_output=True)
    b = disk(env["BERTH_ROOT"])
    pod = podman_cmd(tmp)
    subprocess.run([*pod, "import", "-q", tar, "deb:1"], check=True, capture_output=True)
    p = disk(os.path.join(tmp, "proot"))
    podman_reset(tmp)
    gb = content / 1e9
    return [("berth", f"{b / 1e6:.1f} MB", f"{b / gb / 1e9:.3f} GB", f"{b / content:.3f}x"),
            ("podman", f"{p / 1e6:.1f} MB", f"{p / gb / 1e9:.3f} GB", f"{p / content:.3f}x")]


def synth_store(root: str, runroot: str, n_images: int, per_image: int,
                n_containers: int) -> None:
    """Rows (and empty layer dirs) for a big store, written straight into the database."""
    from berth.engine import Engine
    from berth.oci.digest import sha256_bytes

    with Engine(root, runroot) as eng:
        db, layers = eng.store.db, eng.store.layers
        now = time.time()
        with db.tx() as tx:
            for i in range(n_images):
                parent = None
                chains = []
                for j in range(per_image):
                    diff = sha256_bytes(f"diff {i} {j}".encode())
                    chain = diff if parent is None else sha256_bytes(f"{parent} {diff}".encode())
                    os.makedirs(layers.diff_dir(chain))
                    tx.execute("INSERT INTO layers(chain_id, diff_id, parent, link, size, "
                               "created, split_size) VALUES (?,?,?,?,?,?,?)",
                               (chain, diff, parent, f"l{i}x{j}", 1 << 20, now, 4096))
                    chains.append((chain, diff))
                    parent = chain
                iid = sha256_bytes(f"image {i}".encode())
                tx.execute("INSERT INTO images(id, manifest_digest, manifest_media_type, "
                           "created, added, size, labels, parent, top_layer) VALUES "
                           "(?,?,?,?,?,?,?,?,?)", (iid, iid, "m", now, now - i, 5 << 20,
                                                   "{}", None, parent))
                tx.executemany("INSERT INTO image_layers VALUES (?,?,?,?,?,?)",
                               [(iid, k, c, d, 1 << 20, "t") for k, (c, d) in
                                enumerate(chains)])
                if i % 2 == 0:
                    tx.execute("INSERT INTO tags VALUES (?,?,?,?,?)",
                               (f"docker.io/library/img{i}:latest", "docker.io/library/"
                                f"img{i}", "latest", iid, now))
                if i < n_containers:
                    cid = sha256_bytes(f"ctr {i}".encode()).split(":")[1]
                    tx.execute("INSERT INTO containers(id, name, image_id, image_name, "
                               "created, config, status, size_rw) VALUES (?,?,?,?,?,?,?,?)",
                               (cid, f"c{i}", iid, f"img{i}", now, json.dumps(
                                   {"Config": {"Cmd": ["true"]}, "HostConfig": {}}),
                                "exited", 1000))


def bench_scale(tmp: str, n_images: int, per_image: int) -> list[tuple[str, ...]]:
    from berth.engine import Engine
    from berth.images.gc import Collector

    env = berth_env(tmp + "/scale")
    root, runroot = env["BERTH_ROOT"], env["BERTH_RUNROOT"]
    os.makedirs(root, exist_ok=True)
    synth_store(root, runroot, n_images, per_image, n_containers=n_images)
    rows = []
    # system df: in process and as a command
    with Engine(root, runroot) as eng:
        times, cpu = [], []
        for _ in range(10):
            t, c = time.perf_counter(), time.process_time()
            eng.df()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    rows.append((f"system df (Engine), {n_images} images + {n_images} containers",
                 f"{statistics.median(times) * 1000:.1f} ms "
                 f"(cpu {statistics.median(cpu) * 1000:.1f} ms)", "<= 200 ms"))
    cli = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([*BERTH, "system", "df"], env=env, check=True, capture_output=True)
        cli.append(time.perf_counter() - t)
    rows.append(("berth system df (whole command)", f"{statistics.median(cli) * 1000:.0f} ms",
                 "<= 200 ms"))
    # the budget check around a command that adds data, store under budget
    with open(os.path.join(root, "berth.toml"), "w") as f:
        f.write('[storage]\nmax_size = "1TB"\nmin_free = "1GB"\n')
    with Engine(root, runroot) as eng:
        with eng._adding():  # warm: config parsed once
            pass
        times, cpu = [], []
        for _ in range(200):
            t, c = time.perf_counter(), time.process_time()
            with eng._adding():
                pass
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        rows.append(("budget check added to a build/pull (under budget)",
                     f"{statistics.median(times) * 1000:.2f} ms "
                     f"(cpu {statistics.median(cpu) * 1000:.2f} ms)", "<= 2 ms"))
        # a full GC pass: half the images are dangling (untagged, no container uses
        # them ... containers here use every image, so drop them first)
        with eng.store.db.tx() as tx:
            tx.execute("DELETE FROM containers")
        n_layers = eng.store.db.one("SELECT COUNT(*) AS n FROM layers")["n"]
        t = time.perf_counter()
        plan = Collector(eng.store, eng.config).run(dry_run=True, force=True, target=0)
        planned = time.perf_counter() - t
        t = time.perf_counter()
        with eng.store.collecting():
            res = Collector(eng.store, eng.config).run(force=True, target=0)
        took = time.perf_counter() - t
        rows.append(("  of which removing the layer dirs (filesystem)",
                     f"{_rmdir_share(took, res) * 1000:.0f} ms", "rmdir of 2 dirs per layer"))
        rows.append((f"GC plan, {n_images} images / {n_layers} layers",
                     f"{planned * 1000:.0f} ms", f"{len(plan.removed)} to remove"))
        rows.append((f"GC pass, {n_images} images / {n_layers} layers",
                     f"{took * 1000:.0f} ms", f"{len(res.removed)} images removed"))
    return rows


def _rmdir_share(total: float, res: object) -> float:
    """Time a pass spends removing trees: measured again on as many fresh empty dirs."""
    import tempfile

    n = 2500
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        for i in range(n):
            os.makedirs(os.path.join(d, str(i), "diff"))
        t = time.perf_counter()
        from berth.store.fsutil import remove_tree

        for i in range(n):
            remove_tree(os.path.join(d, str(i)))
        return min(total, time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--layers-per-image", type=int, default=5)
    ap.add_argument("--skip-disk", action="store_true")
    a = ap.parse_args()
    with tempdir() as tmp:
        if not a.skip_disk:
            print(table("Disk used by an imported Debian bookworm rootfs (same tar)",
                        bench_disk(tmp), ("engine", "store", "per GB of content",
                                          "vs content")))
            print()
        print(table("Scale", bench_scale(tmp, a.images, a.layers_per_image),
                    ("measure", "berth", "goal / note")))


if __name__ == "__main__":
    main()
