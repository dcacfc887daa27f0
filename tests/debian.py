"""A real Debian bookworm rootfs for the tests whose behaviour depends on a distribution.

busybox is enough for most tests, but apt in a RUN step, users and groups from
``/etc/passwd``/``/etc/group``, bash, PATH and services that fork only show their real
behaviour on a real distribution. ``mmdebstrap --variant=apt`` makes one in ~20 s (164 MB);
it is cached per machine outside the repository so that only the first run pays, and built
under a lock so parallel pytest workers (and benches) build it once.

Delete ``~/.cache/berth-tests/debian-bookworm.tar`` (or set ``BERTH_TEST_CACHE``) to refresh.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

SUITE = "bookworm"
# Only Debian's own mirror (a package registry); the image's apt sources point at it too,
# so `RUN apt-get update` in a build reaches the same place.
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
)


def cache_dir() -> Path:
    """Per-machine cache outside the repo (CI clones the repo fresh; the cache survives)."""
    base = os.environ.get("BERTH_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "berth-tests")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def debian_rootfs_tar() -> Path:
    """Path of the cached bookworm rootfs tar, building it with mmdebstrap if missing.

    Raises RuntimeError with mmdebstrap's own message when it cannot be built (no
    mmdebstrap, mirror unreachable), so the failing test says why.
    """
    out = cache_dir() / f"debian-{SUITE}.tar"
    if out.exists():
        return out
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed (make test installs it)")
    with open(cache_dir() / f"debian-{SUITE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it right now
        if out.exists():
            return out
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.tar")
        try:
            proc = subprocess.run(
                ["mmdebstrap", "--variant=apt", "--format=tar", "--quiet", SUITE, str(tmp), *MIRRORS],
                capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"mmdebstrap failed: {proc.stderr.strip()[-2000:]}")
            os.replace(tmp, out)  # atomic: a killed build never leaves a half tar behind
        finally:
            tmp.unlink(missing_ok=True)
    return out


# What Docker Hub's debian:bookworm config carries (the rootfs from mmdebstrap has no config).
IMAGE_CHANGES = [
    'CMD ["bash"]',
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
]
