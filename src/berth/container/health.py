"""Health checks without a daemon: Docker's HEALTHCHECK semantics, one tiny loop per container.

conmon cannot run timers and there is no berth daemon, so each running container with a
health check gets a *health loop*: ``/bin/sh -c 'while sleep INTERVAL; do berth
healthcheck run --loop ID; done'`` in its own session, started by the start that made the
container run and killed (with its process group) by whatever records the exit or removes
the container. Between probes it is one idle ``sh`` and one ``sleep`` (about 1 MiB of RSS
together; see bench/health_memory.py); each probe is a short-lived berth process that runs
the test with ``<runtime> exec``, and writes the result into the container's row, so the
CLI and the API service read the same ``State.Health``. A loop that finds it is no longer
the container's current loop (the pid file names another, or the container stopped) exits.

Docker's rules, kept here: the first probe runs one interval after the start; exit 0 is
healthy, anything else (a timeout too) a failure; failures inside the start period do not
count while the status is still ``starting``; ``Retries`` consecutive counted failures make
it ``unhealthy``; the log keeps the last 5 probes with at most 4096 bytes of output each.
An unhealthy container is not restarted (restart policies look at exits only).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument
from ..units import parse_duration, rfc3339_nano

if TYPE_CHECKING:  # pragma: no cover
    from ..store.db import Database
    from .records import ContainerRecord
    from .runtime import OCIRuntime

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096
STALE_LOOP = 3          # exit code of ``healthcheck run --loop``: this loop should end
STATUSES = ("starting", "healthy", "unhealthy", "none")


# -- configuration ------------------------------------------------------------------------
def _ns(flag: str, text: str | None) -> int:
    if text is None:
        return 0
    ns = int(parse_duration(text) * SECOND)
    if ns < 0:
        raise InvalidArgument(f"--{flag} cannot be negative")
    if 0 < ns < 1_000_000:
        raise InvalidArgument(f"--{flag} cannot be less than 1ms")
    return ns


def merge(image_hc: dict[str, Any] | None, *, cmd: str | None = None,
          interval: str | None = None, timeout: str | None = None,
          retries: int | None = None, start_period: str | None = None,
          disabled: bool = False) -> dict[str, Any] | None:
    """The container's ``Healthcheck`` from the ``--health-*`` flags over the image's.

    As Docker: ``--no-healthcheck`` stores ``Test: ["NONE"]`` and conflicts with the other
    flags; a flag left at zero keeps the image's value; no flags keep the image's check.
    """
    given = any(v is not None for v in (cmd, interval, timeout, retries, start_period))
    if disabled:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    mine = {"Interval": _ns("health-interval", interval),
            "Timeout": _ns("health-timeout", timeout),
            "StartPeriod": _ns("health-start-period", start_period),
            "Retries": retries or 0}
    if not given:
        return dict(image_hc) if image_hc else None
    base = dict(image_hc or {})
    out: dict[str, Any] = {"Test": ["CMD-SHELL", cmd] if cmd else base.get("Test")}
    for k, v in mine.items():
        if v or base.get(k):
            out[k] = v or base[k]      # zero values are omitted, as in Docker's JSON
    if not out["Test"]:
        out.pop("Test")
    return out


def probe_argv(hc: dict[str, Any] | None) -> list[str] | None:
    """The probe's argv, or None when the container has no (enabled) health check."""
    test = (hc or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return list(test[1:]) or None
    return list(test)  # Docker treats a bare list as CMD


def configured(config: dict[str, Any]) -> bool:
    return probe_argv(config.get("Healthcheck")) is not None


def _setting(hc: dict[str, Any], key: str, default: int) -> int:
    v = hc.get(key) or 0
    return int(v) if v > 0 else default


# -- state in the store ---------------------------------------------------------------------
def reset(db: Database, cid: str) -> None:
    """At each start: ``starting`` and no failures, keeping the log (as Docker)."""
    with db.tx() as tx:
        row = tx.one("SELECT health FROM containers WHERE id=?", (cid,))
        if row is None:
            return
        h = json.loads(row["health"]) if row["health"] else {"Log": []}
        h.update(Status="starting", FailingStreak=0)
        tx.execute("UPDATE containers SET health=? WHERE id=?", (json.dumps(h), cid))


def record(db: Database, rec: ContainerRecord, entry: dict[str, Any]) -> dict[str, Any]:
    """Apply one probe result (Docker's handleProbeResult); the new State.Health."""
    hc = rec.config.get("Healthcheck") or {}
    retries = _setting(hc, "Retries", DEFAULT_RETRIES)
    start_period = _setting(hc, "StartPeriod", 0) / SECOND
    with db.tx() as tx:
        row = tx.one("SELECT health, started_at FROM containers WHERE id=?", (rec.id,))
        if row is None:
            raise Conflict(f"No such container: {rec.id}")
        h: dict[str, Any] = json.loads(row["health"]) if row["health"] else {
            "Status": "starting", "FailingStreak": 0, "Log": []}
        if entry["ExitCode"] == 0:
            h["FailingStreak"] = 0
            h["Status"] = "healthy"
        else:
            counts = not (h["Status"] == "starting" and
                          entry["_start"] - (row["started_at"] or 0) < start_period)
            if counts:
                h["FailingStreak"] += 1
                if h["FailingStreak"] >= retries:
                    h["Status"] = "unhealthy"
        h["Log"] = [*h.get("Log", []), {k: v for k, v in entry.items()
                                        if not k.startswith("_")}][-MAX_LOG:]
        tx.execute("UPDATE containers SET health=? WHERE id=?", (json.dumps(h), rec.id))
    return h


# -- one probe --------------------------------------------------------------------------------
def probe(rt: OCIRuntime, rec: ContainerRecord, process: dict[str, Any]) -> dict[str, Any]:
    """Run the health test in the container; a Docker ``Log`` entry (plus ``_start``).

    ``process`` is the container's OCI process; only its args change. The runtime's
    ``exec`` inherits no terminal; on timeout the probe process (named by its pid file)
    and the runtime are killed and the probe counts as failed, as Docker's does.
    """
    hc = rec.config.get("Healthcheck") or {}
    argv = probe_argv(hc)
    if argv is None:
        raise Conflict(f"container {rec.name} has no defined healthcheck")
    timeout = _setting(hc, "Timeout", DEFAULT_TIMEOUT) / SECOND
    d = os.path.join(rec.run_dir, "health")
    os.makedirs(d, mode=0o700, exist_ok=True)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    spec, pid_file = os.path.join(d, f"{tag}.json"), os.path.join(d, f"{tag}.pid")
    with open(spec, "w", encoding="utf-8") as f:
        json.dump(dict(process, args=argv, terminal=False), f)
    start = time.time()
    p = subprocess.Popen(rt.exec_args(rec.id, spec, pid_file=pid_file),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert p.stdout is not None
        out = _read_bounded(p.stdout.fileno(), time.monotonic() + timeout)
        if out is None:
            _kill_probe(p, pid_file)
            code, text = -1, f"Health check exceeded timeout ({_go_seconds(timeout)})"
        else:
            code = p.wait()
            text = out.decode("utf-8", "replace")
    finally:
        if p.stdout is not None:
            p.stdout.close()
        for path in (spec, pid_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return {"Start": rfc3339_nano(start), "End": rfc3339_nano(time.time()),
            "ExitCode": code, "Output": text, "_start": start}


def _read_bounded(fd: int, deadline: float) -> bytes | None:
    """The first MAX_OUTPUT bytes of the probe's output (the rest is drained and dropped,
    so a chatty probe costs no memory); None when the deadline passes before its EOF."""
    import select

    kept = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return kept
        if len(kept) < MAX_OUTPUT:
            kept = (kept + chunk)[:MAX_OUTPUT]


def _go_seconds(s: float) -> str:
    return f"{s:g}s"


def _kill_probe(p: subprocess.Popen[bytes], pid_file: str, grace: float = 10.0) -> None:
    """Kill a timed-out probe in the container, then its ``runtime exec``.

    Killing only the runtime could leave the probe running inside the container if the
    runtime had not started it yet, so wait (a bounded time) for the pid file the runtime
    writes once the process runs; the runtime then exits with it.
    """
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            with open(pid_file, encoding="ascii") as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
            break
        except (OSError, ValueError):
            if p.poll() is not None:
                break       # the runtime is gone without having started the probe
            time.sleep(0.02)
    try:
        p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# -- the loop ---------------------------------------------------------------------------------
def _pid_file(rec: ContainerRecord) -> str:
    return os.path.join(rec.run_dir, "health.pid")


def start_loop(db: Database, rec: ContainerRecord, root: str, runroot: str) -> None:
    """Reset the state and start this run's health loop (replacing any older one)."""
    if not configured(rec.config):
        return
    stop_loop(rec)
    reset(db, rec.id)
    interval = _setting(rec.config["Healthcheck"], "Interval", DEFAULT_INTERVAL) / SECOND
    import berth

    src = os.path.dirname(os.path.dirname(os.path.abspath(berth.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # setsid -f: the loop is nobody's child (no zombie in a long-lived caller such as the
    # API service) and leads its own process group, so stop_loop takes its children too.
    script = ('echo $$; exec >/dev/null; while sleep "$1"; do "$2" -m berth --root "$3" '
              '--runroot "$4" healthcheck run --loop "$5" >/dev/null 2>&1; '
              f'[ $? -eq {STALE_LOOP} ] && exit 0; done')
    with subprocess.Popen(["setsid", "-f", "/bin/sh", "-c", script, "berth-health",
                           f"{interval:.3f}", sys.executable, root, runroot, rec.id],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, env=env, close_fds=True,
                          cwd="/") as p:   # never keeps the caller's directory busy
        assert p.stdout is not None
        line = p.stdout.readline().strip()
    if not line.isdigit():
        return  # no loop (no setsid?): the status stays "starting"; `healthcheck run` works
    tmp = _pid_file(rec) + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(line.decode())
    os.replace(tmp, _pid_file(rec))


def current_loop(rec: ContainerRecord) -> int | None:
    try:
        with open(_pid_file(rec), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def stop_loop(rec: ContainerRecord) -> None:
    """Kill the container's health loop and its children (an in-flight probe too)."""
    pid = current_loop(rec)
    if pid is None:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            mine = rec.id.encode() in f.read()  # never a recycled pid of someone else
        if mine:
            os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.unlink(_pid_file(rec))
    except FileNotFoundError:
        pass
