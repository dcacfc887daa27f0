"""Container commands: run, create, start, stop, restart, kill, rm, ps, logs, exec, attach,
wait, rename, pause, unpause, port, and the ``container`` management group.

Thin adapters: parse Docker's flags, call :class:`~berth.engine.Engine`, print Docker's
output. ``run``/``create`` report engine failures with exit 125 (the container's own
126/127 pass through), as Docker does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from berth.cli.common import confirm, err, out, run_group
from berth.cli.main import Ctx
from berth.cli.parser import Parser, add_filter, add_format, parse_filters
from berth.errors import BerthError, InvalidArgument

PS_COLUMNS = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
              ("CREATED", "RunningFor"), ("STATUS", "Status"), ("PORTS", "Ports"),
              ("NAMES", "Names")]
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}


def _each(names: list[str], fn: Callable[[str], Any], echo: bool = True,
          summary: str = "") -> int:
    """Docker's multi-container commands: go on after a failure, exit 1 if any failed.

    Every failure -- typed, full disk or unexpected -- is one line for its name; the next
    name is still tried. ``summary`` (``start``'s "failed to start containers") ends the
    output with the failed names, as Docker's CLI does.
    """
    failed: list[str] = []
    for n in names:
        try:
            fn(n)
        except Exception as e:  # noqa: BLE001 - one line per failed name, then go on
            from berth.cli.main import report

            report(e)
            failed.append(n)
            continue
        if echo:
            out(n)
    if failed and summary:
        err(f"Error: {summary}: {', '.join(failed)}")
    return 1 if failed else 0


# -- create / run ---------------------------------------------------------------------------
def _create_parser(prog: str, desc: str, run: bool) -> Parser:
    p = Parser(prog, desc, add_help=False)
    p.add_argument("--help", action="help", help="Print usage")
    if run:
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("--sig-proxy", default="true")
        p.add_argument("--detach-keys")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname")
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--volumes-from", action="append", default=[])
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--restart")
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument("--init", action="store_true")
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--cpus")
    p.add_argument("-c", "--cpu-shares", type=int)
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--network", "--net", default="bridge")
    p.add_argument("--runtime")
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("--ip")
    p.add_argument("--network-alias", "--net-alias", action="append", default=[])
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", "--dns-opt", action="append", default=[])
    p.add_argument("--health-cmd")
    p.add_argument("--health-interval")
    p.add_argument("--health-timeout")
    p.add_argument("--health-retries", type=int)
    p.add_argument("--health-start-period")
    p.add_argument("--no-healthcheck", action="store_true")
    p.add_argument("--group-add", action="append", default=[])
    p.add_argument("--ulimit", action="append", default=[])
    p.add_argument("--sysctl", action="append", default=[])
    p.add_argument("--device", action="append", default=[])
    p.add_argument("--shm-size")
    p.add_argument("--pid", default="")
    p.add_argument("--ipc", default="")
    p.add_argument("--log-driver")
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("--cpuset-cpus")
    p.add_argument("--memory-reservation")
    p.add_argument("--oom-score-adj", type=int)
    p.add_argument("--cgroup-parent")
    p.add_argument("-a", "--attach", action="append", default=[])
    p.add_argument("--pull", default="missing")
    p.add_argument("--platform")
    p.add_argument("--cidfile")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def _options(a: argparse.Namespace, detach: bool):  # type: ignore[no-untyped-def]
    from berth.container.create_options import CreateOptions, parse_cpus
    from berth.units import parse_size

    cpus = parse_cpus(a.cpus) if a.cpus is not None else None
    mem = parse_size(a.memory) if a.memory else None
    swap = None
    if a.memory_swap:
        swap = -1 if a.memory_swap == "-1" else parse_size(a.memory_swap)
    if a.pids_limit is not None and a.pids_limit <= 0:
        a.pids_limit = None  # Docker: 0 or -1 means unlimited
    return CreateOptions(
        image=a.image, command=list(a.command), name=a.name, entrypoint=a.entrypoint,
        env=a.env, env_files=a.env_file, workdir=a.workdir, user=a.user,
        hostname=a.hostname, tty=a.tty, interactive=a.interactive, detach=detach,
        labels=a.label, volumes=a.volume, tmpfs=a.tmpfs, mounts=a.mount,
        volumes_from=a.volumes_from, restart=a.restart,
        auto_remove=a.rm, stop_signal=a.stop_signal, stop_timeout=a.stop_timeout,
        init=a.init, add_hosts=a.add_host, read_only=a.read_only, privileged=a.privileged,
        cap_add=a.cap_add, cap_drop=a.cap_drop, security_opt=a.security_opt, memory=mem,
        memory_swap=swap, cpus=cpus, cpu_shares=a.cpu_shares, pids_limit=a.pids_limit,
        network=a.network, runtime=a.runtime, publish=a.publish, publish_all=a.publish_all,
        expose=a.expose, ip=a.ip, network_aliases=a.network_alias, dns=a.dns,
        dns_search=a.dns_search, dns_options=a.dns_option, health_cmd=a.health_cmd,
        health_interval=a.health_interval, health_timeout=a.health_timeout,
        health_retries=a.health_retries, health_start_period=a.health_start_period,
        no_healthcheck=a.no_healthcheck, group_add=a.group_add, ulimits=a.ulimit,
        sysctls=a.sysctl, devices=a.device,
        shm_size=parse_size(a.shm_size) if a.shm_size else None, pid_mode=a.pid,
        ipc_mode=a.ipc, log_driver=a.log_driver, log_opts=a.log_opt,
        cpuset_cpus=a.cpuset_cpus,
        memory_reservation=parse_size(a.memory_reservation) if a.memory_reservation
        else None, oom_score_adj=a.oom_score_adj, cgroup_parent=a.cgroup_parent,
        attach=[x for v in a.attach for x in v.split(",") if x], pull=_pull_policy(a.pull),
        platform=a.platform, cidfile=a.cidfile)


def _pull_policy(text: str) -> str:
    if text not in ("always", "missing", "never"):
        raise InvalidArgument(f"invalid pull option: '{text}': must be one of \"always\", "
                              "\"missing\" or \"never\"")
    return text


def _engine_error(e: Exception) -> BaseException:
    """run/create: berth failing before the container starts exits 125 (a full disk too)."""
    from berth.errors import translate

    t = translate(e)
    if isinstance(t, BerthError) and t.exit_code not in (125, 126, 127):
        t.exit_code = 125
    return t


def create(ctx: Ctx, argv: list[str]) -> int:
    p = _create_parser("berth create", "Create a new container", run=False)
    try:
        a = p.parse(argv)
        rec = ctx.engine.container_create(_options(a, detach=True), notify=err)
    except Exception as e:  # noqa: BLE001 - typed and full-disk errors exit 125
        raise _engine_error(e) from None
    out(rec.id)
    return 0


def run(ctx: Ctx, argv: list[str]) -> int:
    p = _create_parser("berth run", "Create and run a new container from an image", run=True)
    try:
        a = p.parse(argv)
        if a.detach and a.attach:
            raise InvalidArgument("Conflicting options: -a and -d")
        opts = _options(a, detach=a.detach)
        keys = _detach_keys(a.detach_keys)
        if a.tty and a.interactive and not a.detach and not os.isatty(0):
            raise InvalidArgument("the input device is not a TTY")
        streams = {x.lower() for x in opts.attach} or {"stdin", "stdout", "stderr"}
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            rec, code = ctx.engine.container_run(
                opts, notify=err, detach_keys=keys,
                stdin_fd=0 if a.interactive and not a.detach and "stdin" in streams
                else None, stdout_fd=1 if "stdout" in streams else null,
                stderr_fd=2 if "stderr" in streams else null)
        finally:
            os.close(null)
    except Exception as e:  # noqa: BLE001 - typed and full-disk errors exit 125
        raise _engine_error(e) from None
    if a.detach:
        out(rec.id)
        return 0
    return _detached() if code is None else code


def _detach_keys(text: str | None) -> bytes | None:
    from berth.container.detachkeys import parse

    return parse(text) if text is not None else None


def _detached() -> int:
    """The user typed the detach keys: Docker's CLI says so and exits 0."""
    from berth.container.detachkeys import MESSAGE

    err(MESSAGE)
    return 0


# -- start / stop / restart / kill / rm -------------------------------------------------------
def start(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth start", "Start one or more stopped containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("--detach-keys")
    a = p.parse(argv)
    if a.attach or a.interactive:
        if len(a.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        code = ctx.engine.container_start_attached(
            a.containers[0], stdin_fd=0 if a.interactive else None,
            detach_keys=_detach_keys(a.detach_keys))
        return _detached() if code is None else code
    return _each(a.containers, ctx.engine.container_start,
                 summary="failed to start containers")


def stop(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth stop", "Stop one or more running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, default=None, dest="time")
    p.add_argument("-s", "--signal", default=None)
    a = p.parse(argv)
    return _each(a.containers, lambda n: ctx.engine.container_stop(n, a.time))


def restart(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth restart", "Restart one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, default=None, dest="time")
    a = p.parse(argv)
    return _each(a.containers, lambda n: ctx.engine.container_restart(n, a.time))


def kill(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth kill", "Kill one or more running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-s", "--signal", default="KILL")
    a = p.parse(argv)
    from berth.container.create_options import parse_signal

    parse_signal(a.signal)
    return _each(a.containers, lambda n: ctx.engine.container_kill(n, a.signal))


def rm(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth rm", "Remove one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("-l", "--link", action="store_true")
    a = p.parse(argv)
    return _each(a.containers, lambda n: ctx.engine.container_remove(
        n, force=a.force, volumes=a.volumes))


def pause(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth pause", "Pause all processes within one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    return _each(p.parse(argv).containers, ctx.engine.container_pause)


def unpause(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth unpause", "Unpause all processes within one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    return _each(p.parse(argv).containers, ctx.engine.container_unpause)


def rename(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth rename", "Rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    a = p.parse(argv)
    ctx.engine.container_rename(a.container, a.new_name)
    return 0


def wait(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth wait", "Block until one or more containers stop, then print their "
               "exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    a = p.parse(argv)
    failed = False
    for n in a.containers:
        try:
            out(str(ctx.engine.container_wait(n)))
        except BerthError as e:
            err(f"Error: {e}")
            failed = True
    return 1 if failed else 0


def port(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.network_cmd import port as network_port

    return network_port(ctx, argv)


# -- ps -----------------------------------------------------------------------------------
def ps(ctx: Ctx, argv: list[str]) -> int:
    import time

    from berth.cli.output import format_rows
    from berth.container.views import PS_FILTERS, ps_row

    p = Parser("berth ps", "List containers")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("-n", "--last", type=int, default=-1)
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    add_filter(p)
    add_format(p)
    a = p.parse(argv)
    filters = parse_filters(a.filter, PS_FILTERS, p.prog)
    last = 1 if a.latest else a.last
    eng = ctx.engine
    recs = eng.containers(all=a.all or last > 0, filters=filters)
    if last > 0:
        recs = recs[:last]
    if a.quiet:
        out("\n".join(r.id if a.no_trunc else r.short_id for r in recs))
        return 0
    trunc = not a.no_trunc
    images = _image_names(eng, trunc)
    now = time.time()
    size = _size_of(eng) if a.size else None
    from berth.cli.output import LabeledRow

    rows: list[dict[str, Any]] = [
        LabeledRow(ps_row(r, images(r), trunc=trunc, now=now, size=size), r.labels)
        for r in recs]
    for rec, row in zip(recs, rows):  # PORTS: published/exposed ports of running ones
        row["Ports"] = eng.ports_column(rec)
    cols = list(PS_COLUMNS) + ([("SIZE", "Size")] if a.size else [])
    out(format_rows(rows, cols, a.format, headers=PS_HEADERS))
    return 0


def _image_names(eng: Any, trunc: bool) -> Callable[[Any], str]:
    """IMAGE column: the name used, or the image ID once that name points elsewhere."""
    cache: dict[str, str | None] = {}

    def name(rec: Any) -> str:
        if rec.image_name not in cache:
            try:
                cache[rec.image_name] = eng.image_service.resolve(rec.image_name)
            except BerthError:
                cache[rec.image_name] = None
        if cache[rec.image_name] == rec.image_id:
            return rec.image_name
        hexid = rec.image_id.split(":", 1)[-1]
        return hexid[:12] if trunc else rec.image_id
    return name


def _size_of(eng: Any) -> Callable[[Any], str]:
    from berth.store.fsutil import tree_size
    from berth.units import human_size

    virt: dict[str, int] = {}

    def size(rec: Any) -> str:
        if rec.image_id not in virt:
            virt[rec.image_id] = sum(r["size"] for r in eng.image_service.layers(rec.image_id))
        rw = tree_size(rec.upper)
        return f"{human_size(rw)} (virtual {human_size(rw + virt[rec.image_id])})"
    return size


# -- logs / attach / exec -----------------------------------------------------------------
def logs(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import parse_timestamp, rfc3339_nano

    p = Parser("berth logs", "Fetch the logs of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--details", action="store_true")
    a = p.parse(argv)
    tail = None
    if a.tail != "all":
        try:
            tail = int(a.tail)
        except ValueError:
            raise InvalidArgument(f'invalid value for "tail": {a.tail!r}') from None
        if tail < 0:
            tail = None
    since = parse_timestamp(a.since) if a.since else None
    until = parse_timestamp(a.until) if a.until else None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for stream, ts, line in ctx.engine.container_logs(a.container, follow=a.follow,
                                                      tail=tail, since=since, until=until):
        target = err if stream == "stderr" else out
        if a.timestamps:
            target.write(rfc3339_nano(ts.timestamp()).encode() + b" ")
        target.write(line)
        if a.follow:
            target.flush()
    out.flush()
    err.flush()
    return 0


def attach(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth attach", "Attach local standard input, output, and error streams to a "
               "running container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--sig-proxy", default="true")
    p.add_argument("--detach-keys")
    a = p.parse(argv)
    keys = _detach_keys(a.detach_keys)
    code = ctx.engine.container_attach(a.container, stdin_fd=None if a.no_stdin else 0,
                                       **({} if keys is None else {"detach_keys": keys}))
    return _detached() if code is None else code


def exec_(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth exec", "Execute a command in a running container")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse(argv)
    from berth.container.create_options import read_env_file

    if not a.command:
        raise InvalidArgument("exec requires at least 2 arguments")
    if a.tty and a.interactive and not a.detach and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY")
    env = [line for f in a.env_file for line in read_env_file(f)] + a.env
    keys = _detach_keys(a.detach_keys)
    code = ctx.engine.container_exec(
        a.container, a.command, detach=a.detach, tty=a.tty,
        stdin_fd=0 if a.interactive and not a.detach else None, env=env, user=a.user,
        workdir=a.workdir, privileged=a.privileged,
        **({} if keys is None else {"detach_keys": keys}))
    if code is None:
        return 0 if a.detach else _detached()
    return code


# -- container group ------------------------------------------------------------------------
def prune(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import human_size

    p = Parser("berth container prune", "Remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    a = p.parse(argv)
    filters = parse_filters(a.filter, {"until", "label", "label!"}, p.prog)
    if not a.force:
        if not confirm("WARNING! This will remove all stopped containers."):
            return 0
    removed, space = ctx.engine.container_prune(filters=filters)
    if removed:
        out("Deleted Containers:\n" + "\n".join(removed) + "\n")
    out(f"Total reclaimed space: {human_size(space)}")
    return 0


def ls(ctx: Ctx, argv: list[str]) -> int:
    return ps(ctx, argv)


def _inspect(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.inspect_cmd import inspect

    return inspect(ctx, ["--type", "container", *argv])


def _update(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.update_cmd import update

    return update(ctx, argv)


def cleanup(ctx: Ctx, argv: list[str]) -> int:
    """conmon's exit command (not for users): runs detached, so errors go to a log file."""
    if len(argv) != 1:
        raise InvalidArgument("usage: berth container cleanup ID")
    if _foreground_attached(ctx, argv[0]):
        return 0  # the attached `run`/`start -a` finishes it; conmon waits for us: be quick
    try:
        ctx.engine.container_cleanup(argv[0])
    except Exception as e:  # noqa: BLE001 - nobody reads our stderr; keep a trace
        import time

        with open(os.path.join(ctx.engine.runroot, "cleanup.log"), "a",
                  encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {argv[0][:12]}: "
                    f"{type(e).__name__}: {e}\n")
        return 1
    return 0


def _foreground_attached(ctx: Ctx, cid: str) -> bool:
    """The service's ``.fg`` lock test, done before opening the store (milliseconds count:
    conmon, and so a foreground ``run``, waits for this exit command)."""
    from berth.store.locks import is_locked

    runroot = ctx.runroot or os.environ.get("BERTH_RUNROOT") or "/run/berth"
    return is_locked(os.path.join(runroot, "locks", cid + ".fg"))


_EXTRA = ("cp", "diff", "export", "stats", "top", "commit")


def container(ctx: Ctx, argv: list[str]) -> int:
    """``berth container SUBCOMMAND``."""
    subs: dict[str, Callable[[Ctx, list[str]], int]] = {
        "ls": ls, "ps": ls, "list": ls, "run": run, "create": create, "start": start,
        "stop": stop, "restart": restart, "kill": kill, "rm": rm, "remove": rm,
        "logs": logs, "exec": exec_, "attach": attach, "wait": wait, "inspect": _inspect,
        "rename": rename, "pause": pause, "unpause": unpause, "port": port,
        "prune": prune, "cleanup": cleanup, "update": _update,
    }
    try:
        import importlib

        extra = importlib.import_module("berth.cli.container_extra_cmd")
        for n in _EXTRA:
            if hasattr(extra, n):
                subs[n] = getattr(extra, n)
    except ImportError:
        pass
    return run_group(ctx, argv, group="container", title="Manage containers", subs=subs,
                     listed=[n for n in subs if n != "cleanup"])
