"""End-to-end checks of berth.container: overlay rootfs + spec + runtime + conmon.

Each test builds a busybox rootfs, mounts it through overlay, runs a container under
conmon with the runtime berth selects on this host, and tears everything down (runtime
state, conmon, mounts), so a failing test leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import shutil
import subprocess
import time
import uuid

import pytest

from berth.container import caps, monitor, rootfs, seccomp
from berth.container.logs import read_logs
from berth.container.runtime import select_runtime
from berth.container.spec import SpecOptions, build_spec
from berth.errors import CannotInvoke, CommandNotFound, InvalidArgument, RuntimeFailure

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
                                reason="needs root and busybox-static")

APPLETS = ("sh ls cat id hostname sleep true false echo seq mount grep head dd tr "
           "readlink wc yes printf kill").split()


@pytest.fixture(scope="module")
def lower(tmp_path_factory):
    root = tmp_path_factory.mktemp("lower")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "mnt", "root"):
        (root / d).mkdir()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for a in APPLETS:
        os.symlink("busybox", root / "bin" / a)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "bin" / "noexec").write_text("#!/bin/sh\necho hi\n")
    return str(root)


class Env:
    """One test's containers: tracks everything to delete in teardown."""

    def __init__(self, base, lower):
        self.base = str(base)
        self.lower = lower
        self.runroot = os.path.join(self.base, "run")
        self.rt = select_runtime(None, self.runroot)
        self.mounts: list[str] = []
        self.cids: list[str] = []
        self.handles: list[monitor.MonitorHandle] = []
        # conmon binds <socket_dir>/<id>/attach: keep it short
        self.sockdir = f"/tmp/bs-{uuid.uuid4().hex[:8]}"

    def rootfs(self, name):
        d = os.path.join(self.base, name)
        for sub in ("upper", "work", "merged"):
            os.makedirs(os.path.join(d, sub))
        target = os.path.join(d, "merged")
        rootfs.mount_overlay([self.lower], os.path.join(d, "upper"), os.path.join(d, "work"),
                             target)
        self.mounts.append(target)
        return target

    def paths(self, cid):
        d = os.path.join(self.base, cid)
        return monitor.MonitorPaths(bundle=os.path.join(d, "bundle"),
                                    log_path=os.path.join(d, "ctr.log"),
                                    exit_dir=os.path.join(self.base, "exits"),
                                    persist_dir=os.path.join(d, "persist"),
                                    socket_dir=self.sockdir)

    def prepare(self, args, patch=None, **kw):
        cid = "t" + uuid.uuid4().hex[:15]
        root = self.rootfs(cid)
        kw.setdefault("hostname", "box")
        kw.setdefault("cgroups_path", f"/berth-test/{cid}")
        spec = build_spec(SpecOptions(rootfs=root, args=args, **kw))
        if patch:
            patch(spec)
        paths = self.paths(cid)
        os.makedirs(paths.bundle, exist_ok=True)
        with open(os.path.join(paths.bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        self.cids.append(cid)
        return cid, paths, kw["cgroups_path"]

    def run(self, args, stdin=None, **kw):
        """Foreground non-tty run; returns (exit_code, stdout, stderr, oom, handle)."""
        cid, paths, cg = self.prepare(args, **kw)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        h, _ = monitor.run_attached(self.rt, cid, paths, stdout_fd=out_w, stderr_fd=err_w,
                                    stdin_fd=stdin, cgroups_path=cg)
        self.handles.append(h)
        os.close(out_w)
        os.close(err_w)
        out = _drain(out_r)
        err = _drain(err_r)
        code, _, oom = monitor.wait_exit(h, timeout=30)
        return code, out, err, oom, h

    def cleanup(self):
        for h in self.handles:
            monitor.kill_monitor(h)
        for cid in self.cids:
            try:
                self.rt.delete(cid, force=True)
            except Exception:
                pass
        for m in reversed(self.mounts):
            rootfs.unmount(m)
        shutil.rmtree(self.sockdir, ignore_errors=True)


def _drain(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks).decode()


@pytest.fixture
def env(tmp_path, lower):
    e = Env(tmp_path, lower)
    yield e
    e.cleanup()
    for m in e.mounts:
        assert not rootfs.is_mounted(m)
    leftover = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    for cid in e.cids:
        assert cid not in leftover
        assert e.rt.state(cid) is None


def test_runtime_selection_and_notice(tmp_path):
    rt = select_runtime(None, str(tmp_path))
    from berth.container import cgroups
    if cgroups.hybrid_v2_controllers():
        assert rt.name == "runc"
        assert rt.notice and "mount -t cgroup -o hugetlb" in rt.notice
        again = select_runtime(None, str(tmp_path))
        assert again.name == "runc" and again.notice is None  # said once
    assert rt.root == os.path.join(str(tmp_path), "runtime", rt.name)


def test_output_and_exit_codes(env):
    code, out, err, oom, h = env.run(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    assert (code, out, err, oom) == (3, "hello\n", "oops\n", False)
    logs = [(s, line) for s, _, line in read_logs(h.log_path)]
    assert logs == [("stdout", b"hello\n"), ("stderr", b"oops\n")]
    assert env.run(["true"])[0] == 0


def test_pid1_hostname_caps_masks(env):
    # /proc/kcore may not exist on a VM kernel: check the first masked file the host has
    masked = next(p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list",
                              "/proc/sched_debug") if os.path.exists(p))
    code, out, err, _, _ = env.run(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname;"
                                    " grep CapEff /proc/self/status; wc -c < " + masked])
    assert code == 0, (out, err)
    cmdline, host, capeff, kcore = out.splitlines()
    assert cmdline.startswith("sh -c cat /proc/1/cmdline")
    assert host == "box"
    assert caps.decode(int(capeff.split()[1], 16)) == set(caps.DEFAULT_CAPS)
    assert kcore.strip() == "0"


@pytest.mark.parametrize("profile", ["system", "bundled"])
def test_mount_refused(env, profile, monkeypatch):
    if profile == "bundled":
        monkeypatch.setattr(seccomp, "SYSTEM_PROFILE", "/nonexistent")
        seccomp._cache.clear()
    # mount is refused by the missing CAP_SYS_ADMIN as well; unshare(CLONE_NEWUSER) needs
    # no capability, so only the seccomp profile can refuse it
    _, out, err, _, _ = env.run(["sh", "-c", ("mount -t tmpfs x /tmp && echo MOUNTED;"
                                 " unshare -U true && echo USERNS")])
    seccomp._cache.clear()
    assert "MOUNTED" not in out and "USERNS" not in out
    assert "unshare(0x10000000): Operation not permitted" in err


def test_command_errors(env):
    with pytest.raises(CommandNotFound):
        env.run(["nosuchcmd"])
    with pytest.raises(CannotInvoke):
        env.run(["/etc/passwd"])


def test_detached_survives_and_kill_137(env, tmp_path):
    cid, paths, cg = env.prepare(["sleep", "100"])
    # start from a separate process that exits: conmon must keep the container
    script = (f"import json,sys; from berth.container import monitor, runtime;"
              f"rt=runtime.select_runtime(None,{env.runroot!r});"
              f"p=monitor.MonitorPaths(**json.loads(sys.argv[1]));"
              f"h=monitor.start_container(rt,{cid!r},p,cgroups_path={cg!r});"
              f"print(json.dumps(h.to_dict()))")
    out = subprocess.run([os.sys.executable, "-c", script, json.dumps(paths.__dict__)],
                         capture_output=True, text=True, check=True).stdout
    h = monitor.MonitorHandle.from_dict(json.loads(out))
    env.handles.append(h)
    time.sleep(0.3)
    assert env.rt.state(cid)["status"] == "running"
    assert monitor.wait_exit(h, timeout=0.2) is None
    rss = _rss_kib(h.conmon_pid)
    assert rss < 8 * 1024, f"conmon RSS {rss} KiB"
    env.rt.kill(cid, "KILL")
    code, finished, oom = monitor.wait_exit(h, timeout=10)
    assert code == 137 and not oom and finished <= time.time()


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_oom_detected(env):
    code, _, _, oom, _ = env.run(["sh", "-c", "yes | head -c 200000000 | tr -d x > /dev/null; "
                                  "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo done"],
                                 memory=32 << 20)
    assert code == 137
    assert oom


def test_pids_limit(env):
    code, out, err, _, _ = env.run(
        ["sh", "-c", "for i in $(seq 100); do sleep 5 & done; echo end"], pids_limit=20)
    assert "can't fork" in err or "Resource temporarily unavailable" in err


# Lists every directory the container's init holds open (and its cwd), their parents and
# what is 8 levels up, the host's / if the fd is a host directory: CVE-2024-21626 leaked
# a host fd (/sys/fs/cgroup) into the container, and from it the host's whole tree.
FD_PROBE = ("readlink /proc/1/cwd; for fd in /proc/1/fd/*; do ls -a \"$fd/\" \"$fd/../\" "
            "\"$fd/../../\" \"$fd/../../../../../../../../\" 2>/dev/null; done; echo probed")


def _host_only_root_names(lower: str) -> set[str]:
    """Names in the host's / that the test image's root does not have."""
    return set(os.listdir("/")) - set(os.listdir(lower)) - {"lost+found"}


def test_cwd_fd_escape_refused(env):
    """CVE-2024-21626: berth refuses a cwd through /proc/self/fd, and so does the runtime."""
    with pytest.raises(InvalidArgument):
        build_spec(SpecOptions(rootfs=env.lower, args=["true"], cwd="/proc/self/fd/7"))

    def patch(spec):
        spec["process"]["cwd"] = "/proc/self/fd/7"
    with pytest.raises(RuntimeFailure):
        env.run(["true"], patch=patch)


def test_no_host_directory_leaks_into_the_container(env):
    marker = "host-only-" + uuid.uuid4().hex
    open(os.path.join(env.base, marker), "w").close()
    code, out, err, _, _ = env.run(["sh", "-c", FD_PROBE])
    assert code == 0 and out.splitlines()[0] == "/" and out.endswith("probed\n"), err
    assert marker not in out
    assert not _host_only_root_names(env.lower) & set(out.split()), out


def test_fd_probe_detects_a_leaked_host_directory(env):
    """The probe above is not vacuous: given a host directory fd (as the runtime bug
    leaked one), it lists the host's files."""
    marker = "host-only-" + uuid.uuid4().hex
    open(os.path.join(env.base, marker), "w").close()
    cid, paths, _ = env.prepare(["sh", "-c", FD_PROBE])
    runtime = " ".join(shlex.quote(a) for a in env.rt.base())
    script = (f"exec 3<{shlex.quote(env.base)}; exec {runtime} run --preserve-fds 1 "
              f"--bundle {shlex.quote(paths.bundle)} {cid}")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                       check=False)
    assert marker in r.stdout, (r.stdout, r.stderr)
    assert _host_only_root_names(env.lower) <= set(r.stdout.split())  # the host's / too


def test_only_stdio_fds(env):
    code, out, _, _, _ = env.run(["ls", "/proc/self/fd"])
    assert code == 0
    fds = sorted(int(x) for x in out.split())
    assert fds in ([0, 1, 2], [0, 1, 2, 3])


def test_stdin_forwarded(env):
    r, w = os.pipe()
    os.write(w, b"from stdin\n")
    os.close(w)
    code, out, _, _, _ = env.run(["cat"], stdin=r)
    os.close(r)
    assert code == 0 and out == "from stdin\n"


def test_tty_through_pty(env, tmp_path):
    cid, paths, cg = env.prepare(["sh", "-c", "read line; echo got:$line; exit 4"],
                                 terminal=True)
    script = (f"import json,sys,os; from berth.container import monitor, runtime;"
              f"rt=runtime.select_runtime(None,{env.runroot!r});"
              f"p=monitor.MonitorPaths(**json.loads(sys.argv[1]));"
              f"h,d=monitor.run_attached(rt,{cid!r},p,stdin_fd=0,terminal=True,cgroups_path={cg!r});"
              f"c=monitor.wait_exit(h,timeout=20); sys.exit(c[0])")
    pid, master = pty.fork()
    if pid == 0:
        os.execv(os.sys.executable, [os.sys.executable, "-c", script, json.dumps(paths.__dict__)])
    env.handles.append(None)
    env.handles.pop()
    out = b""
    time.sleep(1.0)
    os.write(master, b"typed\r")
    deadline = time.time() + 20
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert b"got:typed" in out
    assert os.waitstatus_to_exitcode(status) == 4


def test_exec_through_conmon(env):
    cid, paths, cg = env.prepare(["sleep", "100"])
    h = monitor.start_container(env.rt, cid, paths, cgroups_path=cg)
    env.handles.append(h)
    spec = json.load(open(os.path.join(paths.bundle, "config.json")))
    proc = dict(spec["process"], args=["sh", "-c", "echo in-exec; hostname >&2; exit 5"])
    ep = env.paths(cid + "-exec")
    ep.exit_dir = os.path.join(env.base, "exec-exits")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    code = monitor.exec_process(env.rt, cid, proc, ep, stdout_fd=out_w, stderr_fd=err_w)
    os.close(out_w)
    os.close(err_w)
    assert (code, _drain(out_r), _drain(err_r)) == (5, "in-exec\n", "box\n")
    assert len(env.rt.ps(cid)) >= 1
    env.rt.kill(cid, "KILL")
    assert monitor.wait_exit(h, timeout=10)[0] == 137


@pytest.fixture(scope="module", autouse=True)
def _cgroup_parent_cleanup():
    # A run of this module killed from outside (SIGKILL of pytest) never reaches the env
    # teardown: its containers' processes (a `runc init` waiting to be started) would stay
    # in /berth-test/* forever. Whatever is there before the module starts is such a leftover.
    from berth.cgroupprocs import kill_cgroup, remove_cgroup

    kill_cgroup("/berth-test")
    remove_cgroup("/berth-test")
    yield
    base = "/sys/fs/cgroup"
    for ctrl in os.listdir(base):
        d = os.path.join(base, ctrl, "berth-test")
        if os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError:
                pass
    d = os.path.join(base, "berth-test")
    if os.path.isdir(d):
        try:
            os.rmdir(d)
        except OSError:
            pass
