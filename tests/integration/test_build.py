"""``berth build``: every Dockerfile instruction, contexts, errors, dangling images.

RUN steps run for real (runc/crun, overlay); the conftest fixture fails a test that leaves
a mount or process behind, which is how "a failed build leaves nothing" is checked too.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import os
import tarfile
import threading
from pathlib import Path

from berth.build.progress import BuildProgress


class Recorder(BuildProgress):
    def __init__(self) -> None:
        self.hits: list[str] = []
        self.ran: list[str] = []
        self.out = b""

    def cached(self, ref, image_id):  # type: ignore[no-untyped-def]
        self.hits.append(ref.text)

    def done(self, ref, image_id, seconds):  # type: ignore[no-untyped-def]
        self.ran.append(ref.text)

    def output(self, ref, data):  # type: ignore[no-untyped-def]
        self.out += data


def write(d: Path, files: dict[str, str | bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body if isinstance(body, bytes) else body.encode())
    return d


def build(engine, ctx: Path, **kw):  # type: ignore[no-untyped-def]
    rec = Recorder()
    res = engine.build(str(ctx), progress=rec, **kw)
    return res, rec


def cfg(engine, ref: str) -> dict:  # type: ignore[type-arg]
    return engine.image_service.config(engine.image_service.resolve(ref))


def run_out(berth, image: str, *cmd: str) -> str:  # type: ignore[no-untyped-def]
    r = berth("run", "--rm", "--network", "none", image, *cmd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def leftovers(env: dict) -> list[str]:  # type: ignore[type-arg]
    tmp = os.path.join(env["root"], "tmp")
    state = os.path.join(env["runroot"], "runtime")
    out = [n for n in os.listdir(tmp)] if os.path.isdir(tmp) else []
    for rt in ("runc", "crun"):
        d = os.path.join(state, rt)
        if os.path.isdir(d):
            out += [f"{rt}:{n}" for n in os.listdir(d) if n.startswith("berth-build")]
    return out


# -- the basics, through the CLI -------------------------------------------------------------
def test_build_and_run_cli(berth, busybox_image, tmp_path, berth_env):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nENV GREETING=hi\nCOPY a.txt /app/\nWORKDIR /app\n"
                      "RUN echo \"$GREETING from run\" > out.txt && cat a.txt\n"
                      'CMD ["cat", "/app/out.txt"]\n',
        "a.txt": "hello\n"})
    r = berth("build", "-t", "hello", str(ctx))
    assert r.returncode == 0, r.stderr
    assert "Step 1/6 : FROM busybox" in r.stdout
    assert " ---> Running in " in r.stdout and "\nhello\n" in r.stdout
    assert "Successfully tagged hello:latest" in r.stdout
    assert run_out(berth, "hello") == "hi from run\n"
    again = berth("build", "-t", "hello", str(ctx))
    assert again.stdout.count(" ---> Using cache") == 5, again.stdout
    assert " ---> Running in " not in again.stdout
    assert leftovers(berth_env) == []
    # intermediate images are hidden without -a
    assert berth("images", "-q").stdout.split() != berth("images", "-a", "-q").stdout.split()


def test_progress_plain_quiet_iidfile_label(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo plain-out\n"})
    r = berth("build", "--progress", "plain", "--label", "a=b", "--iidfile",
              str(tmp_path / "iid"), str(ctx))
    assert r.returncode == 0, r.stderr
    assert "#2 [2/2] RUN echo plain-out" in r.stderr and "plain-out" in r.stderr
    iid = (tmp_path / "iid").read_text()
    assert iid.startswith("sha256:")
    r = berth("build", "--progress", "plain", "--label", "a=b", str(ctx))
    assert "#2 CACHED" in r.stderr
    q = berth("build", "-q", "--label", "a=b", str(ctx))
    assert q.stdout.strip() == iid
    img = json.loads(berth("inspect", iid).stdout)[0]
    assert img["Config"]["Labels"] == {"a": "b"}


def test_dockerfile_on_stdin_and_tar_context(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    r = berth("build", "-t", "fromstdin", "-", input="FROM busybox\nRUN echo hi > /x\n")
    assert r.returncode == 0, r.stderr
    assert run_out(berth, "fromstdin", "cat", "/x") == "hi\n"
    r = berth("build", "-", input="FROM busybox\nCOPY a /a\n")
    # a Dockerfile from stdin has no context: nothing to COPY from
    assert r.returncode == 1 and r.stderr.splitlines()[-1] == (
        "Error: Dockerfile:2: file not found in build context or excluded by .dockerignore: "
        "stat a: file does not exist")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY f.txt /f.txt\n"),
                           ("f.txt", b"from tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    r = berth("build", "-t", "fromtar", "-", input=buf.getvalue())
    assert r.returncode == 0, r.stderr
    assert run_out(berth, "fromtar", "cat", "/f.txt") == "from tar\n"
    # -f outside the context, and -f - with a context dir
    ctx = write(tmp_path / "c", {"f.txt": "x\n"})
    (tmp_path / "Other.df").write_text("FROM busybox\nCOPY f.txt /g\n")
    assert berth("build", "-f", str(tmp_path / "Other.df"), str(ctx)).returncode == 0


# -- config instructions ---------------------------------------------------------------
def test_config_instructions(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
FROM busybox
MAINTAINER someone <s@example.com>
LABEL "a b"="c d" e=f
ENV A=1 B="2 3"
ENV PATH=$PATH:/extra
EXPOSE 80 8000-8002/udp
VOLUME ["/data"]
VOLUME /logs
USER 1000:1000
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --retries=3 CMD ["true"]
ONBUILD RUN echo triggered
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT echo entry
"""})
    res, _ = build(engine, ctx, tags=["meta"])
    doc = cfg(engine, "meta")
    c = doc["config"]
    assert doc["author"] == "someone <s@example.com>"
    assert c["Labels"] == {"a b": "c d", "e": "f"}
    env = dict(e.split("=", 1) for e in c["Env"])
    assert env["A"] == "1" and env["B"] == "2 3" and env["PATH"].endswith(":/extra")
    assert set(c["ExposedPorts"]) == {"80/tcp", "8000/udp", "8001/udp", "8002/udp"}
    assert set(c["Volumes"]) == {"/data", "/logs"}
    assert c["User"] == "1000:1000" and c["StopSignal"] == "SIGKILL"
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000,
                                "Retries": 3}
    assert c["OnBuild"] == ["RUN echo triggered"]
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["Entrypoint"] == ["/bin/sh", "-ec", "echo entry"]
    assert "Cmd" not in c  # ENTRYPOINT resets the CMD inherited from busybox
    assert len(doc["history"]) == 1 + 13 and doc["history"][-1]["empty_layer"]
    # ONBUILD runs when the image is a base, and is not inherited further
    child = write(tmp_path / "child", {"Dockerfile": "FROM meta\nRUN echo child\n"})
    res2, rec = build(engine, child, tags=["child"])
    assert b"triggered" in rec.out and b"child" in rec.out
    assert "OnBuild" not in cfg(engine, "child")["config"]


# -- RUN --------------------------------------------------------------------------------
def test_run_forms_heredoc_shell_mounts(berth, engine, busybox_image, tmp_path, berth_env):  # type: ignore[no-untyped-def]
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
FROM busybox
RUN ["/bin/sh", "-c", "echo exec > /exec"]
RUN <<EOT
echo one > /heredoc
echo two >> /heredoc
EOT
RUN <<EOT
#!/bin/sh
echo shebang > /shebang
EOT
RUN <<F1 cat > /f1 && echo done >> /f1
body
F1
SHELL ["/bin/sh", "-ec"]
RUN --mount=type=cache,target=/cache echo x >> /cache/count && wc -l < /cache/count > /cachecount
RUN --mount=type=tmpfs,target=/scratch touch /scratch/gone && ! test -e /scratch/keep
RUN --mount=type=secret,id=token cat /run/secrets/token > /leaked-len && wc -c < /run/secrets/token > /secretlen && rm /leaked-len
RUN --mount=type=bind,source=data,target=/mnt cat /mnt/in.txt > /frombind
RUN --network=none cat /proc/net/dev | wc -l > /netlines
RUN --network=none readlink /proc/self/ns/net > /netns
RUN --network=host readlink /proc/self/ns/net > /hostnetns
""", "data/in.txt": "bound\n"})
    r = berth("build", "-t", "runs", "--secret", f"id=token,src={secret}", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    out = run_out(berth, "runs", "cat", "/exec", "/heredoc", "/shebang", "/f1",
                  "/cachecount", "/secretlen", "/frombind")
    assert out.split() == ["exec", "one", "two", "shebang", "body", "done", "1", "6", "bound"]
    # mount placeholders (and parents made only for them) stay out of the layers
    assert run_out(berth, "runs", "sh", "-c", "test -e /run/secrets || test -e /cache || "
                   "test -e /scratch || test -e /mnt/in.txt || echo clean") == "clean\n"
    assert int(run_out(berth, "runs", "cat", "/netlines")) == 3  # header (2 lines) + lo
    # --network=host: the host's own namespace (same inode), the default: another one
    host_ns = os.readlink("/proc/self/ns/net")
    assert run_out(berth, "runs", "cat", "/hostnetns").strip() == host_ns
    assert run_out(berth, "runs", "cat", "/netns").strip() != host_ns
    assert "leaked" not in run_out(berth, "runs", "ls", "/")
    # the cache mount outlives the build
    r = berth("build", "--no-cache", "-t", "runs2", "--secret", f"id=token,src={secret}",
              str(ctx))
    assert r.returncode == 0, r.stderr
    assert run_out(berth, "runs2", "cat", "/cachecount").strip() == "2"
    assert leftovers(berth_env) == []


def test_failing_run_leaves_nothing(berth, engine, busybox_image, tmp_path, berth_env):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV A=1\n"
                                                 "RUN echo about-to-fail && exit 3\n"})
    before = {r.id for r in engine.images(all=True)}
    r = berth("build", "-t", "broken", str(ctx))
    assert r.returncode == 3  # the RUN's own code, as Docker's classic builder exits
    assert "about-to-fail" in r.stdout
    assert "The command '/bin/sh -c echo about-to-fail && exit 3' returned a non-zero code: 3" \
        in r.stderr
    after = {r.id for r in engine.images(all=True)}
    assert len(after - before) == 1  # only the ENV step, cached like Docker's classic builder
    assert "broken" not in berth("images").stdout
    assert leftovers(berth_env) == []
    q = berth("build", "-q", str(ctx))
    assert q.returncode == 3 and "about-to-fail" in q.stderr and q.stdout == ""
    # an exec-form command that does not exist
    bad = write(tmp_path / "bad", {"Dockerfile": 'FROM busybox\nRUN ["/nope"]\n'})
    r = berth("build", str(bad))
    assert r.returncode == 1 and "/nope" in r.stderr
    assert leftovers(berth_env) == []


def test_dockerfile_errors_name_the_line(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n\n# c\nRUN true\nRUNN x\n",
                                   "Copy.df": "FROM busybox\nCOPY missing.txt /x\n"})
    r = berth("build", str(ctx))
    assert r.returncode == 1 and "Dockerfile:5: unknown instruction: RUNN" in r.stderr
    r = berth("build", "-f", str(ctx / "Copy.df"), str(ctx))
    assert r.returncode == 1 and "Copy.df:2:" in r.stderr and "missing.txt" in r.stderr
    r = berth("build", "--target", "nope", str(ctx))
    assert r.returncode == 1


# -- COPY / ADD -------------------------------------------------------------------------
def test_copy_rules(berth, engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
FROM busybox
WORKDIR /w
COPY dir /dircontents/
COPY dir sub/
COPY *.txt /globbed/
COPY one.txt /renamed
COPY one.txt /existing-dir-check/
COPY --chown=1000:50 --chmod=0640 one.txt /owned
COPY --chown=nobody one.txt /named
COPY --link one.txt /linked
ARG WHO=world
COPY <<EOF /inline.txt
inline $WHO
EOF
COPY <<"EOF" /verbatim.txt
verbatim $WHO
EOF
""", "dir/a": "A", "dir/nested/b": "B", "one.txt": "1", "two.txt": "2",
        "ignored.txt": "no", "dir/skip.log": "no", ".dockerignore": "ignored.txt\n**/*.log\n"})
    os.chmod(ctx / "dir" / "a", 0o751)
    build(engine, ctx, tags=["copies"])
    def sh(cmd: str) -> str:
        return run_out(berth, "copies", "sh", "-c", cmd)

    assert sh("ls /dircontents").split() == ["a", "nested"]  # contents; .log ignored
    assert sh("ls /dircontents/nested /w/sub").split() == ["/dircontents/nested:", "b",
                                                          "/w/sub:", "a", "nested"]
    assert sh("ls /globbed").split() == ["one.txt", "two.txt"]  # ignored.txt is invisible
    assert sh("cat /renamed; ls /existing-dir-check") == "1one.txt\n"
    assert sh("stat -c '%u:%g %a' /owned /named /dircontents/a").split() == [
        "1000:50", "640", "65534:65534", "644", "0:0", "751"]
    assert sh("cat /inline.txt /verbatim.txt") == "inline world\nverbatim $WHO\n"
    many = write(tmp_path / "many", {"Dockerfile": "FROM busybox\nCOPY a b /notdir\n",
                                     "a": "", "b": ""})
    r = berth("build", str(many))
    assert r.returncode == 1 and "must be a directory and end with a /" in r.stderr


def test_add_tar_and_url(berth, engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("pkg/hello.txt")
        ti.size = 6
        tf.addfile(ti, io.BytesIO(b"in tar"))
    served = write(tmp_path / "www", {"remote.txt": "remote bytes\n"})

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):  # type: ignore[no-untyped-def]
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/remote.txt"
        ctx = write(tmp_path / "ctx", {
            "Dockerfile": f"FROM busybox\nADD app.tar.gz /opt/\nADD {url} /dl/\n"
                          "ADD plain.txt /plain.txt\n",
            "app.tar.gz": gzip.compress(buf.getvalue()), "plain.txt": "p"})
        _, rec = build(engine, ctx, tags=["adds"])
        out = run_out(berth, "adds", "sh", "-c", "cat /opt/pkg/hello.txt; echo; cat /dl/remote.txt;"
                      " stat -c %a /dl/remote.txt; cat /plain.txt")
        assert out.split("\n")[:4] == ["in tar", "remote bytes", "600", "p"]
        _, rec = build(engine, ctx, tags=["adds"])
        assert len(rec.hits) == 3
        (served / "remote.txt").write_text("changed remote\n")
        _, rec = build(engine, ctx, tags=["adds"])
        assert rec.ran and "ADD plain.txt /plain.txt" in rec.ran  # after the changed ADD
    finally:
        srv.shutdown()
        srv.server_close()


# -- stages -----------------------------------------------------------------------------
def test_multistage_target_and_args(berth, engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
ARG BASE=busybox
ARG VERSION=1
FROM $BASE AS builder
ARG VERSION
RUN echo "built v$VERSION" > /artifact
FROM builder AS tester
RUN echo tested > /tested
FROM busybox AS broken
RUN exit 9
FROM scratch AS final
COPY --from=builder /artifact /artifact
COPY --from=busybox /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/artifact"]
"""})
    res, rec = build(engine, ctx, tags=["final"], build_args={"VERSION": "7", "UNUSED": "x"})
    assert any("UNUSED" in w for w in res.warnings)
    assert not any("exit 9" in t for t in rec.ran)  # stages the target does not need
    assert run_out(berth, "final") == "built v7\n"
    doc = cfg(engine, "final")
    assert len(doc["rootfs"]["diff_ids"]) == 2
    res, rec = build(engine, ctx, tags=["tester"], target="tester")
    assert run_out(berth, "tester", "cat", "/artifact", "/tested") == "built v1\ntested\n"


# -- tags and dangling images -------------------------------------------------------------
def test_rebuild_leaves_dangling_image(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "1"})
    first = berth("build", "-q", "-t", "app", str(ctx)).stdout.strip()
    (ctx / "f").write_text("2")
    second = berth("build", "-q", "-t", "app", str(ctx)).stdout.strip()
    assert first != second
    dangling = berth("images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split()
    assert dangling == [first]
    assert "<none>" in berth("images").stdout
    r = berth("image", "prune", "-f")
    assert r.returncode == 0 and first in r.stdout
    assert berth("images", "-q", "-f", "dangling=true").stdout.strip() == ""
    assert berth("run", "--rm", "--network", "none", "app", "cat", "/f").stdout == "2"


def test_build_pull_takes_the_registry_copy_of_the_base(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    """Without ``--pull`` the local base is used; with it, the registry's newer one."""
    from test_registry_server import Server

    reg = Server(tmp_path / "storage", log=tmp_path / "registry.log")
    try:
        base = reg.url.split("://", 1)[1] + "/base:1"
        for version in ("two", "one"):  # the registry gets "two", the local tag "one"
            ctx = write(tmp_path / f"base-{version}",
                        {"Dockerfile": f"FROM busybox\nRUN echo {version} > /v\n"})
            r = berth("build", "-q", "-t", base, str(ctx))
            assert r.returncode == 0, r.stderr
            if version == "two":
                r = berth("push", base)
                assert r.returncode == 0, r.stderr
        ctx = write(tmp_path / "app", {"Dockerfile": f"FROM {base}\nRUN cat /v > /seen\n"})
        r = berth("build", "-t", "local-base", str(ctx))
        assert r.returncode == 0, r.stderr
        assert run_out(berth, "local-base", "cat", "/seen") == "one\n"
        r = berth("build", "--pull", "-t", "pulled-base", str(ctx))
        assert r.returncode == 0, r.stderr
        assert run_out(berth, "pulled-base", "cat", "/seen") == "two\n"
        assert run_out(berth, base, "cat", "/v") == "two\n"  # the local tag moved too
    finally:
        reg.stop()
    # the registry is gone: --pull must fail rather than quietly use the local base
    r = berth("build", "--pull", "-t", "x", str(ctx))
    assert r.returncode == 1 and r.stderr.startswith("Error") and "Traceback" not in r.stderr
