"""Run one busybox container through the Engine and capture its output (tests' helper)."""

from __future__ import annotations

import os
import threading

from berth.container.create_options import CreateOptions


def _drain(fd: int, into: list[bytes]) -> None:
    while chunk := os.read(fd, 1 << 16):
        into.append(chunk)
    os.close(fd)


def run(engine, *cmd: str, image: str = "busybox", **kw):  # type: ignore[no-untyped-def]
    """``(record, exit code, stdout, stderr)`` of ``engine.container_run``.

    The pipes are drained by threads while the container runs, so a chatty command
    cannot block on a full pipe.
    """
    out: list[bytes] = []
    err: list[bytes] = []
    r, w = os.pipe()
    e_r, e_w = os.pipe()
    readers = [threading.Thread(target=_drain, args=(r, out)),
               threading.Thread(target=_drain, args=(e_r, err))]
    for t in readers:
        t.start()
    try:
        rec, code = engine.container_run(CreateOptions(image=image, command=list(cmd), **kw),
                                         stdout_fd=w, stderr_fd=e_w)
    finally:
        os.close(w)
        os.close(e_w)
        for t in readers:
            t.join()
    return rec, code, b"".join(out).decode(), b"".join(err).decode()
