"""``berth images`` with 1,000 tagged images vs ``podman images`` on the same data.

Goal (issue 2): berth's time ≤ 0.5× podman's. Both stores get N distinct images (same
busybox layer, a different label each, so every image has its own config and ID).

    .venv/bin/python bench/images_list.py [--count 1000] [--runs 10]
"""

from __future__ import annotations

import argparse
import subprocess

from _common import BERTH, berth_env, busybox_tar, median_of, podman_cmd, podman_reset, table, tempdir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--peer-runs", type=int, default=3,
                    help="podman images is slow at this size; fewer runs keep the bench short")
    a = ap.parse_args()
    with tempdir() as tmp:
        tar = busybox_tar(tmp)
        env = berth_env(tmp)
        from berth.engine import Engine

        with Engine(env["BERTH_ROOT"], env["BERTH_RUNROOT"]) as eng:
            for i in range(a.count):
                with open(tar, "rb") as f:
                    eng.import_image(f, f"bench/img{i}:v1", changes=[f"LABEL i={i}"])
        pod = podman_cmd(tmp)

        def pimport(i: int) -> None:
            for _attempt in range(3):  # podman's store lock sometimes refuses a quick re-entry
                r = subprocess.run([*pod, "import", "-q", "--change", f"LABEL i={i}", tar,
                                    f"bench/img{i}:v1"], capture_output=True)
                if r.returncode == 0:
                    return
            r.check_returncode()

        try:
            for i in range(a.count):  # sequential: concurrent podman imports collide
                pimport(i)
            rows = []
            for label, bcmd, pcmd in [
                ("images", [*BERTH, "images"], [*pod, "images"]),
                ("images -q", [*BERTH, "images", "-q"], [*pod, "images", "-q"]),
                ("images --format", [*BERTH, "images", "--format", "{{.Repository}}:{{.Tag}}"],
                 [*pod, "images", "--format", "{{.Repository}}:{{.Tag}}"]),
            ]:
                b = median_of(a.runs, bcmd, env)
                p = median_of(a.peer_runs, pcmd)
                rows.append((label, f"{b * 1000:.0f} ms", f"{p * 1000:.0f} ms", f"{b / p:.2f}x"))
            print(table(f"images with {a.count} images (median of {a.runs} / {a.peer_runs} runs)", rows,
                        ("command", "berth", "podman", "berth/podman")))
        finally:
            podman_reset(tmp)


if __name__ == "__main__":
    main()
