"""``top``: the processes of a container, as ``ps -ef`` would list them on the host.

The container's pids come from its cgroup (every process the runtime put there, children
included). The default listing is built from /proc directly, in ``ps -ef``'s columns, so
it works without procps; other ``ps`` options run the host's ``ps`` and keep the rows whose
PID is in the container, which is what Docker does.
"""

from __future__ import annotations

import os
import subprocess
import time

from berth.container.cgroupfs import cgroup_dirs, procs
from berth.errors import BerthError, Conflict

TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
_TICKS = os.sysconf("SC_CLK_TCK")


def container_pids(pid: int | None, name: str) -> list[int]:
    """Pids in the container whose init is ``pid``; Conflict when it is not running."""
    if not pid:
        raise Conflict(f"Container {name} is not running")
    from berth.procs import rootless

    if rootless():  # no cgroup of its own: its pid namespace is the container (berth.rootless)
        from berth.rootless.cgroups import pidns_members

        return pidns_members(pid) or [pid]
    dirs = cgroup_dirs(pid)
    found = procs(dirs) if dirs else []
    return found or [pid]


def top(pids: list[int], ps_args: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """(titles, rows) for the processes ``pids``."""
    if ps_args and ps_args != ["-ef"]:
        return _ps(pids, ps_args)
    rows = []
    boot = _boot_time()
    now = time.time()
    for pid in pids:
        row = _row(pid, boot, now)
        if row is not None:
            rows.append(row)
    return list(TITLES), rows


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def _row(pid: int, boot: float, now: float) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None  # exited while we looked
    comm = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    ppid, tty_nr = int(fields[1]), int(fields[4])
    cpu_ticks = int(fields[11]) + int(fields[12])
    started = boot + int(fields[19]) / _TICKS
    elapsed = max(now - started, 1e-9)
    c = int(cpu_ticks / _TICKS / elapsed * 100)
    args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
    cmd = " ".join(args) if args else f"[{comm}]"
    return [_user(uid), str(pid), str(ppid), str(c), _stime(started, now), _tty(tty_nr),
            _cputime(cpu_ticks // _TICKS), cmd]


def _user(uid: int) -> str:
    import pwd

    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if len(name) <= 8 else str(uid)  # ps -ef prints long names as numbers


def _stime(started: float, now: float) -> str:
    t, n = time.localtime(started), time.localtime(now)
    if (t.tm_year, t.tm_yday) == (n.tm_year, n.tm_yday):
        return time.strftime("%H:%M", t)
    if t.tm_year == n.tm_year:
        return time.strftime("%b%d", t)
    return time.strftime("%Y", t)


def _tty(tty_nr: int) -> str:
    if tty_nr == 0:
        return "?"
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}"
    return "?"


def _cputime(secs: int) -> str:
    days, rest = divmod(secs, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _ps(pids: list[int], args: list[str]) -> tuple[list[str], list[list[str]]]:
    """Run the host's ``ps ARGS -q PIDS`` and keep the container's rows (Docker's way).

    Without ``-q`` a plain ``ps -o pid,comm`` lists only the caller's terminal session,
    which holds none of the container's processes; some options (``f``) refuse ``-q``,
    so Docker retries without it and relies on the PID filter alone.
    """
    pid_arg = ["-q", ",".join(str(p) for p in pids)] if pids else []
    try:
        try:
            out = _run_ps([*args, *pid_arg])
        except subprocess.CalledProcessError:
            if not pid_arg:
                raise
            out = _run_ps(args)
    except FileNotFoundError:
        raise BerthError("ps is not installed on this host") from None
    except subprocess.CalledProcessError as err:
        raise BerthError(f"Error running ps: exit status {err.returncode}: "
                         f"{err.stderr.strip()}") from None
    lines = out.splitlines()
    if not lines:
        return [], []
    titles = lines[0].split()
    if "PID" not in titles:
        raise BerthError("Couldn't find PID field in ps output")
    col = titles.index("PID")
    wanted = {str(p) for p in pids}
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > col and fields[col] in wanted:
            rows.append(fields)
    return titles, rows


def _run_ps(args: list[str]) -> str:
    return subprocess.run(["ps", *args], capture_output=True, text=True, check=True,
                          stdin=subprocess.DEVNULL).stdout
