"""Driver for an OCI runtime CLI (crun or runc), and the choice between them.

Each runtime keeps its state under ``<runroot>/runtime/<name>`` (its ``--root``), so two
runtimes never see each other's containers and a berth runroot is self-contained.
Failures become typed errors with the runtime's stderr condensed to one line; a container
command that cannot be found or executed maps to Docker's 127/126.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import CannotInvoke, CommandNotFound, NotFound, RuntimeFailure
from . import cgroups

HYBRID_FIX = "mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"

# How each runtime reports that the container's own command failed to exec:
#   runc: 'exec: "x": executable file not found in $PATH' / 'exec: "/x": stat /x: no such
#         file or directory' / 'exec: "/etc/passwd": permission denied'
#   crun: 'executable file `x` not found in $PATH: No such file or directory' /
#         'open executable: Permission denied' / 'exec container process `/x`: ...'
_EXEC_CONTEXT = re.compile(
    r'exec: "|executable file|open executable|exec container process|exec failed', re.I)
_NOT_FOUND = re.compile(r"not found in \$PATH|no such file or directory", re.I)
_DENIED = re.compile(r"permission denied|is a directory|exec format error", re.I)
_MISSING = re.compile(r"does not exist|no such container|container not found"
                      r"|status`?: no such file", re.I)
_SEARCH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _which(name: str) -> str | None:
    """PATH lookup that also sees sbin (runc lives in /usr/sbin on Debian)."""
    found = shutil.which(name)
    if found:
        return found
    for d in _SEARCH_DIRS:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def condense(stderr: str) -> str:
    """Runtime stderr as one readable line: runc's logfmt ``msg=`` and crun's prefixes go."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
        if m:
            line = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
        line = re.sub(r"^(crun|runc|Error):\s*", "", line)
        line = re.sub(r"^runc \w+ failed: ", "", line)
        if line not in lines:
            lines.append(line)
    return "; ".join(lines) or "OCI runtime failed without a message"


def classify(stderr: str, what: str = "") -> Exception:
    """The error a user should see for a failed runtime call."""
    msg = condense(stderr)
    if _EXEC_CONTEXT.search(msg):
        if _DENIED.search(msg):
            return CannotInvoke(f"{msg}: permission denied" if "denied" not in msg.lower() else msg)
        if _NOT_FOUND.search(msg):
            return CommandNotFound(msg)
    if "hybrid mode not supported" in msg:
        msg += f" (fix the host with: {HYBRID_FIX}, or use --runtime runc)"
    return RuntimeFailure(f"{what}: {msg}" if what else msg)


@dataclass
class OCIRuntime:
    """One runtime binary plus its state root. Methods map 1:1 to runtime subcommands."""

    name: str
    path: str
    root: str
    notice: str | None = None   # one-time message for the user (e.g. crun fallback)

    def base(self) -> list[str]:
        """argv prefix; also what conmon gets as ``--runtime`` + ``--runtime-arg``."""
        return [self.path, *self.global_args()]

    def global_args(self) -> list[str]:
        from berth.procs import rootless

        # rootless: no cgroup is ours to make, so the runtime must not try (berth.rootless)
        return ["--root", self.root, *(["--rootless", "true"] if rootless() else [])]

    def _run(self, *args: str, what: str, check: bool = True,
             timeout: float | None = 60) -> subprocess.CompletedProcess:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        p = subprocess.run([*self.base(), *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            err = p.stderr or p.stdout
            if _MISSING.search(err) and what in ("state", "kill", "delete", "pause",
                                                   "resume", "ps"):
                raise NotFound(f"No such container: {args[-1]}")
            raise classify(err, "" if what in ("create", "start", "run", "exec")
                           else f"{self.name} {what}")
        return p

    # lifecycle -------------------------------------------------------------------------
    def create(self, cid: str, bundle: str, *, pid_file: str | None = None,
               console_socket: str | None = None) -> None:
        args = ["create", "--bundle", bundle]
        if pid_file:
            args += ["--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._run(*args, cid, what="create")

    def start(self, cid: str) -> None:
        self._run("start", cid, what="start")

    def run(self, cid: str, bundle: str) -> int:
        """Foreground ``run`` inheriting our stdio (no monitor; for tools and tests)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        p = subprocess.run([*self.base(), "run", "--bundle", bundle, cid],
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0 and p.stderr:
            raise classify(p.stderr)
        return p.returncode

    def state(self, cid: str) -> dict | None:
        """The runtime's state JSON, or None when the runtime does not know ``cid``."""
        try:
            p = self._run("state", cid, what="state")
        except NotFound:
            return None
        return json.loads(p.stdout)

    def kill(self, cid: str, signal: int | str = "SIGTERM", all: bool = False) -> None:
        sig = str(signal)
        args = ["kill", *(["--all"] if all else []), cid, sig]
        self._run(*args, what="kill")

    def delete(self, cid: str, force: bool = False) -> None:
        """Remove runtime state; a container the runtime no longer knows is not an error."""
        try:
            self._run("delete", *(["--force"] if force else []), cid, what="delete")
        except NotFound:
            pass

    def pause(self, cid: str) -> None:
        self._run("pause", cid, what="pause")

    def resume(self, cid: str) -> None:
        self._run("resume", cid, what="resume")

    def update(self, cid: str, resources_json: str) -> None:
        """Apply OCI ``linux.resources`` to a live container (``<runtime> update``)."""
        self._run("update", "--resources", resources_json, cid, what="update")

    def ps(self, cid: str) -> list[int]:
        """Host pids of every process in the container."""
        p = self._run("ps", "--format", "json", cid, what="ps")
        out = p.stdout.strip()
        return [int(x) for x in json.loads(out)] if out and out != "null" else []

    def exec_args(self, cid: str, process_json: str, *, detach: bool = False,
                  tty: bool = False, console_socket: str | None = None,
                  pid_file: str | None = None) -> list[str]:
        """argv for ``exec --process``; the monitor runs it when stdio must be owned."""
        args = [*self.base(), "exec", "--process", process_json]
        if detach:
            args.append("--detach")
        if tty:
            args.append("--tty")
        if console_socket:
            args += ["--console-socket", console_socket]
        if pid_file:
            args += ["--pid-file", pid_file]
        return [*args, cid]

    def exec(self, cid: str, process_json: str) -> int:
        """Foreground non-tty exec inheriting our stdio; returns the process's exit code."""
        p = subprocess.run(self.exec_args(cid, process_json), stderr=subprocess.PIPE,
                           text=True)
        if p.returncode != 0 and p.stderr and _EXEC_CONTEXT.search(p.stderr):
            raise classify(p.stderr)
        return p.returncode


# selection ------------------------------------------------------------------------------
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _probe_crun(cache_file: str) -> tuple[bool, str | None, bool]:
    """(usable, reason, fresh). crun 1.8 refuses hybrid cgroups with a v2 controller.

    The answer is cached in the runroot per boot so later runs skip the probe; ``fresh``
    says whether it was computed now (the caller shows the notice only then).
    """
    boot = _boot_id()
    try:
        with open(cache_file, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("boot_id") == boot:
            return bool(data["usable"]), data.get("reason"), False
    except (OSError, ValueError, KeyError):
        pass
    ctrls = cgroups.hybrid_v2_controllers()
    usable = not ctrls
    reason = None if usable else (
        f"crun refuses this host's hybrid cgroup layout ({','.join(ctrls)} is on cgroup v2 "
        f"at /sys/fs/cgroup/unified); using runc instead. "
        f"To use crun, fix the host with: {HYBRID_FIX}")
    try:
        os.makedirs(os.path.dirname(cache_file), mode=0o700, exist_ok=True)
        tmp = f"{cache_file}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"boot_id": boot, "usable": usable, "reason": reason}, f)
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return usable, reason, True


def select_runtime(preferred: str | None, runroot: str) -> OCIRuntime:
    """crun when it works here, else runc; ``preferred`` (name or path) forces a choice.

    A forced ``crun`` on a host it refuses fails up front with the fix, rather than on every
    container start. The fallback notice is set on the returned runtime's ``notice``.
    """
    def make(name: str, path: str, notice: str | None = None) -> OCIRuntime:
        return OCIRuntime(name, path, os.path.join(runroot, "runtime", name), notice)

    if preferred:
        path = preferred if "/" in preferred else _which(preferred)
        if not path or not os.access(path, os.X_OK):
            raise RuntimeFailure(f"unknown or invalid runtime name: {preferred}")
        name = os.path.basename(path)
        if name == "crun":
            usable, reason, _ = _probe_crun(os.path.join(runroot, "runtime", "crun-probe.json"))
            if not usable:
                raise RuntimeFailure(reason.replace("; using runc instead", "") if reason
                                     else "crun cannot run here")
        return make(name, path)
    crun = _which("crun")
    runc = _which("runc")
    notice = None
    if crun:
        usable, reason, fresh = _probe_crun(os.path.join(runroot, "runtime", "crun-probe.json"))
        if usable or not runc:
            return make("crun", crun)
        notice = reason if fresh else None
    if runc:
        return make("runc", runc, notice)
    raise RuntimeFailure("no OCI runtime found: install crun or runc")
