#!/usr/bin/env python3
"""Write a minimal busybox rootfs tarball from Debian's busybox-static.

The first image on a machine with no registry: ``berth import`` turns this tar into
``busybox:latest``. Used by ``make demo`` and by the test suite (one source for both).

    make_busybox_rootfs.py OUT.tar
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"
MTIME = 1700000000  # fixed, so the same busybox gives the same layer digest


def build(out_path: str, busybox: str = BUSYBOX) -> None:
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, MTIME, link
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data else None)

        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev",
                  "var", "home"):
            add(d, tarfile.DIRTYPE, 0o755)
        add("root", tarfile.DIRTYPE, 0o700)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        with open(busybox, "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, 0o755, f.read())
        for a in applets:
            a = a.lstrip("/")
            if a != "bin/busybox" and a.count("/") <= 2:
                add(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")
    with open(out_path, "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build(sys.argv[1])
