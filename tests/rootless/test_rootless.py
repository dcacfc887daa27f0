"""Rootless berth as a real unprivileged user: paths, ID maps, errors, run and lifecycle."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

from rootless.rlusers import make_user, remove_user


def _sub_start(path: str, name: str) -> int:
    for line in open(path, encoding="utf-8"):
        n, start, _count = line.strip().split(":")
        if n == name:
            return int(start)
    raise AssertionError(f"{name} has no range in {path}")


def test_paths_info_and_id_maps(rootless_user):
    u = rootless_user
    p = u.berth("info", "--format", "json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["Rootless"] is True
    assert info["Root"] == u.store
    assert info["RunRoot"] == f"/tmp/berth-{u.uid}"   # no XDG_RUNTIME_DIR under runuser
    sub = _sub_start("/etc/subuid", u.name)
    assert info["IDMappings"]["UIDMap"] == [
        {"ContainerID": 0, "HostID": u.uid, "Size": 1},
        {"ContainerID": 1, "HostID": sub, "Size": 65535}]
    assert info["IDMappings"]["GIDMap"][1]["HostID"] == _sub_start("/etc/subgid", u.name)
    for d in (u.store, u.runroot):
        st = os.stat(d)
        assert st.st_uid == u.uid and stat.S_IMODE(st.st_mode) == 0o700, d
    text = u.berth("info").stdout
    assert "Rootless: true" in text and f"container 0 -> host {u.uid}" in text


def test_xdg_dirs_are_used(rootless_user):
    u = rootless_user
    xdg_run = os.path.join(u.home, "xdgrun")
    assert u.sh(f"mkdir -m 700 {xdg_run}").returncode == 0
    p = u.berth("info", "--format", "{{.Root}} {{.RunRoot}}",
                env={"XDG_DATA_HOME": f"{u.home}/data", "XDG_RUNTIME_DIR": xdg_run})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [f"{u.home}/data/berth", f"{xdg_run}/berth"]
    os.kill(int(open(f"{xdg_run}/berth/pause.pid").read().split()[0]), 9)


def test_missing_subuid_range_is_one_clear_line():
    u = make_user(subids=False)
    try:
        p = u.berth("images")
        assert p.returncode == 125
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
        assert p.stderr.startswith("Error: no subordinate UID range for user "
                                   f"{u.name} in /etc/subuid")
        with open("/etc/subuid", "a", encoding="utf-8") as f:  # too small a range
            f.write(f"{u.name}:900000000:1000\n")
        p = u.berth("images")
        assert p.returncode == 125 and "/etc/subuid has 1000 IDs, 65535 are needed" in p.stderr
    finally:
        assert remove_user(u) == []
        subprocess_sed(u.name)


def subprocess_sed(name: str) -> None:

    for f in ("/etc/subuid", "/etc/subgid"):
        subprocess.run(["sed", "-i", f"/^{name}:/d", f], check=False)


def test_layers_unpack_with_mapped_owners(rootless_user):
    """A layer file owned by container uid 1000 is owned by subuid+999 on the host."""
    u = rootless_user
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, uid in (("rootfile", 0), ("userfile", 1000)):
            ti = tarfile.TarInfo(name)
            ti.uid = ti.gid = uid
            ti.size = 2
            tf.addfile(ti, io.BytesIO(b"x\n"))
    p = u.berth("import", "-", "owners", input=buf.getvalue())
    assert p.returncode == 0, p.stderr
    layers = os.path.join(u.store, "layers")
    [diff] = [os.path.join(layers, d, "diff") for d in os.listdir(layers)
              if os.path.exists(os.path.join(layers, d, "diff", "userfile"))]
    sub = _sub_start("/etc/subuid", u.name)
    assert os.stat(f"{diff}/rootfile").st_uid == u.uid
    assert os.stat(f"{diff}/userfile").st_uid == sub + 999


def test_run_as_plain_user(rootless_busybox):
    u = rootless_busybox
    p = u.berth("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                "id -u; cat /proc/self/uid_map; ip -o link | wc -l")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(u.uid), "1"]
    assert lines[3].strip() == "1"   # --network none: only lo
    p = u.berth("run", "--rm", "--network", "host", "busybox", "sh", "-c",
                "ls /sys/class/net; exit 3")
    assert p.returncode == 3, p.stderr
    seen = set(p.stdout.split()) - {"lo"}  # the host's links (others' tests add some)
    assert seen and seen & set(os.listdir("/sys/class/net"))
    assert u.berth("ps", "-aq").stdout == ""


def test_opaque_dirs_and_whiteouts_commit(rootless_busybox):
    """Deleting lower files and dirs works (userxattr overlay) and commits as such."""
    u = rootless_busybox
    p = u.berth("run", "--name", "cc", "--network", "none", "busybox", "sh", "-c",
                "rm -rf /sbin && mkdir /sbin && touch /sbin/new && rm /bin/ls")
    assert p.returncode == 0, p.stderr
    assert u.berth("commit", "cc", "img2").returncode == 0
    p = u.berth("run", "--rm", "--network", "none", "img2", "sh", "-c",
                "ls /sbin; test -e /bin/ls && echo still")
    assert p.stdout == "new\n", p.stderr
    assert u.berth("rm", "cc").returncode == 0


def test_lifecycle(rootless_busybox):
    u = rootless_busybox
    p = u.berth("run", "-d", "--name", "bg", "--network", "none", "busybox", "sh", "-c",
                "echo hello; trap 'exit 0' TERM; while true; do sleep 0.1; done")
    assert p.returncode == 0, p.stderr
    assert "bg" in u.berth("ps").stdout
    p = u.berth("exec", "bg", "sh", "-c", "echo in; id -u")
    assert p.stdout == "in\n0\n", p.stderr
    for _ in range(50):
        if u.berth("logs", "bg").stdout == "hello\n":
            break
    assert u.berth("logs", "bg").stdout == "hello\n"
    assert u.berth("stop", "bg").returncode == 0
    assert "Exited (0)" in u.berth("ps", "-a").stdout
    assert u.berth("rm", "bg").returncode == 0
    assert u.berth("ps", "-aq").stdout == ""


@pytest.mark.parametrize("flags,named", [(["-m", "64m"], "--memory"),
                                          (["--cpus", "1"], "--cpus"),
                                          (["--pids-limit", "10"], "--pids-limit"),
                                          (["--cpuset-cpus", "0"], "--cpuset-cpus")])
def test_limits_refused_with_reason(rootless_busybox, flags, named):
    u = rootless_busybox
    p = u.berth("run", "--rm", "--network", "none", *flags, "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.startswith(f"Error: {named} cannot be applied: rootless containers need "
                               "a delegated cgroup v2 subtree, and this host has cgroup v1")
    assert u.berth("ps", "-aq").stdout == ""


def test_user_networks_refused(rootless_busybox):
    p = rootless_busybox.berth("run", "--rm", "--network", "mynet", "busybox", "true")
    assert p.returncode == 125
    assert 'network "mynet" is not available rootless yet' in p.stderr
    assert rootless_busybox.berth("ps", "-aq").stdout == ""


def test_build_with_run_step(rootless_busybox):
    """RUN steps run rootless; a chown to container uid 1000 lands in the layer."""
    u = rootless_busybox
    ctx = os.path.join(u.home, "ctx")
    df = ("FROM busybox\nRUN echo hi > /hello && mkdir /home/bob && touch /home/bob/f "
          "&& chown -R 1000:1000 /home/bob\nRUN ls /sys/class/net > /nets\nCOPY a /a\n")
    assert u.sh(f"mkdir {ctx} && printf '{df}' > {ctx}/Dockerfile && echo A > {ctx}/a"
                ).returncode == 0
    p = u.berth("build", "-t", "built", ctx)
    assert p.returncode == 0, p.stderr
    p = u.berth("run", "--rm", "--network", "none", "built", "sh", "-c",
                "cat /hello /a; stat -c %u /home/bob/f")
    assert p.stdout == "hi\nA\n1000\n", p.stderr
    # RUN had its own network namespace (pasta's one link, not the host's links)
    from berth.rootless.pasta import usable

    nets = u.berth("run", "--rm", "--network", "none", "built", "cat", "/nets").stdout.split()
    if usable() is None:
        assert len(nets) == 2 and "lo" in nets, nets
        assert os.listdir(os.path.join(u.runroot, "netns")) == []


def test_push_and_pull_with_own_registry(rootless_busybox):
    """``registry serve`` on an unprivileged port, push, remove, pull back, run."""

    u = rootless_busybox
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = subprocess.Popen(["runuser", "-u", u.name, "--", "env", "-i", f"HOME={u.home}",
                            sys.executable, "-m", "berth", "registry", "serve", "--addr",
                            f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, cwd="/")
    try:
        ref = f"127.0.0.1:{port}/bb:1"
        assert u.berth("tag", "busybox", ref).returncode == 0
        for _ in range(100):
            p = u.berth("push", ref)
            if p.returncode == 0:
                break
            time.sleep(0.1)
        assert p.returncode == 0, p.stderr
        assert u.berth("rmi", ref, "busybox").returncode == 0
        p = u.berth("pull", ref)
        assert p.returncode == 0, p.stderr
        p = u.berth("run", "--rm", "--network", "none", ref, "echo", "pulled")
        assert p.stdout == "pulled\n", p.stderr
    finally:
        for pid in [int(x) for x in subprocess.run(["pgrep", "-P", str(reg.pid)],
                                                   capture_output=True, text=True
                                                   ).stdout.split()]:
            os.kill(pid, 15)
        reg.wait(10)


def test_volumes_and_cp(rootless_busybox):
    u = rootless_busybox
    assert u.berth("volume", "create", "v1").returncode == 0
    p = u.berth("run", "--rm", "--network", "none", "-v", "v1:/data", "busybox", "sh", "-c",
                "echo vol > /data/x && chown 1000 /data/x")
    assert p.returncode == 0, p.stderr
    p = u.berth("run", "--rm", "--network", "none", "-v", "v1:/data", "busybox", "sh", "-c",
                "cat /data/x; stat -c %u /data/x")
    assert p.stdout == "vol\n1000\n", p.stderr
    assert u.berth("run", "-d", "--name", "cpc", "--network", "none", "busybox", "sleep",
                   "60").returncode == 0
    assert u.sh(f"echo hostfile > {u.home}/src").returncode == 0
    p = u.berth("cp", f"{u.home}/src", "cpc:/dst")
    assert p.returncode == 0, p.stderr
    assert u.berth("exec", "cpc", "cat", "/dst").stdout == "hostfile\n"
    p = u.berth("cp", "cpc:/dst", f"{u.home}/back")
    assert p.returncode == 0, p.stderr
    assert os.stat(f"{u.home}/back").st_uid == u.uid
    assert u.berth("rm", "-f", "cpc").returncode == 0
    assert u.berth("volume", "rm", "v1").returncode == 0


def test_default_network_is_pasta_with_published_port(rootless_busybox):
    """``-p HOSTPORT:PORT`` reaches a server in the container; ports < 1024 are refused."""

    from berth.rootless.pasta import usable

    if usable() is not None:
        pytest.skip(f"pasta unusable here: {usable()}")
    u = rootless_busybox
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = u.berth("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c",
                "mkdir /w && echo hello-pasta > /w/index.html && httpd -f -p 80 -h /w")
    assert p.returncode == 0, p.stderr
    body = b""
    for _ in range(100):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    assert body == b"hello-pasta\n"
    assert u.berth("port", "web").stdout.startswith(f"80/tcp -> 0.0.0.0:{port}\n")
    assert f"0.0.0.0:{port}->80/tcp" in u.berth("ps").stdout
    p = u.berth("exec", "web", "sh", "-c", "ip -o -4 addr show eth0 | wc -l; ip route")
    assert p.stdout.startswith("1\ndefault via "), p.stderr
    assert u.berth("rm", "-f", "web").returncode == 0
    assert os.listdir(os.path.join(u.runroot, "netns")) == []   # netns and pasta gone
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    p = u.berth("run", "--rm", "-p", "80:80", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr == ("Error: cannot publish host port 80 rootless: ports below 1024 need "
                        "root (net.ipv4.ip_unprivileged_port_start=1024)\n")
    p = u.berth("run", "--rm", "busybox", "sh", "-c", "ip -o link | grep -c eth0")
    assert p.stdout == "1\n", p.stderr
    assert os.listdir(os.path.join(u.runroot, "netns")) == []


def test_fuse_overlayfs_fallback_runs_containers(rootless_busybox):
    """Forced fallback (the kernel here allows overlay in a user namespace)."""
    if not os.access("/dev/fuse", os.R_OK | os.W_OK) or \
            os.stat("/dev/fuse").st_mode & 0o006 != 0o006:
        pytest.skip("/dev/fuse is not usable by other users here (make test sets 0666)")
    u = rootless_busybox
    p = u.berth("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                "grep ' / ' /proc/mounts | cut -d' ' -f3; rm -rf /sbin && mkdir /sbin && "
                "ls /sbin | wc -l; rm /bin/ls && test ! -e /bin/ls && echo gone",
                env={"BERTH_OVERLAY": "fuse-overlayfs"})
    assert p.stdout == "fuse.fuse-overlayfs\n0\ngone\n", p.stderr
    assert u.berth("ps", "-aq").stdout == ""


def test_first_commands_race_to_one_namespace(rootless_user):
    """Concurrent first commands make one pause process; a dead one is replaced."""

    u = rootless_user
    argv = ["runuser", "-u", u.name, "--", "env", "-i", f"HOME={u.home}", sys.executable,
            "-m", "berth", "info", "--format", "{{.Rootless}}"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o[0] for o in outs] == [b"true\n"] * 4, outs
    pauses = [p for p in u.pids() if b"catatonit" in open(f"/proc/{p}/cmdline", "rb").read()]
    assert len(pauses) == 1
    os.kill(pauses[0], 9)
    for _ in range(50):
        if pauses[0] not in u.pids():
            break
    
        time.sleep(0.05)
    p = u.berth("info", "--format", "{{.Rootless}}")
    assert p.stdout == "true\n", p.stderr
    new = int(open(os.path.join(u.runroot, "pause.pid")).read().split()[0])
    assert new != pauses[0]


def test_top_lists_only_the_container_and_stats_say_why_not(rootless_busybox):
    """No cgroup per container: ``top`` uses the container's pid namespace, not the host's."""
    u = rootless_busybox
    assert u.berth("run", "-d", "--name", "tp", "--network", "none", "busybox", "sleep",
                   "60").returncode == 0
    p = u.berth("top", "tp")
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()[1:]
    assert len(rows) == 1 and rows[0].endswith("sleep 60"), p.stdout
    assert u.berth("exec", "-d", "tp", "sleep", "61").returncode == 0
    for _ in range(50):
        rows = u.berth("top", "tp").stdout.splitlines()[1:]
        if len(rows) == 2:
            break
        time.sleep(0.1)
    assert sorted(r.rsplit(" ", 1)[1] for r in rows) == ["60", "61"]
    p = u.berth("stats", "--no-stream", "tp")
    assert p.returncode == 1
    assert p.stderr == ("Error: stats need the container's cgroup, and rootless containers "
                        "have none on this host (no delegated cgroup v2 subtree)\n")
    assert u.berth("rm", "-f", "tp").returncode == 0


def test_root_image_moves_to_the_user_by_save_and_load(rootless_user, berth, busybox_image):
    """Stores are separate; ``save | load`` carries an image from root's to the user's."""
    assert berth("images", "-q").stdout.strip()  # root's store (the berth_env fixture's)
    p = subprocess.run([sys.executable, "-m", "berth", "save", "busybox"],
                       capture_output=True, check=True)
    u = rootless_user
    assert u.berth("images", "-q").stdout == ""   # root's image is not in the user's store
    load = u.berth("load", input=p.stdout)
    assert load.returncode == 0, load.stderr
    r = u.berth("run", "--rm", "--network", "none", "busybox", "echo", "moved")
    assert r.stdout == "moved\n", r.stderr


def test_engine_api_rootless_with_the_docker_cli(rootless_busybox):
    """``system service`` as the user; the real docker CLI runs containers through it."""
    import shutil

    if not shutil.which("docker"):
        pytest.skip("docker CLI not installed")
    u = rootless_busybox
    svc = subprocess.Popen(["runuser", "-u", u.name, "--", "env", "-i", f"HOME={u.home}",
                            sys.executable, "-m", "berth", "system", "service", "--timeout",
                            "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    sock = f"{u.runroot}/docker.sock"
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        docker = ["runuser", "-u", u.name, "--", "env", "-i", f"HOME={u.home}",
                  f"DOCKER_HOST=unix://{sock}", "docker"]
        p = subprocess.run([*docker, "run", "--rm", "--network", "none", "busybox", "sh",
                            "-c", "echo api-ok; id -u"], capture_output=True, text=True,
                           timeout=60)
        assert p.stdout == "api-ok\n0\n", p.stderr
        p = subprocess.run([*docker, "info", "--format", "{{.DockerRootDir}}"],
                           capture_output=True, text=True, timeout=60)
        assert p.stdout.strip() == u.store, p.stderr
    finally:
        for pid in [int(x) for x in subprocess.run(["pgrep", "-P", str(svc.pid)],
                                                   capture_output=True, text=True
                                                   ).stdout.split()]:
            os.kill(pid, 15)
        svc.wait(10)
