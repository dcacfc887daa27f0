"""The store's user + mount namespace: made once, held by a pause process, joined by setns.

Lifecycle (one namespace pair per run root, like Podman's pause process):

1. ``<runroot>/pause.pid`` names a live process (pid and start time must match, so a
   recycled pid is never joined) -> join its ``ns/user`` then ``ns/mnt``.
2. Otherwise, under ``<runroot>/pause.lock``: fork a child that ``unshare``s a user and a
   mount namespace and waits; the parent runs the setuid ``newuidmap``/``newgidmap`` on it
   (the only privileged step, done by the distribution's helpers), records the pid file
   atomically, then lets the child exec ``catatonit -P``, which sleeps until killed.

Containers, conmon and overlay mounts all live in that mount namespace, so every command
must join it; ``setns`` is used rather than a re-exec because the CLI is single-threaded at
this point and a join costs microseconds. Killing the pause process ends the namespace
once the last process in it exits: ``berth system migrate`` (and ``system reset``) do
that, as Podman's do (:func:`stop`). A pause process that died while containers run is
replaced by one joining their conmon's namespaces (:func:`join`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from ..errors import BerthError
from . import idmaps

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
PAUSE = "pause.pid"


class UsernsError(BerthError):
    exit_code = 125


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        e = ctypes.get_errno()
        raise UsernsError(f"{what}: {os.strerror(e)}")


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: with the pid, a process's identity across pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    return data.rpartition(")")[2].split()[19]


def live_pause(runroot: str) -> int | None:
    """The pid of this run root's pause process when it is alive and ours, else None."""
    try:
        with open(os.path.join(runroot, PAUSE), encoding="ascii") as f:
            pid_s, _, start = f.read().strip().partition(" ")
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    if pid <= 0 or _start_time(pid) != start or _state(pid) in ("Z", "X", None):
        return None  # a killed pause process may linger as a zombie: its namespaces are gone
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid() and os.geteuid() != 0:
            return None
    except OSError:
        return None
    return pid


def join(runroot: str, root: str | None = None) -> None:
    """Join (creating if needed) the run root's namespaces; keeps the working directory.

    When the pause process died while containers of the store ``root`` still run, their
    conmon still holds the old namespaces: a new pause process joins those (as Podman does
    from conmon pid files), so later commands see, stop and clean up those containers.
    """
    pid = live_pause(runroot)
    if pid is None:
        from ..store.locks import flock

        with flock(os.path.join(runroot, "pause.lock"), exclusive=True):
            pid = live_pause(runroot) or _adopt(runroot, root) or _create(runroot)
    _setns(pid)


def stop(runroot: str, timeout: float = 5.0) -> bool:
    """Kill the run root's pause process (``system migrate``/``reset``); False if none ran.

    The namespaces end once the last process in them exits; the next command makes new
    ones, re-reading ``/etc/subuid`` and ``/etc/subgid``.
    """
    pid = live_pause(runroot)
    if pid is None:
        return False
    start = _start_time(pid)
    try:
        os.kill(pid, signal.SIGKILL)  # catatonit holds nothing: no graceful stop needed
    except ProcessLookupError:
        pass
    import time

    end = time.monotonic() + timeout
    while _start_time(pid) == start and _state(pid) != "Z" and time.monotonic() < end:
        time.sleep(0.01)
    try:
        os.unlink(os.path.join(runroot, PAUSE))
    except FileNotFoundError:
        pass
    return True


def _adopt(runroot: str, root: str | None) -> int | None:
    """A pause process in the namespaces a surviving conmon of ``root`` holds, if any."""
    source = _survivor(root) if root else None
    if source is None:
        return None
    try:
        return _create(runroot, source)
    except UsernsError:
        return None  # it exited meanwhile: its containers are gone with the namespace


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _survivor(root: str) -> int | None:
    """A conmon of this store still running in a user namespace of ours (the old one)."""
    top = os.path.join(root, "containers")
    try:
        names = os.listdir(top)
        ours = os.readlink("/proc/self/ns/user")
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(top, name, "conmon.pid"), encoding="ascii") as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as f:
                comm = f.read().strip()
            if comm == "conmon" and os.stat(f"/proc/{pid}").st_uid == os.geteuid() and \
                    os.readlink(f"/proc/{pid}/ns/user") != ours:
                return pid
        except (OSError, ValueError):
            continue
    return None


def _setns(pid: int) -> None:
    libc = _libc()
    cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC | os.O_PATH) if _cwd_ok() else -1
    fds = [os.open(f"/proc/{pid}/ns/{n}", os.O_RDONLY | os.O_CLOEXEC) for n in ("user", "mnt")]
    try:
        _check(libc.setns(fds[0], CLONE_NEWUSER), "joining the user namespace")
        _check(libc.setns(fds[1], CLONE_NEWNS), "joining the mount namespace")
    finally:
        for fd in fds:
            os.close(fd)
    # setns(CLONE_NEWNS) moves cwd to the namespace's root; relative paths need it back.
    if cwd >= 0:
        try:
            os.fchdir(cwd)
        finally:
            os.close(cwd)
    from . import in_userns

    in_userns.cache_clear()


def _cwd_ok() -> bool:
    try:
        os.stat(".")
        return True
    except OSError:
        return False


def _create(runroot: str, source: int | None = None) -> int:
    """Fork the pause process, map its IDs with newuidmap/newgidmap, record it; its pid.

    With ``source`` (a live process in the store's old namespaces) the pause process joins
    those instead of making new ones, and needs no mapping.
    """
    pause = _pause_binary()
    if source is not None:
        return _start_pause(runroot, pause, source, [])
    uid, gid = os.geteuid(), os.getegid()
    umaps, gmaps = idmaps.user_maps(uid, gid)
    newuidmap, newgidmap = idmaps.helper("newuidmap"), idmaps.helper("newgidmap")
    return _start_pause(runroot, pause, None, [(newuidmap, umaps), (newgidmap, gmaps)])


def _start_pause(runroot: str, pause: str, source: int | None,
                 mappers: list[tuple[str, Any]]) -> int:
    """Fork the pause child (new namespaces, or ``source``'s), run the mappers, record it."""
    up_r, up_w = os.pipe()      # child -> parent: namespaces made (or errno)
    go_r, go_w = os.pipe()      # parent -> child: maps written, exec the pause binary
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        _child(up_w, go_r, pause, (up_r, go_w), source)
    os.close(up_w)
    os.close(go_r)
    try:
        msg = os.read(up_r, 64)
        if not msg.startswith(b"ok"):
            err = int(msg[3:] or b"0") if msg.startswith(b"err") else 0
            raise UsernsError("cannot create a user namespace: "
                              f"{os.strerror(err) if err else 'child failed'} (is "
                              "kernel.unprivileged_userns_clone or user.max_user_namespaces 0?)")
        for tool, maps in mappers:
            p = subprocess.run(idmaps.argv(tool, pid, maps), capture_output=True, text=True)
            if p.returncode != 0:
                msg_ = (p.stderr.strip().splitlines() or ["failed"])[-1]
                raise UsernsError(f"{os.path.basename(tool)}: {msg_}")
        start = _start_time(pid)
        tmp = os.path.join(runroot, f"{PAUSE}.{os.getpid()}")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{pid} {start}\n")
        os.replace(tmp, os.path.join(runroot, PAUSE))
        os.write(go_w, b"go")
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(up_r)
        os.close(go_w)
    return pid


def _child(up_w: int, go_r: int, pause: str, other: tuple[int, int],
           source: int | None) -> None:  # pragma: no cover
    """In the forked child: new session, unshare (or join ``source``'s namespaces), wait
    for maps, become the pause process."""
    try:
        for fd in other:
            os.close(fd)
        os.setsid()
        libc = _libc()
        if source is None:
            rc = libc.unshare(CLONE_NEWUSER | CLONE_NEWNS)
        else:
            fds = [os.open(f"/proc/{source}/ns/{n}", os.O_RDONLY) for n in ("user", "mnt")]
            rc = libc.setns(fds[0], CLONE_NEWUSER) or libc.setns(fds[1], CLONE_NEWNS)
        if rc != 0:
            import ctypes

            os.write(up_w, b"err%d" % ctypes.get_errno())
            os._exit(1)
        os.write(up_w, b"ok")
        if os.read(go_r, 2) != b"go":
            os._exit(1)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 65536)
        os.chdir("/")
        os.execv(pause, [pause, "-P"])
    except BaseException:
        pass
    os._exit(127)


def _pause_binary() -> str:
    for p in ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit"):
        if os.access(p, os.X_OK):
            return p
    raise UsernsError("catatonit not found: install the catatonit package (rootless berth "
                      "keeps its namespace alive with catatonit -P)")

