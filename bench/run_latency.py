"""``berth run --rm busybox true`` latency vs podman and the raw OCI runtime, one table.

    .venv/bin/python bench/run_latency.py [-n 20] [--crun-fix]

Every peer runs the same busybox-static rootfs: imported into a berth store, into a
throw-away podman store (``podman import``), and as plain bundles for ``runc``/``crun``.
Two raw-runtime floors are measured: the runtime's own default spec, and the very
``config.json`` berth writes (Docker's capabilities, seccomp profile, cgroup limits), which
is what berth's own overhead should be read against. Medians in milliseconds.

``--crun-fix`` applies the documented host fix for crun 1.8 on hybrid cgroup hosts (a v1
hierarchy for hugetlb) for the duration of the run, measures berth and crun with it, and
unmounts it again. The kernel may keep hugetlb on that v1 hierarchy until the next boot
(crun then keeps working); without the fix, berth falls back to runc here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import busybox_tar  # noqa: E402

PY = sys.executable
HUGETLB = "/sys/fs/cgroup/hugetlb"


def timed(argv: list[str], n: int, env: dict | None = None) -> float | None:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        samples.append(time.perf_counter() - t)
        if p.returncode != 0:
            print(f"  {argv[0]} failed: {p.stderr.decode()[-300:].strip()}", file=sys.stderr)
            return None
    return statistics.median(samples) * 1000


def berth_spec_bundle(base: Path, env: dict[str, str]) -> Path:
    """A bundle whose config.json is exactly what berth generates for this run."""
    berth = [PY, "-m", "berth"]
    cid = subprocess.run([*berth, "create", "--network", "none", "busybox", "true"],
                         check=True, env=env, capture_output=True, text=True).stdout.strip()
    merged = subprocess.run([PY, "-c", "from berth.engine import Engine; import sys; "
                             "print(Engine().container_mount(sys.argv[1]))", cid],
                            check=True, env=env, capture_output=True, text=True).stdout.strip()
    spec = json.loads((Path(merged).parent / "config.json").read_text())
    bundle = base / "berth-spec"
    bundle.mkdir()
    spec["root"]["path"] = merged
    spec["linux"]["cgroupsPath"] = "berth-bench/raw"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--crun-fix", action="store_true")
    a = ap.parse_args()
    n = a.n
    base = Path(tempfile.mkdtemp(prefix="bench-run-", dir="/var/lib"))
    fixed = False
    try:
        tar = busybox_tar(str(base))
        env = dict(os.environ, BERTH_ROOT=str(base / "root"), BERTH_RUNROOT=str(base / "run"),
                   BERTH_IP_FORWARD="0")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed berth has its .pyc files
        subprocess.run([PY, "-m", "berth", "import", "-c", 'CMD ["sh"]', tar, "busybox"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        rows = []
        run = [PY, "-m", "berth", "run", "--rm"]
        rows.append(("berth run --rm --network none busybox true (runc)",
                     timed([*run, "--network", "none", "busybox", "true"], n, env)))
        rows.append(("berth run --rm busybox true (default bridge, runc)",
                     timed([*run, "busybox", "true"], n, env)))
        spec_bundle = berth_spec_bundle(base, env)
        rows.append(("runc run, berth's config.json (no monitor)",
                     timed(["runc", "--root", str(base / "runc-state"), "run", "-b",
                            str(spec_bundle), "raw"], n)))
        bundle = base / "bundle"
        (bundle / "rootfs").mkdir(parents=True)
        subprocess.run(["tar", "-xf", tar, "-C", str(bundle / "rootfs")], check=True)
        subprocess.run(["runc", "spec", "-b", str(bundle)], check=True)
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["terminal"], spec["process"]["args"] = False, ["true"]
        (bundle / "config.json").write_text(json.dumps(spec))
        rows.append(("runc run, runc's default spec",
                     timed(["runc", "--root", str(base / "runc-state"), "run", "-b",
                            str(bundle), "bare"], n)))
        if shutil.which("podman"):
            pod = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs",
                   "--events-backend=file", "--root",
                   str(base / "proot"), "--runroot", str(base / "prun"), "--tmpdir",
                   str(base / "ptmp")]
            subprocess.run([*pod, "import", tar, "bb"], capture_output=True)
            rows.append(("podman --runtime runc run --rm --network none bb true",
                         timed([*pod, "run", "--rm", "--network", "none", "--ulimit",
                                "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "bb",
                                "true"], n)))
        if a.crun_fix and shutil.which("crun") and not os.path.ismount(HUGETLB):
            os.makedirs(HUGETLB, exist_ok=True)
            subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", HUGETLB],
                           check=True)
            fixed = True
            env2 = dict(env, BERTH_RUNROOT=str(base / "run-crun"))
            rows.append(("berth run --rm --network none --runtime crun (host fix)",
                         timed([*run, "--runtime", "crun", "--network", "none", "busybox",
                                "true"], n, env2)))
            rows.append(("crun run, berth's config.json (host fix)",
                         timed(["crun", "--root", str(base / "crun-state"), "run", "-b",
                                str(spec_bundle), "rawc"], n)))
        print(f"{'command':<58} {'median ms':>10}   (n={n})")
        for name, ms in rows:
            print(f"{name:<58} {('%.0f' % ms) if ms is not None else 'failed':>10}")
    finally:
        subprocess.run([PY, "-c", "from berth.engine import Engine; "
                        "e=Engine(); e.remove_all_containers(); "
                        "getattr(e, 'remove_all_networks', lambda: None)()"],
                       env=dict(os.environ, BERTH_ROOT=str(base / "root"),
                                BERTH_RUNROOT=str(base / "run")),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if shutil.which("podman"):
            subprocess.run(["podman", "--root", str(base / "proot"), "--runroot",
                            str(base / "prun"), "system", "reset", "-f"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # the runtimes' cgroups first (in the hugetlb hierarchy too: a v1 hierarchy with
        # children outlives its unmount), then the host fix itself
        for ctrl in os.listdir("/sys/fs/cgroup"):
            for d in ("berth-bench", "berth"):
                p = os.path.join("/sys/fs/cgroup", ctrl, d)
                if os.path.isdir(p) and (d == "berth-bench" or ctrl == "hugetlb"):
                    subprocess.run(["find", p, "-depth", "-type", "d", "-exec", "rmdir",
                                    "{}", ";"], stderr=subprocess.DEVNULL)
        if fixed:
            subprocess.run(["umount", HUGETLB], check=False)
            os.rmdir(HUGETLB)
        subprocess.run(["umount", "-R", "-l", str(base / "proot")], stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
