"""The real docker CLI 20.10 (Debian's docker.io) driving berth's service."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest
from tests.api.conftest import DOCKER


def test_run_rm_exit_code_and_streams(docker, berth):
    p = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4",
               check=False)
    assert (p.returncode, p.stdout, p.stderr) == (4, "out\n", "err\n")
    assert berth("ps", "-aq").stdout == ""  # --rm removed it


def test_stdin_piped(docker):
    p = docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done",
               input="piped\n")
    assert p.stdout == "piped\ndone\n"


def test_detached_logs_exec_cp_inspect_top(docker, berth, tmp_path):
    cid = docker("run", "-d", "--name", "web", "-l", "k=v", "busybox", "sh", "-c",
                 "echo started; while sleep 0.1; do :; done").stdout.strip()
    assert len(cid) == 64
    # the CLI sees what the API made, and the other way round
    assert "web" in berth("ps").stdout
    assert "web" in docker("ps", "--filter", "label=k=v", "--format", "{{.Names}}").stdout
    for _ in range(50):
        if "started" in docker("logs", "web").stdout:
            break
        time.sleep(0.1)
    assert docker("logs", "web").stdout == "started\n"
    assert docker("logs", "--since", "2100-01-01T00:00:00Z", "web").stdout == ""
    assert docker("logs", "-t", "web").stdout.endswith("Z started\n")
    p = docker("exec", "web", "sh", "-c", "echo hi; echo oops >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "hi\n", "oops\n")
    src = tmp_path / "f.txt"
    src.write_text("payload")
    docker("cp", str(src), "web:/tmp/")
    assert docker("exec", "web", "cat", "/tmp/f.txt").stdout == "payload"
    docker("cp", "web:/tmp/f.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "payload"
    state = json.loads(docker("inspect", "web").stdout)[0]
    assert state["Id"] == cid and state["State"]["Running"] is True
    assert state["Config"]["Labels"]["k"] == "v"
    assert "sleep" in docker("top", "web").stdout
    docker("stop", "-t", "1", "web")
    assert docker("inspect", "-f", "{{.State.Status}}", "web").stdout.strip() == "exited"
    docker("rm", "web")
    assert berth("ps", "-aq").stdout == ""


def test_logs_follow_streams_until_exit(docker, service):
    docker("run", "-d", "--name", "talk", "busybox", "sh", "-c",
           "for i in 1 2 3; do echo line$i; sleep 0.3; done")
    p = subprocess.run([DOCKER, "logs", "-f", "talk"], capture_output=True, text=True,
                       timeout=30, env=docker.env())
    assert p.stdout == "line1\nline2\nline3\n"


def _read_pty(fd: int, deadline: float, until: bytes | None = None) -> bytes:
    """What a pty's far side prints: up to ``until`` (or more), else to its end (the
    process closed it); never past ``deadline``."""
    out = b""
    while time.monotonic() < deadline and (until is None or until not in out):
        if not select.select([fd], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the far side is gone
            break
        if not chunk:
            break
        out += chunk
    return out


def test_run_it_through_a_pty(docker):
    """``docker run -it``: a real terminal, raw mode, the container's tty."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(DOCKER, [DOCKER, "run", "--rm", "-it", "busybox", "sh"], docker.env())
    out = b""
    try:
        os.write(fd, b"tty; echo mark$((40+2))\r")
        deadline = time.monotonic() + 30
        out += _read_pty(fd, deadline, until=b"mark42")
        os.write(fd, b"exit 7\r")
        out += _read_pty(fd, deadline)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"/dev/pts/0" in out and b"mark42" in out
    assert os.waitstatus_to_exitcode(status) == 7


def test_exec_it_through_a_pty(docker):
    docker("run", "-d", "--name", "box", "busybox", "sleep", "60")
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(DOCKER, [DOCKER, "exec", "-it", "box", "sh", "-c",
                           "tty; read x; echo got$x"], docker.env())
    out = b""
    deadline = time.monotonic() + 30
    try:
        out += _read_pty(fd, deadline, until=b"/dev/pts")
        os.write(fd, b"abc\r")
        out += _read_pty(fd, deadline)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"gotabc" in out
    assert os.waitstatus_to_exitcode(status) == 0
    docker("rm", "-f", "box")


def test_build_images_and_system_df(docker, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY msg /msg\nCMD cat /msg\n")
    (ctx / "msg").write_text("from the context\n")
    p = docker("build", "-t", "mine:1", str(ctx))
    assert "Successfully tagged mine:1" in p.stdout
    assert docker("run", "--rm", "mine:1").stdout == "from the context\n"
    assert "mine" in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    iid = docker("build", "-q", str(ctx)).stdout.strip()
    assert iid.startswith("sha256:")
    df = docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
    assert "Images 2" in df
    hist = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "mine:1").stdout
    assert "COPY" in hist or "msg" in hist
    assert json.loads(docker("image", "inspect", "mine:1").stdout)[0]["Config"]["Cmd"] == [
        "/bin/sh", "-c", "cat /msg"]
    saved = tmp_path / "mine.tar"
    docker("save", "-o", str(saved), "mine:1")
    docker("rmi", "mine:1")
    assert "mine" not in docker("images").stdout
    assert "Loaded image: mine:1" in docker("load", "-i", str(saved)).stdout
    assert docker("run", "--rm", "mine:1").stdout == "from the context\n"


def test_prunes(docker):
    docker("run", "--name", "gone", "busybox", "true")
    docker("volume", "create", "loose")
    docker("network", "create", "loosenet")
    assert docker("container", "prune", "-f").stdout.startswith("Deleted Containers:")
    assert docker("ps", "-aq").stdout == ""
    assert "loose" in docker("volume", "prune", "-f", "--filter", "all=1").stdout
    assert "loosenet" in docker("network", "prune", "-f").stdout
    docker("tag", "busybox", "extra:1")
    docker("rmi", "busybox")  # extra:1 still names it: untag only
    assert "busybox" not in docker("images", "--format", "{{.Repository}}").stdout
    assert "extra" in docker("images", "--format", "{{.Repository}}").stdout


def test_volumes_and_networks(docker):
    docker("volume", "create", "--label", "a=b", "data")
    assert docker("volume", "ls", "-q").stdout.split() == ["data"]
    docker("network", "create", "appnet")
    docker("run", "-d", "--name", "srv", "--network", "appnet", "-v", "data:/data",
           "busybox", "sh", "-c", "echo kept > /data/f; sleep 60")
    p = docker("run", "--rm", "--network", "appnet", "busybox", "ping", "-c", "1", "-W", "5",
               "srv", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    nets = json.loads(docker("network", "inspect", "appnet").stdout)[0]
    assert nets["Name"] == "appnet"
    docker("network", "create", "side")
    docker("network", "connect", "--alias", "db", "side", "srv")
    p = docker("run", "--rm", "--network", "side", "busybox", "ping", "-c", "1", "-W", "5",
               "db", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    docker("network", "disconnect", "side", "srv")
    nets = json.loads(docker("inspect", "srv").stdout)[0]["NetworkSettings"]["Networks"]
    assert "side" not in nets and "appnet" in nets
    docker("network", "rm", "side")
    docker("rm", "-f", "srv")
    assert docker("run", "--rm", "-v", "data:/data", "busybox", "cat",
                  "/data/f").stdout == "kept\n"
    docker("network", "rm", "appnet")
    docker("volume", "rm", "data")
    assert docker("volume", "ls", "-q").stdout == ""


def test_events_from_cli_and_api(docker, berth):
    since = str(int(time.time()) - 1)
    berth("create", "--name", "fromcli", "busybox", "true", check=True)
    docker("run", "--name", "fromapi", "busybox", "true")
    until = str(int(time.time()) + 1)
    out = docker("events", "--since", since, "--until", until, "--format",
                 "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").stdout.splitlines()
    assert "container create fromcli" in out
    assert "container create fromapi" in out
    assert "container start fromapi" in out
    assert "container die fromapi" in out
    cli = berth("events", "--since", since, "--until", until, "--filter",
                "container=fromapi", "--format", "{{.Action}}").stdout.split()
    assert cli[:3] == ["create", "start", "die"]


def test_events_stream_live(docker, berth):
    """``docker events`` follows: an event written by the berth CLI reaches it."""
    live = subprocess.Popen([DOCKER, "events", "--filter", "type=volume", "--format",
                             "{{.Action}} {{.Actor.ID}}"], env=docker.env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        berth("volume", "create", "livevol", check=True)
        ready = select.select([live.stdout], [], [], 20)[0]
        assert ready, "no event arrived"
        assert live.stdout.readline().strip() == "create livevol"  # type: ignore[union-attr]
    finally:
        live.terminate()
        live.wait()


def test_swarm_and_search_answer_like_docker(docker):
    p = docker("service", "ls", check=False)
    assert p.returncode != 0 and "not a swarm manager" in p.stderr
    p = docker("search", "busybox", check=False)
    assert p.returncode != 0 and "no index service" in p.stderr


@pytest.mark.interop
def test_push_pull_login_against_local_registry(docker, tmp_path):
    import shutil
    import socket

    if not shutil.which("docker-registry"):
        pytest.fail("docker-registry missing: run ./scripts/apt-ensure docker-registry")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(b"alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)) + b"\n")
    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"""version: 0.1
storage:
  filesystem:
    rootdirectory: {tmp_path}/reg
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: test
    path: {htpasswd}
""")
    reg = subprocess.Popen(["docker-registry", "serve", str(cfg)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        host = f"127.0.0.1:{port}"
        p = docker("login", "-u", "alice", "--password-stdin", host, input="wrong",
                   check=False)
        assert p.returncode != 0
        docker("login", "-u", "alice", "--password-stdin", host, input="secret")
        docker("tag", "busybox", f"{host}/team/bb:1")
        p = docker("push", f"{host}/team/bb:1")
        assert "digest: sha256:" in p.stdout
        docker("rmi", f"{host}/team/bb:1")
        p = docker("pull", f"{host}/team/bb:1")
        assert "Downloaded newer image" in p.stdout
        assert docker("run", "--rm", f"{host}/team/bb:1", "echo", "ok").stdout == "ok\n"
        # a missing image is a 404 on create; the docker CLI pulls it and retries
        docker("rmi", f"{host}/team/bb:1")
        p = docker("run", "--rm", f"{host}/team/bb:1", "echo", "again")
        assert p.stdout == "again\n" and "Unable to find image" in p.stderr
    finally:
        reg.terminate()
        reg.wait()



def test_create_flags_round_trip_through_inspect(docker):
    docker("create", "--name", "flags", "-e", "A=1", "-w", "/tmp", "-u", "1000",
           "--restart", "on-failure:2", "--cap-add", "NET_ADMIN", "--memory", "64m",
           "--init", "--read-only", "--tmpfs", "/run", "--add-host", "h:10.1.2.3",
           "--stop-signal", "SIGINT", "-p", "127.0.0.1::80", "busybox", "sleep", "5")
    c = json.loads(docker("inspect", "flags").stdout)[0]
    hc, cfg = c["HostConfig"], c["Config"]
    assert "A=1" in cfg["Env"] and cfg["WorkingDir"] == "/tmp" and cfg["User"] == "1000"
    assert cfg["StopSignal"] == "SIGINT" and cfg["Cmd"] == ["sleep", "5"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert hc["CapAdd"] == ["NET_ADMIN"] and hc["Memory"] == 64 << 20
    assert hc["Init"] is True and hc["ReadonlyRootfs"] is True
    assert hc["ExtraHosts"] == ["h:10.1.2.3"] and "/run" in hc["Tmpfs"]
    assert hc["PortBindings"]["80/tcp"][0]["HostIp"] == "127.0.0.1"
    docker("rm", "flags")


def test_healthcheck_through_the_api(docker):
    docker("run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok",
           "--health-interval", "200ms", "--health-retries", "1", "busybox", "sh", "-c",
           "sleep 1; touch /tmp/ok; sleep 60")
    cfg = json.loads(docker("inspect", "hc").stdout)[0]["Config"]["Healthcheck"]
    assert cfg["Test"] == ["CMD-SHELL", "test -e /tmp/ok"] and cfg["Interval"] == 200_000_000
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", "hc").stdout.strip()
        if status == "healthy":
            break
        time.sleep(0.3)
    assert status == "healthy"
    docker("rm", "-f", "hc")
