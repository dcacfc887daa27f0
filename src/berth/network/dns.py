"""DNS for user networks: aardvark-dns (Podman's server) fed from berth's database.

Why aardvark-dns: it is a proven, packaged (Debian ``aardvark-dns``) authoritative server
for container names that forwards every other name to the host's resolvers, and it reads
plain files, so berth needs no resolver of its own and no daemon of its own either.

The contract with it (aardvark-dns 1.4, ``src/config/mod.rs``):
* one config directory per berth store (``<runroot>/aardvark-dns``); one file per network,
  named after it (berth uses the network ID); ``aardvark.pid`` in it is the server's;
* a file's first line: the addresses to listen on (the bridge gateway); each further line
  ``<container id> <ipv4> <ipv6> <name,alias,...> [dns servers]`` -- a container's
  queries are answered from the networks it is on; its ``--dns`` servers, if any, are
  where its other queries go;
* ``aardvark-dns --config DIR -p 53 run`` forks, and its parent returns once the child
  serves; SIGHUP makes it re-read every file; a file that fails to parse makes it exit,
  so files are written to a sibling directory and renamed in (never half-written).

Lifecycle, all under the host-wide network lock (the caller holds it): :func:`sync` is
called whenever a container on a user network starts, stops, connects or disconnects.
It writes the files of the networks that have running containers, removes the others,
and then starts the server (first running container), SIGHUPs it (changes), or stops it
and waits for it to go (no running container left): no process outlives its last
container. A server that died is simply started again at the next change.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import BerthError

PID_FILE = "aardvark.pid"
_CANDIDATES = ("/usr/libexec/podman/aardvark-dns", "/usr/lib/podman/aardvark-dns")
INTERNAL_SUFFIX = "%int"  # newer aardvark-dns: no forwarding for internal networks


@dataclass(frozen=True)
class DnsEntry:
    """One running container's seat on a network, as aardvark-dns wants it."""

    container_id: str
    ip: str
    names: Sequence[str]
    dns_servers: Sequence[str] = ()


@dataclass(frozen=True)
class DnsNetwork:
    network_id: str
    gateway: str
    internal: bool
    entries: Sequence[DnsEntry]


def server_binary() -> str | None:
    """aardvark-dns from ``BERTH_AARDVARK_DNS``, PATH, or Podman's helper directories."""
    env = os.environ.get("BERTH_AARDVARK_DNS")
    if env is not None:
        return env or None  # empty: DNS off (hosts files only)
    found = shutil.which("aardvark-dns")
    if found:
        return found
    return next((p for p in _CANDIDATES if os.access(p, os.X_OK)), None)


def config_dir(runroot: str) -> str:
    return os.path.join(runroot, "aardvark-dns")


def render(net: DnsNetwork) -> str:
    """One network's config file (module doc); names are lower-cased by the server."""
    lines = [net.gateway]
    for e in net.entries:
        names = ",".join(dict.fromkeys(n for n in e.names if n and " " not in n
                                       and "," not in n))
        servers = ",".join(e.dns_servers)
        lines.append(f"{e.container_id} {e.ip}  {names}" + (f" {servers}" if servers else ""))
    return "\n".join(lines) + "\n"


def _file_name(net: DnsNetwork) -> str:
    return net.network_id + (INTERNAL_SUFFIX if net.internal else "")


def sync(runroot: str, networks: Sequence[DnsNetwork]) -> None:
    """Make the config dir say ``networks`` (those with entries), then start/reload/stop."""
    binary = server_binary()
    cdir = config_dir(runroot)
    want = {_file_name(n): render(n) for n in networks if n.entries}
    if binary is None:
        return
    if not want and not os.path.isdir(cdir):
        return
    changed = _write_files(cdir, want)
    pid = running_pid(cdir)
    if not want:
        if pid is not None:
            _stop(pid)
        shutil.rmtree(cdir, ignore_errors=True)
        shutil.rmtree(cdir + ".tmp", ignore_errors=True)
        return
    gateways = [n.gateway for n in networks if n.entries]
    if pid is None:
        _start(binary, cdir)
        _wait_listening(gateways, {})
    elif changed:
        before = _sockets(gateways)
        os.kill(pid, signal.SIGHUP)
        _wait_listening(gateways, before if _rebinds_on_reload(binary) else {})


def _write_files(cdir: str, want: Mapping[str, str]) -> bool:
    """Atomically replace changed files, remove stale ones; True if anything changed."""
    tmpdir = cdir + ".tmp"  # not inside cdir: the server would parse a half-written file
    os.makedirs(cdir, exist_ok=True)
    os.makedirs(tmpdir, exist_ok=True)
    changed = False
    for name in os.listdir(cdir):
        if name != PID_FILE and name not in want:
            os.unlink(os.path.join(cdir, name))
            changed = True
    for name, text in want.items():
        path = os.path.join(cdir, name)
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        except FileNotFoundError:
            pass
        tmp = os.path.join(tmpdir, name)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        changed = True
    return changed


def running_pid(cdir: str) -> int | None:
    """The live server of this config dir (checked against its command line), or None."""
    try:
        with open(os.path.join(cdir, PID_FILE)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return None
    if state == b"Z" or not cmd or not cmd[0].endswith(b"aardvark-dns") \
            or cdir.encode() not in cmd:
        return None
    return pid


def _start(binary: str, cdir: str) -> None:
    """Run the server; its parent returns once the forked child serves (module doc)."""
    log = os.path.join(os.path.dirname(cdir), "aardvark-dns.log")
    with open(log, "ab") as out:
        proc = subprocess.run([binary, "--config", cdir, "-p", "53", "run"],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                              start_new_session=True, timeout=30)
    if proc.returncode != 0 or running_pid(cdir) is None:
        raise BerthError(f"aardvark-dns failed to start (see {log})")


def _stop(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM and wait until the process is gone (it is not our child: poll /proc)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return  # exited; its parent (init or a subreaper) reaps it
        except OSError:
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _sockets(gateways: Sequence[str]) -> dict[str, str]:
    """``/proc/net/udp`` local address -> socket inode, for port 53 on the gateways."""
    want = {_proc_net_addr(g) for g in gateways} | {"00000000:0035"}
    try:
        with open("/proc/net/udp") as f:
            rows = [ln.split() for ln in f.readlines()[1:]]
    except OSError:
        return {}
    return {r[1]: r[9] for r in rows if len(r) > 9 and r[1] in want}


def _rebinds_on_reload(binary: str) -> bool:
    """aardvark-dns before 1.7 closes and re-binds every listener on SIGHUP; queries
    sent meanwhile are lost, so a reload is over only when the sockets are new. It also
    re-registers its SIGHUP handler on each reload: a second SIGHUP sent before the
    first reload is over is lost, so reloads must not overlap (the callers hold the
    network lock, and each waits here for its own)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=5).stdout.split()[-1]
        major, minor = (int(x) for x in out.split(".")[:2])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return True
    return (major, minor) < (1, 7)


def _wait_listening(gateways: Sequence[str], before: Mapping[str, str],
                    timeout: float = 10.0) -> None:
    """Wait until UDP port 53 is bound on each gateway by a socket not in ``before``:
    the server binds (and, when reloading, re-binds) asynchronously."""
    want = {_proc_net_addr(g) for g in gateways}
    end = time.monotonic() + timeout
    while True:
        now = _sockets(gateways)
        if "00000000:0035" in now:
            return  # a wildcard :53 listener of the host's blocks ours: nothing to wait for
        if all(a in now and now[a] != before.get(a) for a in want):
            return
        if time.monotonic() > end:
            return
        time.sleep(0.005)


def _proc_net_addr(ip: str) -> str:
    """``10.0.0.1`` port 53 as /proc/net/udp spells it: ``0100000A:0035``."""
    octets = [int(x) for x in ip.split(".")]
    return "".join(f"{o:02X}" for o in reversed(octets)) + ":0035"
