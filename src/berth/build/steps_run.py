"""RUN: the command runs in a container on the step's image; its upper dir is the layer.

The container goes through the same code as ``berth run`` — :func:`build_spec` for the OCI
config (Docker's capabilities, seccomp, masked paths, namespaces) and the selected OCI
runtime — but without conmon or a container row: a build step is a foreground process
whose whole life is this function, so ``<runtime> run`` in a throwaway bundle is enough
and costs ~20 ms instead of a monitored container's ~300 ms.

What the runtime leaves behind for its mounts (an empty ``/etc/hosts``, ``/proc``, a
``/run/secrets`` dir, and parents copied up only because a placeholder was created in
them) is kept out of the layer, as Docker's hidden init layer does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import deque
from typing import TYPE_CHECKING, Any

from berth.build.plan import Step
from berth.build.progress import StepRef
from berth.build.steps_meta import command_words, join_workdir
from berth.errors import BerthError, DockerfileError
from berth.oci.layer_apply import opaque_xattr

if TYPE_CHECKING:  # pragma: no cover
    from berth.build.executor import BuildSession
    from berth.build.imagestate import ImageState
    from berth.build.stepnet import StepNetwork
    from berth.build.workspace import Workspace
    from berth.images.ingest import IngestedLayer

HOSTNAME = "buildkitsandbox"
_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
          f"127.0.1.1\t{HOSTNAME}\n")
_ONLY_HEREDOC = re.compile(r"^\s*<<-?\s*([\"']?)([^\s\"'<>|&;()]+)\1\s*$")
_TAIL_CHUNKS = 64


class RunFailed(BerthError):
    """A RUN command exited non-zero: Docker's message, output attached, and the command's
    own exit code as ``build``'s (Docker 20.10's classic builder does that; BuildKit
    exits 1 — scripts that test for a specific code rely on the classic behaviour)."""

    def __init__(self, command: str, code: int, output: bytes, line: int) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {code}",
                         exit_code=code if 0 < code < 256 else 1)
        self.command, self.code, self.output, self.line = command, code, output, line


def run_network(step: Step, default: str) -> str:
    """The step's network: ``RUN --network=`` (``default`` is the build's ``--network``)."""
    value = (step.flags.get("network") or ["default"])[-1]
    if value == "default":
        return default
    if not value:
        raise DockerfileError(f"Dockerfile:{step.line}: empty network mode")
    return value


def argv_of(step: Step, config: dict[str, Any]) -> tuple[list[str], str | None]:
    """The process argv, and a shebang script body when a lone here-doc is one."""
    if step.json or not step.heredocs:
        return command_words(step, config), None
    m = _ONLY_HEREDOC.match(step.args[0])
    if m and len(step.heredocs) == 1:
        body = step.heredocs[0].content
        if body.startswith("#!"):
            return [f"/dev/pipes/{step.heredocs[0].name}"], body
        return [*command_words(step, config)[:-1], body], None
    text = step.args[0] + "\n" + "".join(h.content + h.name + "\n" for h in step.heredocs)
    return [*command_words(step, config)[:-1], text], None


def history_text(step: Step, argv: list[str]) -> str:
    """BuildKit's ``created_by`` for a RUN: ``RUN |n K=V ... argv # buildkit``."""
    args = step.build_args
    head = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in sorted(args.items())) + " " \
        if args else ""
    return f"RUN {head}{' '.join(argv)} # buildkit"


def run_step(s: BuildSession, ref: StepRef, state: ImageState, step: Step
             ) -> IngestedLayer | None:
    """Run ``step`` on ``state``; the layer it made (None if it changed nothing).

    Call with ``store.ingesting()`` held; the caller commits the layer. On failure no
    mount, runtime state or temp dir is left.
    """
    from berth.build.stepnet import StepNetwork, resolve_mode
    from berth.build.workspace import Workspace, image_lowers
    from berth.container.diff import Lowers
    from berth.container.spec import SpecOptions, build_spec

    cfg = state.config
    argv, script = argv_of(step, cfg)
    mode = run_network(step, s.network)
    from berth.procs import in_userns

    if in_userns():  # rootless: no bridge without host root (berth.rootless)
        from berth.rootless.containers import build_network

        mode = build_network(mode)
    pasta = mode == "pasta"  # rootless default: own netns + pasta (berth.rootless.pasta)
    network, net = ("none", None) if pasta else resolve_mode(s.store, mode)
    lowers = image_lowers(s.store, state.image_id)
    cid = f"berth-build-{os.urandom(8).hex()}"
    ws = Workspace(s.store, lowers, kind="run")
    seat: Any = None  # StepNetwork, or rootless PastaSeat (same netns/ip/close)
    try:
        merged = ws.mount()
        env = dict(step.run_env())
        if net is not None:
            seat = StepNetwork(s.store, cid, net)
        elif pasta:
            from berth.rootless.pasta import PastaSeat

            seat = PastaSeat(s.store.runroot, cid)
        mounts = _etc_files(ws, network, seat)
        if script is not None:
            path = ws.path("heredoc")
            with open(path, "w", encoding="utf-8") as f:
                f.write(script)
            os.chmod(path, 0o755)
            mounts.append({"type": "bind", "source": path, "destination": argv[0],
                           "ro": True})
        from berth.build.mounts_run import run_mounts

        extra, secret_env = run_mounts(s, ws, step, cfg.get("WorkingDir") or "/")
        mounts += extra
        env.update(secret_env)
        spec = build_spec(SpecOptions(
            rootfs=merged, args=argv, env=[f"{k}={v}" for k, v in env.items()],
            cwd=join_workdir(None, cfg.get("WorkingDir") or "/"),
            user=cfg.get("User") or None, hostname=HOSTNAME, mounts=mounts,
            network=seat.netns if seat is not None else network,
            cgroups_path=f"/berth/{cid}"))
        from berth.procs import in_userns

        if in_userns():  # rootless: no cgroup, /sys bound for host network (berth.rootless)
            from berth.rootless.containers import adjust_spec

            adjust_spec(spec)
        bundle = ws.path("bundle")
        os.makedirs(bundle, mode=0o700)
        with open(os.path.join(bundle, "config.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        s.progress.running(ref, cid[12:24])
        code, output, runtime_error = _execute(s, ref, cid, bundle)
        if runtime_error:
            raise BerthError(f"failed to run '{' '.join(argv)}': {runtime_error}")
        if code != 0:
            raise RunFailed(" ".join(argv), code, output, step.line)
        targets = {os.path.normpath(m["destination"]) for m in spec["mounts"]}
        skip = leftovers(ws.upper, lowers, Lowers(lowers), targets)
        return ws.layer(state.top_chain, epoch=s.epoch,
                        exclude=(lambda rel: rel in skip) if skip else None)
    finally:
        try:
            if seat is not None:
                seat.close()  # the runtime is gone (``run`` returned): unplug now
        finally:
            ws.close()


def _etc_files(ws: Workspace, network: str, seat: StepNetwork | None
               ) -> list[dict[str, Any]]:
    """/etc/hosts, /etc/hostname, /etc/resolv.conf for the step (never part of a layer).

    The step's hostname is in its hosts file in every mode (tools such as make-ssl-cert
    resolve it): on a bridge with the step's address, as ``run`` writes it; with host
    networking after the host's own entries.
    """
    from berth.network.etcfiles import resolv_conf
    from berth.network.hostsfiles import render_hosts

    if seat is not None:
        hosts, resolv = render_hosts(HOSTNAME, seat.ip), resolv_conf({})
    elif network == "host":
        hosts = _read("/etc/hosts")
        if HOSTNAME not in hosts.split():
            hosts += ("" if hosts.endswith("\n") or not hosts else "\n") + \
                f"127.0.1.1\t{HOSTNAME}\n"
        resolv = _read("/etc/resolv.conf")
    else:
        hosts, resolv = _HOSTS, ""
    from berth.etcbinds import bind_etc_files

    files = {"hosts": hosts, "hostname": HOSTNAME + "\n", "resolv.conf": resolv}
    return bind_etc_files(ws.dir, files,
                          read_only={"hostname", "resolv.conf"})


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _runtime_argv(s: BuildSession, log: str) -> list[str]:
    rt = s.runtime
    if rt.name == "crun":
        return [*rt.base(), f"--log=file:{log}"]
    return [*rt.base(), "--log", log, "--log-format", "json"]


def _execute(s: BuildSession, ref: StepRef, cid: str, bundle: str
             ) -> tuple[int, bytes, str | None]:
    """``<runtime> run`` in the foreground; stream output; (exit code, tail, runtime error)."""
    from berth.store.tmpclean import write_release
    from berth.testpoints import pause

    log = os.path.join(bundle, "runtime.log")
    argv = [*_runtime_argv(s, log), "run", "--bundle", bundle, cid]
    os.makedirs(s.runtime.root, mode=0o700, exist_ok=True)
    # if this process dies, the next berth command kills and deletes the container and
    # unmounts the workspace (berth.store.tmpclean), so nothing stays running or busy
    write_release(os.path.dirname(bundle), runtime=s.runtime.base(), container_id=cid,
                  cgroup=f"/berth/{cid}")
    tail: deque[bytes] = deque(maxlen=_TAIL_CHUNKS)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, close_fds=True)
    pause("build-run")
    try:
        assert p.stdout is not None
        while chunk := p.stdout.read1(65536):  # type: ignore[attr-defined]
            tail.append(chunk)
            s.progress.output(ref, chunk)
        code = p.wait()
    except BaseException:
        _kill(s, cid)
        p.kill()
        p.wait()
        raise
    finally:
        if p.stdout is not None:
            p.stdout.close()
    error = _runtime_error(log) if code != 0 else None
    if code != 0:
        _kill(s, cid)
    return code, b"".join(tail), error


def _kill(s: BuildSession, cid: str) -> None:
    """Make sure the step's container and runtime state are gone (error paths only)."""
    rt = s.runtime
    try:
        if os.path.exists(os.path.join(rt.root, cid)):
            rt.kill(cid, "SIGKILL", all=True)
    except BerthError:
        pass
    try:
        rt.delete(cid, force=True)
    except BerthError:
        pass


def _runtime_error(log: str) -> str | None:
    """The runtime's own error (it failed to start the process), if it logged one."""
    from berth.container.runtime import condense

    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    msgs = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            if line.strip():
                msgs.append(line.strip())
            continue
        if isinstance(rec, dict) and rec.get("level") in ("error", "fatal"):
            msgs.append(str(rec.get("msg", "")))
    return condense("\n".join(msgs)) if msgs else None


def leftovers(upper: str, lowers: list[str], below: Any, targets: set[str]) -> set[str]:
    """Relative paths in ``upper`` that exist only because of the step's mounts.

    A target the image did not have and that is an empty file/dir is a placeholder; so is
    each parent dir above it that the image did have (or did not), when nothing else in
    it changed and its mode and owner are the image's (only its mtime moved).
    """
    from berth.container.diff import placeholders

    skip = set(placeholders(upper, lowers, targets))
    for rel in sorted(skip, key=lambda r: -r.count("/")):
        parts = rel.split("/")[:-1]
        while parts:
            parent = "/".join(parts)
            if parent in skip or not _only_skipped(upper, parent, skip):
                break
            if below.has(tuple(parts)) and not _same_meta(upper, lowers, parts):
                break
            skip.add(parent)
            parts.pop()
    return skip


def _only_skipped(upper: str, rel: str, skip: set[str]) -> bool:
    path = os.path.join(upper, rel)
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            return False
        if os.getxattr(path, opaque_xattr(), follow_symlinks=False) == b"y":
            return False
    except OSError:
        pass
    try:
        return all(f"{rel}/{n}" in skip for n in os.listdir(path))
    except OSError:
        return False


def _same_meta(upper: str, lowers: list[str], parts: list[str]) -> bool:
    try:
        mine = os.lstat(os.path.join(upper, *parts))
    except OSError:
        return False
    for lower in lowers:
        try:
            theirs = os.lstat(os.path.join(lower, *parts))
        except OSError:
            continue
        return (mine.st_mode, mine.st_uid, mine.st_gid) == (
            theirs.st_mode, theirs.st_uid, theirs.st_gid)
    return False
