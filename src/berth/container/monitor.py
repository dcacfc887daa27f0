"""Run containers under conmon, Podman's per-container monitor, so they outlive the CLI.

conmon (``/usr/bin/conmon``) forks itself into the background, runs ``<runtime> create``,
then owns the container's stdio (pipes, or the pty it receives over a console socket),
writes the log in ``k8s-file`` format (see :mod:`berth.container.logs`), reaps the
container, and records its exit code in ``<exit_dir>/<cid>`` and ``<persist_dir>/exit``
(plus ``<persist_dir>/oom`` when the kernel OOM-killed something in its cgroup). It costs
about 2 MiB of RSS per container and needs no Python process to stay behind.

Protocol facts this module relies on (conmon 2.1):
* ``_OCI_SYNCPIPE=<fd>`` gets one JSON line: ``{"data": <container pid>}`` once the runtime's
  ``create`` succeeded, or ``{"data": -1, "message": "<runtime stderr>"}``.
* ``<bundle>/attach`` is a SOCK_SEQPACKET socket; each packet read is one byte of stream id
  (2 = stdout, 3 = stderr) followed by data; bytes written go to the container's stdin and
  a shutdown(SHUT_WR) closes its stdin (unless ``--leave-stdin-open``).
* ``<bundle>/ctl`` is a fifo taking ``"1 <rows> <cols>\\n"`` (pty resize) and
  ``"2 0 0\\n"`` (reopen log file).
Output is only delivered to clients attached at the time, so a foreground run connects to
the attach socket *before* ``runtime start``.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..errors import RuntimeFailure
from ..procs import pid_alive
from . import cgroups
from .detachkeys import DEFAULT as DEFAULT_DETACH_KEYS
from .detachkeys import EscapeFilter
from .runtime import OCIRuntime, classify

CONMON = "/usr/bin/conmon"
STDOUT, STDERR = 2, 3
_SEND_MAX = 8192          # conmon reads client packets in chunks; never exceed them
DETACH_KEYS = DEFAULT_DETACH_KEYS


@dataclass
class MonitorPaths:
    """Where conmon keeps things for one container (or one exec session).

    ``socket_dir`` must be short: conmon binds ``<socket_dir>/<cid[:12]>/attach`` and unix
    socket paths are limited to 107 bytes (the socket itself lands in ``bundle``).
    """

    bundle: str
    log_path: str
    exit_dir: str
    persist_dir: str
    socket_dir: str


@dataclass
class MonitorHandle:
    """What the caller stores to find the container again (all plain JSON values)."""

    cid: str
    bundle: str
    log_path: str
    exit_dir: str
    persist_dir: str
    conmon_pid: int
    container_pid: int
    terminal: bool = False
    stdin: bool = False
    cgroups_path: str | None = None

    @property
    def exit_file(self) -> str:
        return os.path.join(self.exit_dir, self.cid)

    @property
    def attach_path(self) -> str:
        return os.path.join(self.bundle, "attach")

    @property
    def ctl_path(self) -> str:
        return os.path.join(self.bundle, "ctl")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MonitorHandle:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _conmon_argv(runtime: OCIRuntime, cid: str, paths: MonitorPaths, *, terminal: bool,
                 stdin: bool, stdin_once: bool, log_size_max: int | None,
                 exec_spec: str | None = None, exec_attach: bool = False,
                 conmon: str = CONMON, log_driver: str = "k8s-file") -> list[str]:
    argv = [conmon, "--api-version", "1", "-c", cid, "-u", cid[:12] if not exec_spec
            else os.path.basename(paths.bundle)[:12], "-n", cid,
            "-r", runtime.path, "-b", paths.bundle,
            "-p", os.path.join(paths.bundle, "pidfile"),
            "-P", os.path.join(paths.bundle, "conmon.pid"),
            "-l", f"k8s-file:{paths.log_path}" if log_driver != "none" else "none:",
            "--exit-dir", paths.exit_dir,
            "--persist-dir", paths.persist_dir, "--socket-dir-path", paths.socket_dir,
            "--log-level", "error"]
    for a in runtime.global_args():
        argv += ["--runtime-arg", a]
    if terminal:
        argv.append("-t")
    if stdin:
        argv.append("-i")
        if not stdin_once:
            argv.append("--leave-stdin-open")
    if log_size_max:
        argv += ["--log-size-max", str(log_size_max)]
    if exec_spec:
        argv += ["-e", "--exec-process-spec", exec_spec]
        if exec_attach:
            argv.append("--exec-attach")
    return argv


def _read_json_line(fd: int, timeout: float) -> dict | None:
    """One JSON line from a sync pipe, or None at EOF (conmon died)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeFailure("timed out waiting for conmon")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    line = buf.split(b"\n", 1)[0].strip()
    return json.loads(line) if line else None


def _spawn(argv: list[str], pipes: dict[str, int], cwd: str) -> subprocess.Popen:
    """Start conmon in ``cwd`` (its bundle): it writes some markers, such as ``oom`` for an
    exec session, into its working directory, which must never be the user's."""
    env = dict(os.environ)
    for name, fd in pipes.items():
        env[name] = str(fd)
    return subprocess.Popen(argv, env=env, pass_fds=tuple(pipes.values()),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, close_fds=True, cwd=cwd)


def _fail(msg: dict | None, stderr: bytes) -> Exception:
    if msg and msg.get("message"):
        return classify(str(msg["message"]))
    text = stderr.decode(errors="replace").strip()
    return RuntimeFailure(f"conmon failed: {text or 'no output'}")


def _prepare(paths: MonitorPaths) -> None:
    for d in (paths.bundle, paths.exit_dir, paths.persist_dir, paths.socket_dir,
              os.path.dirname(paths.log_path)):
        os.makedirs(d, mode=0o700, exist_ok=True)
    for stale in ("ctl", "winsz", "attach", "pidfile", "conmon.pid"):
        try:
            os.unlink(os.path.join(paths.bundle, stale))
        except FileNotFoundError:
            pass
    for stale in ("exit", "oom"):
        try:
            os.unlink(os.path.join(paths.persist_dir, stale))
        except FileNotFoundError:
            pass


def create_container(runtime: OCIRuntime, cid: str, paths: MonitorPaths, *,
                     terminal: bool = False, stdin: bool = False, stdin_once: bool = True,
                     log_size_max: int | None = None, cgroups_path: str | None = None,
                     conmon: str = CONMON, timeout: float = 60,
                     log_driver: str = "k8s-file") -> MonitorHandle:
    """Launch conmon, which runs ``<runtime> create``; returns once the container exists.

    The container is in the runtime's ``created`` state: call :func:`start` (after
    :func:`connect` if you want its output live).
    """
    _prepare(paths)
    try:
        os.unlink(os.path.join(paths.exit_dir, cid))
    except FileNotFoundError:
        pass
    r, w = os.pipe()
    try:
        p = _spawn(_conmon_argv(runtime, cid, paths, terminal=terminal, stdin=stdin,
                                stdin_once=stdin_once, log_size_max=log_size_max,
                                conmon=conmon, log_driver=log_driver),
                   {"_OCI_SYNCPIPE": w}, paths.bundle)
        os.close(w)
        w = -1
        _, err = p.communicate(timeout=timeout)
        msg = _read_json_line(r, timeout)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    pid = int(msg.get("data", -1)) if msg else -1
    if pid <= 0:
        raise _fail(msg, err)
    with open(os.path.join(paths.bundle, "conmon.pid"), encoding="ascii") as f:
        conmon_pid = int(f.read().strip())
    return MonitorHandle(cid=cid, bundle=paths.bundle, log_path=paths.log_path,
                         exit_dir=paths.exit_dir, persist_dir=paths.persist_dir,
                         conmon_pid=conmon_pid, container_pid=pid, terminal=terminal,
                         stdin=stdin, cgroups_path=cgroups_path)


def start(runtime: OCIRuntime, handle: MonitorHandle) -> None:
    """``<runtime> start``: the created container's process begins to run."""
    runtime.start(handle.cid)


def start_container(runtime: OCIRuntime, cid: str, paths: MonitorPaths, **kw) -> MonitorHandle:
    """create + start, for detached runs (``-d``): nothing of ours stays behind."""
    h = create_container(runtime, cid, paths, **kw)
    start(runtime, h)
    return h


# attaching ------------------------------------------------------------------------------
def connect(handle_or_bundle: MonitorHandle | str) -> socket.socket:
    """Connect to conmon's attach socket (via /proc/self/fd so long paths work)."""
    bundle = handle_or_bundle.bundle if isinstance(handle_or_bundle, MonitorHandle) \
        else handle_or_bundle
    dfd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        s.connect(f"/proc/self/fd/{dfd}/attach")
    except OSError as e:
        s.close()
        raise RuntimeFailure(f"cannot attach to container: {e.strerror}") from e
    finally:
        os.close(dfd)
    return s


def resize(handle_or_bundle: MonitorHandle | str, rows: int, cols: int) -> None:
    """Send a pty size through conmon's ctl fifo (no-op if conmon is gone)."""
    bundle = handle_or_bundle.bundle if isinstance(handle_or_bundle, MonitorHandle) \
        else handle_or_bundle
    try:
        fd = os.open(os.path.join(bundle, "ctl"), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, f"1 {rows} {cols}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def pump(sock: socket.socket, *, stdin_fd: int | None = None, stdout_fd: int = 1,
         stderr_fd: int = 2, tty: bool = False, bundle: str | None = None,
         detach_keys: bytes | None = DETACH_KEYS) -> bool:
    """Copy between the caller's fds and the attach socket until the container's output ends.

    With ``tty`` the caller's terminal (``stdin_fd``) is put in raw mode, its size is sent
    now and on every SIGWINCH, and ``detach_keys`` typed in sequence detach. Returns True
    when the user detached, False when the container's output ended (it exited).
    A non-tty stdin reaching EOF closes the container's stdin; a tty's EOF just stops input
    (closing a pty would also cut the output).
    """
    import termios
    saved = None
    old_winch = None
    is_tty_in = stdin_fd is not None and os.isatty(stdin_fd)
    if tty and stdin_fd is not None and is_tty_in:
        import tty as _tty
        saved = termios.tcgetattr(stdin_fd)
        _tty.setraw(stdin_fd, termios.TCSANOW)  # as Docker: keep what was typed ahead

    def send_size(*_a: object) -> None:
        if bundle and stdin_fd is not None and is_tty_in:
            try:
                sz = os.get_terminal_size(stdin_fd)
                resize(bundle, sz.lines, sz.columns)
            except OSError:
                pass

    if tty and bundle and is_tty_in:  # a caller's terminal (never from a worker thread)
        send_size()
        old_winch = signal.signal(signal.SIGWINCH, send_size)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    reading_stdin = stdin_fd is not None
    if stdin_fd is not None:
        poller.register(stdin_fd, select.POLLIN)
    escape = EscapeFilter(detach_keys) if tty and detach_keys else None
    out = {STDOUT: stdout_fd, STDERR: stderr_fd}
    try:
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ev in events:
                if fd == sock.fileno():
                    data = sock.recv(65536)
                    if not data:
                        return False
                    _write_all(out.get(data[0], stdout_fd), data[1:])
                elif reading_stdin and stdin_fd is not None:
                    try:
                        data = os.read(stdin_fd, _SEND_MAX)
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if escape is not None and data:
                        data, detached = escape.feed(data)
                        if data:
                            sock.sendall(data)
                        if detached:
                            return True
                        continue
                    if not data:
                        poller.unregister(stdin_fd)
                        reading_stdin = False
                        if not tty:
                            try:
                                sock.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
                        continue
                    sock.sendall(data)
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None and stdin_fd is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def attach(handle: MonitorHandle, *, stdin_fd: int | None = None, stdout_fd: int = 1,
           stderr_fd: int = 2, detach_keys: bytes | None = DETACH_KEYS) -> bool:
    """``berth attach`` to a running container: True if the user detached."""
    s = connect(handle)
    try:
        return pump(s, stdin_fd=stdin_fd if handle.stdin else None, stdout_fd=stdout_fd,
                    stderr_fd=stderr_fd, tty=handle.terminal, bundle=handle.bundle,
                    detach_keys=detach_keys)
    finally:
        s.close()


def run_attached(runtime: OCIRuntime, cid: str, paths: MonitorPaths, *,
                 stdin_fd: int | None = None, stdout_fd: int = 1, stderr_fd: int = 2,
                 terminal: bool = False, **kw) -> tuple[MonitorHandle, bool]:
    """Foreground ``run``: create, connect, start, stream until exit (or detach).

    Returns the handle and whether the user detached; then call :func:`wait_exit`.
    """
    h = create_container(runtime, cid, paths, terminal=terminal,
                         stdin=stdin_fd is not None, **kw)
    s = connect(h)
    try:
        start(runtime, h)
        detached = pump(s, stdin_fd=stdin_fd, stdout_fd=stdout_fd, stderr_fd=stderr_fd,
                        tty=terminal, bundle=h.bundle)
    finally:
        s.close()
    return h, detached


# exit -----------------------------------------------------------------------------------
def read_exit(handle: MonitorHandle) -> tuple[int, float] | None:
    """conmon's exit file for this run: (code, mtime), or None while it runs."""
    for path in (handle.exit_file, os.path.join(handle.persist_dir, "exit")):
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
            if text:
                return int(text), os.stat(path).st_mtime
        except (OSError, ValueError):
            continue
    return None


def oom_killed(handle: MonitorHandle) -> bool:
    """conmon's ``oom`` marker, else the cgroup's own OOM-kill counter (before delete)."""
    if os.path.exists(os.path.join(handle.persist_dir, "oom")):
        return True
    if not handle.cgroups_path:
        return False
    return cgroups.oom_events(handle.cgroups_path) > 0


def wait_exit(handle: MonitorHandle, timeout: float | None = None
              ) -> tuple[int, float, bool] | None:
    """Block until the container exited: ``(exit_code, finished_at_epoch, oom_killed)``.

    Waits on a pidfd of the container's process, then for conmon's exit file, which conmon
    writes right after reaping it. (Waiting on conmon itself would also wait for its
    ``--exit-command``, a second berth process, which a foreground ``run`` need not pay
    for.) If conmon was killed before recording an exit, the exit code is reported as 255
    once the container process is gone too. Returns None on timeout.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        got = read_exit(handle)
        if got:
            return got[0], got[1], oom_killed(handle)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if pid_alive(handle.container_pid):
            _wait_pid(handle.container_pid, left)
        elif pid_alive(handle.conmon_pid):
            time.sleep(0.002 if left is None else min(0.002, left))  # exit file is due
        else:
            got = read_exit(handle)
            if got:
                return got[0], got[1], oom_killed(handle)
            return 255, time.time(), oom_killed(handle)
        if deadline is not None and time.monotonic() >= deadline:
            got = read_exit(handle)
            return (got[0], got[1], oom_killed(handle)) if got else None


def _wait_pid(pid: int, timeout: float | None) -> None:
    """Sleep until ``pid`` exits (pidfd: no polling) or ``timeout`` passes."""
    try:
        pfd = os.pidfd_open(pid)
    except OSError:
        time.sleep(0.05 if timeout is None else min(0.05, timeout))
        return
    try:
        select.select([pfd], [], [], timeout)
    finally:
        os.close(pfd)


def conmon_alive(handle: MonitorHandle) -> bool:
    """This container's conmon still runs: its pid, with our container ID in its argv
    (after a reboot the same pid may be anybody's)."""
    if not pid_alive(handle.conmon_pid):
        return False
    try:
        with open(f"/proc/{handle.conmon_pid}/cmdline", "rb") as f:
            return handle.cid.encode() in f.read().split(b"\0")
    except OSError:
        return False


def kill_monitor(handle: MonitorHandle) -> None:
    """SIGKILL conmon (cleanup after a failed start; the runtime ``delete`` follows)."""
    if conmon_alive(handle):
        try:
            os.kill(handle.conmon_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# exec -----------------------------------------------------------------------------------
def exec_process(runtime: OCIRuntime, cid: str, process: dict, paths: MonitorPaths, *,
                 terminal: bool = False, stdin_fd: int | None = None, stdout_fd: int = 1,
                 stderr_fd: int = 2, detach: bool = False, timeout: float = 60,
                 detach_keys: bytes | None = DETACH_KEYS,
                 on_pid: Callable[[int], None] | None = None) -> int | None:
    """``exec`` a process (OCI ``process`` object) in a running container via conmon.

    ``paths.bundle`` is a per-exec-session directory (conmon puts its attach socket and
    fifos there). Returns the exit code, or None when detached or the user detached.
    ``on_pid`` hears the process's host pid as soon as it runs (the API's exec inspect
    keeps it after the exit, as Docker does, when the session directory is gone).
    """
    _prepare(paths)
    spec_path = os.path.join(paths.bundle, "process.json")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(process, f)
    try:
        os.unlink(os.path.join(paths.exit_dir, cid))
    except FileNotFoundError:
        pass
    sync_r, sync_w = os.pipe()
    start_r, start_w = os.pipe()
    att_r, att_w = os.pipe()
    fds = {"_OCI_SYNCPIPE": sync_w, "_OCI_STARTPIPE": start_r}
    attach_mode = not detach
    if attach_mode:
        fds["_OCI_ATTACHPIPE"] = att_w
    argv = _conmon_argv(runtime, cid, paths, terminal=terminal, stdin=stdin_fd is not None,
                        stdin_once=True, log_size_max=None, exec_spec=spec_path,
                        exec_attach=attach_mode)
    sock = None
    try:
        p = _spawn(argv, fds, paths.bundle)
        for fd in (sync_w, start_r, att_w):
            os.close(fd)
        sync_w = start_r = att_w = -1
        os.write(start_w, b"0")          # let conmon fork
        _, err = p.communicate(timeout=timeout)
        if attach_mode:
            ready = _read_json_line(att_r, timeout)
            if ready is None:
                raise _fail(None, err)
            sock = connect(paths.bundle)
            os.write(start_w, b"0")      # conmon may now run `runtime exec`
        msg = _read_json_line(sync_r, timeout)
        pid = int(msg.get("data", -1)) if msg else -1
        if pid <= 0:
            raise _fail(msg, err)
        if on_pid is not None:
            on_pid(pid)
        if detach:
            return None
        assert sock is not None  # attach_mode (not detach): connected above
        detached = pump(sock, stdin_fd=stdin_fd, stdout_fd=stdout_fd, stderr_fd=stderr_fd,
                        tty=terminal, bundle=paths.bundle, detach_keys=detach_keys)
        if detached:
            return None
        last = _read_json_line(sync_r, timeout)
        if last and "data" in last:
            return int(last["data"])
        try:
            with open(os.path.join(paths.exit_dir, cid), encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 255
    finally:
        if sock is not None:
            sock.close()
        for fd in (sync_r, sync_w, start_r, start_w, att_r, att_w):
            if fd >= 0:
                os.close(fd)
