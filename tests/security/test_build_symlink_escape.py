"""``berth build`` must never read or write host files through an image's symlinks.

Issue 9 (critical): a base image whose ``/app`` is a symlink to a host path made WORKDIR and
COPY write on the host, and ``COPY --from`` / ``RUN --mount from=`` read host files, because
a symlink whose target was missing *inside* the image fell back to a host path walk.

The corpus: hostile base images (absolute, relative-climbing, chained and
``/proc/self/root`` links, dangling or not, links made by an earlier RUN step of the same
build — the "race between steps") and victim Dockerfiles exercising every path build
resolves in a rootfs (WORKDIR, COPY/ADD destinations, heredocs, directory copies, ADD of a
tar, COPY --from files/dirs/globs, RUN --mount bind from a stage, --chown lookups, and the
build context's own links). Each test asserts that the sentinel tree outside every root is
byte-for-byte unchanged, that nothing was created at the host paths the links name, that
the write landed *inside* the image (checked by a RUN step in the image), and that no host
byte (a random marker only the host files hold) is in any saved image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from berth.errors import BerthError

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
                                reason="needs root and busybox-static")


@pytest.fixture
def host(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A host tree no image has: a secret file, a directory with a file, a fake passwd."""
    marker = f"HOST-SECRET-{uuid.uuid4().hex}"
    h = tmp_path / "hostside"
    (h / "dir").mkdir(parents=True)
    (h / "secret").write_text(marker + "\n")
    (h / "dir" / "inner").write_text(marker + "-inner\n")
    (h / "passwd").write_text(f"hostonly:x:4242:4242:{marker}:/:/bin/sh\n")
    (h / "group").write_text("hostgrp:x:4343:\n")
    (h / "df").write_text(f"FROM busybox\nRUN {marker}\nBOGUS {marker}\n")  # a "Dockerfile"
    (h / "ign").write_text("file\n")  # a ".dockerignore"
    before = snapshot(h)
    yield h, marker
    assert snapshot(h) == before, "a build changed a host file outside every root"


def snapshot(top: Path) -> dict[str, tuple[int, int, str, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if os.path.isfile(p) and not os.path.islink(p):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_size, digest, st.st_mtime_ns)
    return out


def build(engine, tmp_path: Path, text: str, tag: str, files: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
          ctx: Path | None = None, **kw):
    if ctx is None:
        ctx = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
        ctx.mkdir()
        for name, body in (files or {"file": "payload\n"}).items():
            p = ctx / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(body)
    return engine.build(str(ctx), dockerfile_text=text, tags=[tag], **kw)


def image_bytes(engine, tag: str) -> bytes:  # type: ignore[no-untyped-def]
    """Every byte of every layer of ``tag`` (decompressed), for a marker search."""
    buf = io.BytesIO()
    engine.save([tag], buf)
    buf.seek(0)
    out = []
    with tarfile.open(fileobj=buf) as tf:
        for m in tf:
            if not m.isfile():
                continue
            data = tf.extractfile(m).read()  # type: ignore[union-attr]
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            out.append(data)
    return b"".join(out)


def no_host_bytes(engine, tag: str, marker: str) -> None:  # type: ignore[no-untyped-def]
    assert marker.encode() not in image_bytes(engine, tag)


def hostile_base(engine, tmp_path: Path, h: Path) -> None:  # type: ignore[no-untyped-def]
    """``evil``: links of every shape to the host tree, none of whose targets exist inside."""
    build(engine, tmp_path, f"""FROM busybox
RUN ln -s {h}/dir /app \\
 && ln -s ../../../../../../../../../..{h}/dir /up \\
 && ln -s /b /a && ln -s {h}/dir /b && ln -s a/sub /c \\
 && ln -s /proc/self/root{h}/dir /p \\
 && ln -s {h}/newfile /f \\
 && ln -s {h}/secret /s \\
 && mkdir /d && ln -s {h}/dir /d/sub \\
 && ln -s /proc/self/root{h}/secret /ps \\
 && ln -s /a /d2
""", "evil")


WRITE_DESTS = ["/app", "/up", "/c", "/p", "/d2"]


def test_workdir_and_copy_through_links_stay_in_the_image(engine, busybox_image, tmp_path,  # type: ignore[no-untyped-def]
                                                          host):
    h, marker = host
    hostile_base(engine, tmp_path, h)
    checks = []
    steps = []
    for i, d in enumerate(WRITE_DESTS):
        steps += [f"WORKDIR {d}/w{i}/deep", f"COPY file {d}/sub{i}/pwned",
                  f"COPY file {d}/", f"COPY <<EOF {d}/here{i}\nheredoc\nEOF"]
        # /app, /up and /d2 lead to <root>{h}/dir, /c to .../dir/sub; /p's writes went to
        # <root>/proc/self/root/... (as Docker's lexical walk does), hidden by procfs in RUN
        if d != "/p":
            checks.append(f"test -d {d}/w{i}/deep && test -f {d}/sub{i}/pwned "
                          f"&& test -f {d}/file && test -f {d}/here{i}")
    steps.append("WORKDIR /")
    steps.append(f"RUN {' && '.join(checks)} && test -f {h}/dir/sub0/pwned "
                 f"&& test -f {h}/dir/sub/sub2/pwned && test -d {h}/dir/w4/deep")
    build(engine, tmp_path, "FROM evil\n" + "\n".join(steps) + "\n", "victim")
    assert sorted(os.listdir(h / "dir")) == ["inner"]
    no_host_bytes(engine, "victim", marker)


def test_file_onto_dangling_link_is_written_inside(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    h, marker = host
    hostile_base(engine, tmp_path, h)
    build(engine, tmp_path, f"FROM evil\nCOPY file /f\nCOPY <<EOF /s\nx\nEOF\n"
          f"RUN grep -q payload {h}/newfile && test -L /f && grep -qx x {h}/secret\n", "v")
    assert not (h / "newfile").exists()
    no_host_bytes(engine, "v", marker)


def test_directory_copy_replaces_a_linked_child(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A source dir whose child collides with an image symlink: the link is replaced."""
    h, marker = host
    hostile_base(engine, tmp_path, h)
    build(engine, tmp_path, "FROM evil\nCOPY src /d/\n"
          "RUN test ! -L /d/sub && grep -q payload /d/sub/f && test -f /d/sub/deeper/g\n",
          "v", files={"src/sub/f": "payload\n", "src/sub/deeper/g": "g\n"})
    assert sorted(os.listdir(h / "dir")) == ["inner"]
    no_host_bytes(engine, "v", marker)


def test_add_tar_through_a_link(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    h, marker = host
    hostile_base(engine, tmp_path, h)
    ctx = tmp_path / "ctx-tar"
    ctx.mkdir()
    with tarfile.open(ctx / "a.tar", "w") as tf:
        data = b"from-tar\n"
        ti = tarfile.TarInfo("x/t")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    build(engine, tmp_path, f"FROM evil\nADD a.tar /app/tar/\nADD a.tar /up/\n"
          f"RUN grep -q from-tar {h}/dir/tar/x/t && grep -q from-tar {h}/dir/x/t\n",
          "v", ctx=ctx)
    assert sorted(os.listdir(h / "dir")) == ["inner"]


def test_links_made_by_an_earlier_step(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A RUN swaps a directory (and /etc/passwd) for host links before the next steps."""
    h, marker = host
    build(engine, tmp_path, f"""FROM busybox
RUN mkdir -p /x/y && touch /x/y/keep
RUN rm -rf /x && ln -s {h}/dir /x && ln -s /x /x2
COPY file /x/y/pwned
WORKDIR /x2/made
RUN test -f {h}/dir/y/pwned && test -d {h}/dir/made
""", "v")
    assert sorted(os.listdir(h / "dir")) == ["inner"]
    no_host_bytes(engine, "v", marker)


def test_chown_names_come_from_the_image_not_the_host(engine, busybox_image, tmp_path,  # type: ignore[no-untyped-def]
                                                      host):
    h, marker = host
    build(engine, tmp_path, f"FROM busybox\nRUN ln -sf {h}/passwd /etc/passwd "
          f"&& ln -sf {h}/group /etc/group\n", "evilusers")
    with pytest.raises(BerthError, match="hostonly"):
        build(engine, tmp_path, "FROM evilusers\nCOPY --chown=hostonly file /f\n", "v")
    with pytest.raises(BerthError, match="hostgrp"):
        build(engine, tmp_path, "FROM evilusers\nCOPY --chown=0:hostgrp file /f\n", "v")


@pytest.mark.parametrize("src", ["/s", "/ps", "/app/inner", "/up/inner", "/c/../inner",
                                 "/p/inner", "/d/sub/inner", "/d2/inner"])
def test_copy_from_never_reads_host_files(engine, busybox_image, tmp_path, host, src):  # type: ignore[no-untyped-def]
    h, marker = host
    hostile_base(engine, tmp_path, h)
    with pytest.raises(BerthError, match="does not exist|not found"):
        build(engine, tmp_path, f"FROM busybox\nCOPY --from=evil {src} /got\n", "v")


@pytest.mark.parametrize("src", ["/app/", "/up", "/p/", "/d/sub/", "/d2/"])
def test_copy_from_never_copies_host_directories(engine, busybox_image, tmp_path, host,  # type: ignore[no-untyped-def]
                                                 src):
    h, marker = host
    hostile_base(engine, tmp_path, h)
    with pytest.raises(BerthError, match="does not exist|not found"):
        build(engine, tmp_path, f"FROM busybox\nCOPY --from=evil {src} /x/\n", "v")


def test_copy_from_stage_links_stay_links(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A link *inside* a copied tree, or matched by a glob, is copied as a link."""
    h, marker = host
    build(engine, tmp_path, f"""FROM busybox AS a
RUN mkdir /t && ln -s {h}/secret /t/l && ln -s {h}/dir /t/d
FROM busybox
COPY --from=a /t /t
RUN test -L /t/l && test -L /t/d && test ! -e /t/l
""", "v")
    no_host_bytes(engine, "v", marker)
    # a glob match is followed like any source: a dangling one is not found, not read
    with pytest.raises(BerthError, match="does not exist"):
        build(engine, tmp_path, f"FROM busybox AS a\nRUN ln -s {h}/secret /g1 && touch /g2\n"
              "FROM busybox\nCOPY --from=a /g* /globbed/\n", "v2")


def test_copy_from_stage_link_followed_inside(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """Docker follows a source link inside the stage: an in-image target is found."""
    h, marker = host
    build(engine, tmp_path, f"""FROM busybox AS a
RUN mkdir -p {h} && echo inside > {h}/secret && ln -s {h}/secret /s \\
 && ln -s /proc/self/root/etc/hostname /h
FROM busybox
COPY --from=a /s /got
RUN grep -qx inside /got
""", "v")
    no_host_bytes(engine, "v", marker)
    with pytest.raises(BerthError, match="does not exist"):  # no /proc inside the image
        build(engine, tmp_path, "FROM busybox AS a\nRUN ln -s /proc/self/root/etc/passwd /h\n"
              "FROM busybox\nCOPY --from=a /h /got\n", "v2")


@pytest.mark.parametrize("source", ["/app", "/s", "/p", "/up/inner", "/ps", "/d2"])
def test_run_mount_from_never_binds_host_paths(engine, busybox_image, tmp_path, host,  # type: ignore[no-untyped-def]
                                               source):
    h, marker = host
    hostile_base(engine, tmp_path, h)
    with pytest.raises(BerthError, match="not found"):
        build(engine, tmp_path, f"FROM busybox\nRUN --mount=type=bind,from=evil,"
              f"source={source},target=/m cat /m /m/inner\n", "v")


def test_run_mount_from_dir_with_a_host_link_inside(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A bound stage dir holding a host link: the link resolves in the RUN's own root."""
    from berth.build.steps_run import RunFailed

    h, marker = host
    hostile_base(engine, tmp_path, h)
    with pytest.raises(RunFailed) as e:
        build(engine, tmp_path, "FROM busybox\nRUN --mount=type=bind,from=evil,source=/d,"
              "target=/m ls -l /m && cat /m/sub/inner\n", "v")
    assert marker.encode() not in e.value.output and b"/m/sub/inner" in e.value.output


def test_run_mount_rw_from_stage(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A read-write bind of a stage's linked dir: writes never reach the host."""
    h, marker = host
    with pytest.raises(BerthError, match="not found"):
        build(engine, tmp_path, f"FROM busybox AS a\nRUN ln -s {h}/dir /d\nFROM busybox\n"
              "RUN --mount=type=bind,from=a,source=/d,target=/m,rw touch /m/pwned\n", "v")


def test_context_links_stay_in_the_context(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    h, marker = host
    ctx = tmp_path / "ctx-links"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "file").write_text("payload\n")
    os.symlink(f"{h}/secret", ctx / "abs")
    os.symlink(f"../../../../../../../../../..{h}/secret", ctx / "rel")
    os.symlink(f"/proc/self/root{h}/secret", ctx / "pl")
    os.symlink(f"{h}/dir", ctx / "dirlink")
    os.symlink("../dirlink", ctx / "sub" / "chain")
    for src in ("abs", "rel", "pl", "dirlink", "dirlink/inner", "sub/chain/inner"):
        with pytest.raises(BerthError, match="not found|does not exist"):
            build(engine, tmp_path, f"FROM busybox\nCOPY {src} /got\n", "v", ctx=ctx)
        with pytest.raises(BerthError, match="not found"):
            build(engine, tmp_path, f"FROM busybox\nRUN --mount=type=bind,source={src},"
                  "target=/m cat /m\n", "v", ctx=ctx)
    # a directory copy keeps the links as links
    build(engine, tmp_path, "FROM busybox\nCOPY . /c/\n"
          "RUN test -L /c/abs && test -L /c/dirlink && test ! -e /c/abs\n", "v", ctx=ctx)
    no_host_bytes(engine, "v", marker)


def test_cli_says_one_line_and_exits_1(berth, engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    h, marker = host
    hostile_base(engine, tmp_path, h)
    ctx = tmp_path / "cli"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY --from=evil /s /got\n")
    r = berth("build", "-q", str(ctx))
    assert r.returncode == 1, r
    assert r.stderr.startswith("Error: ") and "Traceback" not in r.stderr
    assert marker not in r.stdout + r.stderr


def test_walk_scoped_unit(tmp_path):  # type: ignore[no-untyped-def]
    """The shared walk: dangling, chained, climbing, /proc links and ``..`` stay inside."""
    from berth.container.rootpath import DirAttrs, open_dir, scoped_path

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/nowhere/x", root / "dangling")
    os.symlink("../../../../../etc", root / "up")
    os.symlink("/proc/self/root/etc", root / "pl")
    os.symlink("dangling/../y", root / "dotdot")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert scoped_path(fd, "/dangling/a") == "/nowhere/x/a"
        assert scoped_path(fd, "/up/passwd") == "/etc/passwd"
        assert scoped_path(fd, "/pl/x") == "/proc/self/root/etc/x"
        assert scoped_path(fd, "/dotdot") == "/nowhere/y"
        assert scoped_path(fd, "/../../..") == "/"
        assert scoped_path(fd, "/dangling", follow_last=False) == "/dangling"
        with pytest.raises(OSError):
            scoped_path(fd, "/loop1")
        dfd, canonical = open_dir(fd, "/dangling/a/b", create=DirAttrs(0o750, 0, 0))
        os.close(dfd)
        assert canonical == "/nowhere/x/a/b"
        assert (root / "nowhere/x/a/b").is_dir()
        assert oct((root / "nowhere/x/a").stat().st_mode & 0o777) == "0o750"
        with pytest.raises(FileNotFoundError):
            open_dir(fd, "/missing")
        (root / "file").write_text("")
        with pytest.raises(NotADirectoryError):
            open_dir(fd, "/file", create=DirAttrs())
        # the openat2 fallback walk and openat2 itself agree on every path
        from berth.container.rootpath import _walk, open_in_root

        (root / "etc" / "passwd").write_text("inside\n")
        for path in ("/up/passwd", "/etc/../up/../etc/passwd", "/dangling/a/b", "/pl/x",
                     "/../../etc", "/loop1", "/file/x"):
            got = []
            for opener in (_walk, open_in_root):
                try:
                    nfd = opener(fd, path, os.O_PATH)
                except OSError as e:
                    got.append(e.errno)
                    continue
                got.append(os.readlink(f"/proc/self/fd/{nfd}"))
                os.close(nfd)
            assert got[0] == got[1], (path, got)
            assert not isinstance(got[0], str) or got[0].startswith(str(root)), (path, got)
    finally:
        os.close(fd)
    assert not os.path.exists("/nowhere")


def test_no_traceback_from_hostile_tar_context(berth, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A tar context whose members climb through links is refused, not followed."""
    h, marker = host
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        df = b"FROM busybox\nCOPY l/inner /got\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(df)
        tf.addfile(ti, io.BytesIO(df))
        ln = tarfile.TarInfo("l")
        ln.type = tarfile.SYMTYPE
        ln.linkname = f"{h}/dir"
        tf.addfile(ln)
    r = subprocess.run([sys.executable, "-m", "berth", "build", "-q", "-"],
                       input=buf.getvalue(), capture_output=True, timeout=120)
    assert r.returncode == 1, r
    assert b"Traceback" not in r.stderr and marker.encode() not in r.stdout + r.stderr


def test_swap_race_during_copy(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """A host-side racer swaps the COPY destination dir for a host link while the copy runs.

    Nothing in the image runs during COPY, so this is harsher than any image can be: it
    shows the writer goes through fds, never a path the host would walk again.
    """
    import glob
    import threading
    import time

    h, marker = host
    files = {f"tree/d{i}/s{j}/f{k}": "x\n" for i in range(8) for j in range(8) for k in range(6)}
    ctx = tmp_path / "ctx-race"
    for name, body in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body)
    stop = threading.Event()
    swaps = [0]

    def racer() -> None:
        while not stop.is_set():
            for merged in glob.glob(os.path.join(engine.store.tmp, "build-*-copy-*", "merged")):
                for name in ("x", "x/d3", "x/d6"):
                    p = os.path.join(merged, name)
                    try:
                        os.rename(p, p + ".real")
                    except OSError:
                        continue
                    try:
                        os.symlink(f"{h}/dir", p)
                        time.sleep(0.002)
                        os.unlink(p)
                        swaps[0] += 1
                    except OSError:
                        pass
                    try:
                        os.rename(p + ".real", p)
                    except OSError:
                        pass  # the copy made a new one meanwhile: keep racing on that
                time.sleep(0.001)

    t = threading.Thread(target=racer, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 6
        for i in range(40):  # old code escaped within a few rounds; stop after ~6 s
            if time.monotonic() > deadline:
                break
            try:
                build(engine, tmp_path, f"FROM busybox\nCOPY tree /x/\n"
                      f"LABEL round={i}\n", f"v{i}", ctx=ctx, no_cache=True)
            except (BerthError, OSError):
                pass  # losing the race may fail the step; escaping it must never happen
            engine.build_cache_usage()  # noqa: B018 - keep the store busy between rounds
    finally:
        stop.set()
        t.join()
    assert swaps[0] > 0
    assert sorted(os.listdir(h / "dir")) == ["inner"]


def test_link_loops_and_etc_files_through_links(berth, engine, busybox_image, tmp_path,  # type: ignore[no-untyped-def]
                                                host):
    """A loop is a one-line error; a RUN's hosts/resolv.conf binds stay inside too."""
    h, marker = host
    ctx = tmp_path / "ctx-etc"
    ctx.mkdir()
    with tarfile.open(ctx / "links.tar", "w") as tf:  # RUN cannot replace its bound files
        for name, target in (("etc/hosts", f"{h}/secret"),
                             ("etc/resolv.conf", f"{h}/dir/resolv")):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tf.addfile(ti)
    build(engine, tmp_path, "FROM busybox\nRUN ln -s /loop /loop && ln -s l2 /l1 "
          "&& ln -s l1 /l2\nADD links.tar /\n", "loops", ctx=ctx)
    for dest in ("/loop/x", "/l1/", "/l2"):
        with pytest.raises(BerthError, match="Too many levels of symbolic links"):
            build(engine, tmp_path, f"FROM loops\nCOPY file {dest}\n", "v")
        with pytest.raises(BerthError, match="WORKDIR"):
            build(engine, tmp_path, f"FROM loops\nWORKDIR {dest}\n", "v")
    with pytest.raises(BerthError, match="does not exist"):
        build(engine, tmp_path, "FROM busybox\nCOPY --from=loops /l1 /x\n", "v")
    build(engine, tmp_path, "FROM loops\nRUN grep -q buildkitsandbox /etc/hosts "
          "&& echo pwned > /etc/hosts\n", "v", network="none")
    ctx = tmp_path / "cli-loop"
    ctx.mkdir()
    (ctx / "file").write_text("x")
    (ctx / "Dockerfile").write_text("FROM loops\nCOPY file /loop/x\n")
    r = berth("build", "-q", str(ctx))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (h / "dir" / "resolv").exists()


def test_dockerfile_and_dockerignore_links_are_not_read(berth, busybox_image, tmp_path,  # type: ignore[no-untyped-def]
                                                        host):
    """A context whose Dockerfile links to a host file must not have it parsed (a parse
    error would echo its lines to whoever sent the context, e.g. over the API)."""
    h, marker = host
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, target in (("Dockerfile", f"{h}/df"), ("up", "../../../../../../..")):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tf.addfile(ti)
    for args in (["build", "-q", "-"], ["build", "-q", "-f", f"up{h}/df", "-"]):
        r = subprocess.run([sys.executable, "-m", "berth", *args], input=buf.getvalue(),
                           capture_output=True, timeout=120)
        assert r.returncode == 1, r
        assert marker.encode() not in r.stdout + r.stderr
        assert b"failed to read dockerfile" in r.stderr
    ctx = tmp_path / "ctx-ign"
    ctx.mkdir()
    (ctx / "file").write_text("payload\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY file /file\n")
    os.symlink(f"{h}/ign", ctx / ".dockerignore")  # would hide "file" if it were read
    r = berth("build", "-q", str(ctx))
    assert r.returncode == 0, r.stderr


def test_later_source_replaces_a_dir_with_a_link(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """Two sources: the first makes /x/a a dir, the second makes it a link to the host."""
    h, marker = host
    ctx = tmp_path / "ctx-two"
    (ctx / "one" / "a").mkdir(parents=True)
    (ctx / "one" / "a" / "f").write_text("f\n")
    (ctx / "two").mkdir()
    os.symlink(f"{h}/dir", ctx / "two" / "a")
    build(engine, tmp_path, "FROM busybox\nCOPY one two /x/\nRUN test -L /x/a\n", "v",
          ctx=ctx)
    no_host_bytes(engine, "v", marker)


def test_cache_mount_from_stage_is_seeded_inside(engine, busybox_image, tmp_path, host):  # type: ignore[no-untyped-def]
    """``RUN --mount=type=cache,from=a,source=/d``: seeded from the stage, never the host."""
    h, marker = host
    build(engine, tmp_path, f"""FROM busybox AS a
RUN mkdir -p /seed/sub && echo seeded > /seed/sub/f && ln -s {h}/secret /seed/l \\
 && ln -s {h}/dir /hostdir
FROM busybox
RUN --mount=type=cache,id=c1,from=a,source=/seed,target=/c \\
    grep -qx seeded /c/sub/f && test -L /c/l && test ! -e /c/l && echo ok > /c/new
RUN --mount=type=cache,id=c1,target=/c test -f /c/new
""", "v")
    with pytest.raises(BerthError, match="not found"):
        build(engine, tmp_path, "FROM busybox AS a\nRUN true\nFROM busybox\n"
              "RUN --mount=type=cache,id=c2,from=a,source=/nothere,target=/c ls /c\n", "v2")
    build(engine, tmp_path, f"FROM busybox\nRUN ln -s {h}/dir /hostdir\n", "evil2")
    with pytest.raises(BerthError, match="not found"):
        build(engine, tmp_path, "FROM busybox\nRUN --mount=type=cache,id=c3,from=evil2,"
              "source=/hostdir,target=/c ls /c\n", "v3")


def test_fifo_and_modes_copied_through_fds(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    """The fd-based writer keeps what the path-based one did: fifos, modes, owners, times."""
    ctx = tmp_path / "ctx-kinds"
    (ctx / "d" / "sub").mkdir(parents=True)
    os.mkfifo(ctx / "d" / "pipe", 0o640)
    (ctx / "d" / "sub" / "x").write_text("x\n")
    os.chmod(ctx / "d" / "sub" / "x", 0o751)
    os.utime(ctx / "d" / "sub", ns=(1_000_000_000, 1_000_000_000))
    build(engine, tmp_path, "FROM busybox\nCOPY --chown=7:8 d /d/\n"
          "RUN test -p /d/pipe && stat -c '%a %u:%g' /d/pipe /d/sub/x /d/sub "
          "&& test \"$(stat -c %Y /d/sub)\" = 1\n"
          "RUN test \"$(stat -c '%a %u:%g' /d/pipe)\" = '640 7:8' "
          "&& test \"$(stat -c '%a %u:%g' /d/sub/x)\" = '751 7:8'\n", "kinds", ctx=ctx)
