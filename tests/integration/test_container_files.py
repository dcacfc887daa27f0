"""cp, diff, export, stats, top and commit against real containers (runc, overlay, conmon).

Containers are made through the Engine (fast); the commands under test run through the
CLI in a subprocess, where Docker's output, streams and exit codes are what matter.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time

import pytest

from berth.container.create_options import CreateOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
                                reason="needs root and busybox-static")

SETUP = ("echo hello > /hello; rm /etc/group; mkdir -p /data/sub; echo deep > /data/sub/f; "
         "echo top > /data/top; chown 123:456 /data/top; ln -s /etc /data/etclink; ")


def start(engine, name: str, script: str = SETUP + "exec sleep 300", image: str = "busybox"):  # type: ignore[no-untyped-def]
    rec, _ = engine.container_run(CreateOptions(
        network="none", image=image, command=["sh", "-c", script], name=name, detach=True))
    deadline = time.time() + (10 if "etclink" in script else 0)
    while time.time() < deadline:  # the setup script has run once /data/top is there
        if os.path.exists(os.path.join(rec.merged, "data", "etclink")):
            break
        time.sleep(0.05)
    return engine.container(name)


def run_fg(engine, image: str, script: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run a container in the foreground; (exit code, output)."""
    r, w = os.pipe()
    try:
        _, code = engine.container_run(
            CreateOptions(network="none", image=image, command=["sh", "-c", script],
                          auto_remove=True),
            stdout_fd=w, stderr_fd=w)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        return code, f.read().decode()


@pytest.fixture
def ctr(engine, busybox_image):  # type: ignore[no-untyped-def]
    return start(engine, "c1")


def cli(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "berth", *args], input=input,
                          capture_output=True, timeout=120)


# -- cp ----------------------------------------------------------------------------------------

def test_cp_out_file_dir_and_contents(ctr, tmp_path):  # type: ignore[no-untyped-def]
    r = cli("cp", "c1:/hello", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "h").read_text() == "hello\n"
    assert cli("cp", "c1:/data", str(tmp_path)).returncode == 0  # dir into existing dir
    assert (tmp_path / "data" / "sub" / "f").read_text() == "deep\n"
    assert os.readlink(tmp_path / "data" / "etclink") == "/etc"  # links copied as links
    assert os.stat(tmp_path / "data" / "top").st_uid == os.getuid()  # invoking user owns
    assert cli("cp", "c1:/data/.", str(tmp_path / "new")).returncode == 0  # dir to new name
    assert sorted(os.listdir(tmp_path / "new")) == ["etclink", "sub", "top"]
    (tmp_path / "exists").mkdir()
    assert cli("cp", "c1:data/.", str(tmp_path / "exists")).returncode == 0  # contents
    assert sorted(os.listdir(tmp_path / "exists")) == ["etclink", "sub", "top"]
    assert cli("cp", "-a", "c1:/data/top", str(tmp_path / "owned")).returncode == 0
    assert os.stat(tmp_path / "owned").st_uid == 123
    assert cli("cp", "-L", "c1:/data/etclink", str(tmp_path / "etc")).returncode == 0
    assert (tmp_path / "etc" / "passwd").read_text().startswith("root:x:0:0")


def test_cp_out_to_stdout_is_a_tar(ctr):  # type: ignore[no-untyped-def]
    r = cli("cp", "c1:/data", "-")
    assert r.returncode == 0, r.stderr
    names = tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()
    assert names[0] == "data" and "data/sub/f" in names


def test_cp_in_file_dir_and_stdin(ctr, tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "x").write_text("x")
    (src / "file").write_text("f")
    os.chown(src / "file", 1000, 1000)
    assert cli("cp", str(src / "file"), "c1:/tmp/").returncode == 0
    assert cli("cp", str(src / "file"), "c1:/renamed").returncode == 0
    assert cli("cp", str(src), "c1:/newdir").returncode == 0
    assert cli("cp", "-a", str(src / "file"), "c1:/kept").returncode == 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("streamed")
        ti.size, ti.uid = 3, 77
        t.addfile(ti, io.BytesIO(b"abc"))
    assert cli("cp", "-", "c1:/tmp", input=buf.getvalue()).returncode == 0
    merged = ctr.merged
    assert open(f"{merged}/tmp/file").read() == "f"
    assert os.stat(f"{merged}/tmp/file").st_uid == 0  # the container's root owns it
    assert os.stat(f"{merged}/kept").st_uid == 1000  # -a keeps the source owner
    assert open(f"{merged}/renamed").read() == "f"
    assert open(f"{merged}/newdir/inner/x").read() == "x"
    assert open(f"{merged}/tmp/streamed").read() == "abc"
    assert os.stat(f"{merged}/tmp/streamed").st_uid == 0


def test_cp_errors(ctr, tmp_path):  # type: ignore[no-untyped-def]
    r = cli("cp", "c1:/nope", str(tmp_path / "x"))
    assert r.returncode == 1 and b"Could not find the file /nope in container c1" in r.stderr
    (tmp_path / "file").write_text("f")
    r = cli("cp", "c1:/data", str(tmp_path / "file"))
    assert r.returncode == 1 and b"cannot overwrite non-directory" in r.stderr
    r = cli("cp", "c1:/hello", str(tmp_path / "missing") + "/")
    assert r.returncode == 1 and b"must exist" in r.stderr
    assert cli("cp", "nosuch:/x", str(tmp_path)).returncode == 1
    r = cli("cp", str(tmp_path), str(tmp_path))
    assert r.returncode == 1 and b"must specify at least one container" in r.stderr
    r = cli("cp", "a:/x", "b:/y")
    assert r.returncode == 1 and b"not supported" in r.stderr


def test_cp_stopped_container(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    engine.container_run(CreateOptions(network="none", image="busybox", name="done",
                                       command=["sh", "-c", "echo bye > /bye"]),
                         stdout_fd=2, stderr_fd=2)
    assert engine.container("done").status == "exited"
    assert cli("cp", "done:/bye", str(tmp_path / "bye")).returncode == 0
    assert (tmp_path / "bye").read_text() == "bye\n"
    (tmp_path / "in").write_text("in")
    assert cli("cp", str(tmp_path / "in"), "done:/in").returncode == 0


# -- diff / export -----------------------------------------------------------------------------

def test_diff(ctr):  # type: ignore[no-untyped-def]
    r = cli("diff", "c1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    for want in ("A /hello", "C /etc", "D /etc/group", "A /data", "A /data/sub/f"):
        assert want in lines
    assert lines == sorted(lines, key=lambda line: line[2:])
    assert not any(line.endswith(("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"))
                   for line in lines)
    assert cli("diff", "nope").returncode == 1


def test_export_stdout_and_file(ctr, tmp_path):  # type: ignore[no-untyped-def]
    r = cli("export", "c1")
    assert r.returncode == 0, r.stderr
    names = set(tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames())
    assert {"bin/busybox", "hello", "data/sub/f", "etc/passwd"} <= names
    assert "etc/group" not in names
    out = tmp_path / "c1.tar"
    assert cli("export", "-o", str(out), "c1").returncode == 0
    assert set(tarfile.open(out).getnames()) == names
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []
    r = cli("export", "-o", str(tmp_path / "no" / "dir.tar"), "c1")
    assert r.returncode == 1 and not (tmp_path / "no").exists()


# -- stats / top ---------------------------------------------------------------------------------

def test_stats_no_stream(ctr, engine):  # type: ignore[no-untyped-def]
    r = cli("stats", "--no-stream")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split("   ")[0] == "CONTAINER ID"
    for col in ("NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"):
        assert col in lines[0]
    assert len(lines) == 2 and lines[1].startswith(ctr.short_id)
    cells = lines[1].split()
    assert cells[1] == "c1" and cells[2].endswith("%") and cells[-1] == "1"
    assert "iB / " in lines[1]
    r = cli("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemPerc}}", "c1")
    name, pids, perc = r.stdout.decode().split()
    assert (name, pids) == ("c1", "1") and perc.endswith("%")
    r = cli("stats", "--no-stream", "--format", "table {{.Container}}\t{{.CPUPerc}}", "c1")
    assert r.stdout.decode().splitlines()[0].split() == ["CONTAINER", "CPU", "%"]
    engine.container_kill("c1", "KILL")
    engine.container_wait("c1")
    r = cli("stats", "--no-stream", "-a", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}")
    assert r.stdout.decode().splitlines() == ["c1|0B / 0B|0"]
    assert cli("stats", "--no-stream", "nope").returncode == 1


def test_top(ctr):  # type: ignore[no-untyped-def]
    r = cli("top", "c1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2
    row = lines[1].split()
    assert row[0] == "root" and row[1] == str(ctr.pid) and lines[1].endswith("sleep 300")
    r = cli("top", "c1", "-o", "pid,comm")
    assert r.stdout.decode().split() == ["PID", "COMMAND", str(ctr.pid), "sleep"]


def test_top_stopped_container_fails(engine, busybox_image):  # type: ignore[no-untyped-def]
    engine.container_run(CreateOptions(network="none", image="busybox", name="gone",
                                       command=["true"]), stdout_fd=2, stderr_fd=2)
    r = cli("top", "gone")
    assert r.returncode == 1 and b"is not running" in r.stderr


# -- commit ----------------------------------------------------------------------------------------

def test_commit_runs_with_the_changes(ctr, engine):  # type: ignore[no-untyped-def]
    r = cli("commit", "-a", "Ann <a@b>", "-m", "first", "-c", "ENV FOO=bar", "c1", "mine:v1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.decode().strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert engine.container("c1").status == "running"  # paused and resumed
    cfg = engine.image_inspect("mine:v1")
    assert cfg["Author"] == "Ann <a@b>" and "FOO=bar" in cfg["Config"]["Env"]
    assert cfg["Parent"] == ctr.image_id if "Parent" in cfg else True
    hist = engine.history("mine:v1")
    assert hist[0]["Comment"] == "first" and "sleep 300" in hist[0]["CreatedBy"]
    code, out = run_fg(engine, "mine:v1",
                       "cat /hello /data/sub/f; test -e /etc/group || echo nogroup; echo $FOO")
    assert code == 0
    assert out.split() == ["hello", "deep", "nogroup", "bar"]


def test_commit_is_deterministic_and_untagged(engine, busybox_image):  # type: ignore[no-untyped-def]
    engine.container_run(CreateOptions(network="none", image="busybox", name="wr", command=[
        "sh", "-c", "mkdir /m; for i in 1 2 3; do echo $i > /m/$i; done; rm /etc/passwd"]),
        stdout_fd=2, stderr_fd=2)
    r1 = cli("commit", "wr")
    r2 = cli("commit", "--pause=false", "wr", "again")
    assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr, r2.stderr)
    a, b = (engine.image_inspect(x.stdout.decode().strip()) for x in (r1, r2))
    assert a["RootFS"]["Layers"][-1] == b["RootFS"]["Layers"][-1]
    assert len(a["RootFS"]["Layers"]) == 2
    assert a["RepoTags"] == [] and b["RepoTags"] == ["again:latest"]
    code, out = run_fg(engine, "again", "cat /m/1 /m/2 /m/3; ls /etc")
    words = out.split()
    assert words[:3] == ["1", "2", "3"] and "group" in words and "passwd" not in words


def test_commit_errors(engine, busybox_image):  # type: ignore[no-untyped-def]
    r = cli("commit", "nope")
    assert (r.returncode, r.stderr) == (1, b"Error: No such container: nope\n")
    start(engine, "c2", "exec sleep 300")
    r = cli("commit", "-c", "BOGUS x", "c2")
    assert (r.returncode, r.stderr) == (1, b"Error: BOGUS is not a valid change command\n")
    r = cli("commit", "-c", "ENV", "c2")
    assert (r.returncode, r.stderr) == (1, b"Error: ENV requires at least one argument\n")
    assert json.loads(json.dumps(engine.images(all=True)[0].tags)) == ["docker.io/library/busybox:latest"]


def test_commit_pauses_only_running_containers(ctr, engine, monkeypatch):  # type: ignore[no-untyped-def]
    svc = engine.container_service
    real = svc.runtime
    calls: list[str] = []

    class Spy:
        def __init__(self, rt):  # type: ignore[no-untyped-def]
            self.rt = rt

        def pause(self, cid: str) -> None:
            calls.append("pause")
            self.rt.pause(cid)

        def resume(self, cid: str) -> None:
            calls.append("resume")
            self.rt.resume(cid)

    monkeypatch.setattr(svc, "runtime", lambda name=None: Spy(real(name)))
    engine.commit("c1")
    assert calls == ["pause", "resume"]
    calls.clear()
    engine.commit("c1", pause=False)
    assert calls == []
    assert engine.container("c1").status == "running"
