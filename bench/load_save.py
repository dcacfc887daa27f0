"""``berth load``/``save`` of a 200 MB image vs ``podman load``/``save``, same archive.

Goal (issue 2): berth ≤ 1.0× podman for both. The archive is the docker-archive berth
writes for busybox + a 200 MiB layer (80 MiB random, 120 MiB text); podman loads the same
file. Each tool starts from an empty store for ``load``.

    .venv/bin/python bench/load_save.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics

from _common import BERTH, berth_env, big_rootfs_tar, podman_cmd, podman_reset, table, tempdir, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempdir() as tmp:
        env = berth_env(tmp)
        big = big_rootfs_tar(tmp)
        archive = os.path.join(tmp, "img.tar")
        timed([*BERTH, "import", big, "bench/big:1"], env)
        timed([*BERTH, "save", "-o", archive, "bench/big:1"], env)
        os.unlink(big)
        size = os.path.getsize(archive)
        pod = podman_cmd(tmp)
        res: dict[str, list[float]] = {k: [] for k in ("bl", "pl", "bs", "ps")}
        try:
            for _ in range(a.runs):
                shutil.rmtree(env["BERTH_ROOT"], ignore_errors=True)
                podman_reset(tmp)
                res["bl"].append(timed([*BERTH, "load", "-i", archive], env))
                res["pl"].append(timed([*pod, "load", "-i", archive]))
                out = os.path.join(tmp, "out.tar")
                res["bs"].append(timed([*BERTH, "save", "-o", out, "bench/big:1"], env))
                os.unlink(out)
                res["ps"].append(timed([*pod, "save", "-o", out, "bench/big:1"]))
                os.unlink(out)
        finally:
            podman_reset(tmp)
        m = {k: statistics.median(v) for k, v in res.items()}
        rows = [("load", f"{m['bl']:.2f} s", f"{m['pl']:.2f} s", f"{m['bl'] / m['pl']:.2f}x"),
                ("save", f"{m['bs']:.2f} s", f"{m['ps']:.2f} s", f"{m['bs'] / m['ps']:.2f}x")]
        print(table(f"load/save of a {size / 1e6:.0f} MB docker-archive (median of {a.runs})",
                    rows, ("command", "berth", "podman", "berth/podman")))


if __name__ == "__main__":
    main()
