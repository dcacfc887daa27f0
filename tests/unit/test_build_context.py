"""Build contexts: source resolution that cannot escape, safe tar unpacking, content hash."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from berth.build.context import BuildContext, ContextError
from berth.errors import InvalidArchive


@pytest.fixture
def ctx_dir(tmp_path):
    root = tmp_path / "ctx"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a")
    (root / "src" / "sub" / "b.txt").write_text("b")
    (root / "index.js").write_text("js")
    (root / "index.ts").write_text("ts")
    (root / "x.png").write_text("png")
    (root / "arr[0].txt").write_text("arr")
    (root / "secret.key").write_text("k")
    (root / "Dockerfile").write_text("FROM x\n")
    (root / ".dockerignore").write_text("*.key\nDockerfile\n")
    return root


def test_resolve_literal_glob_and_root(ctx_dir):
    ctx = BuildContext.from_dir(ctx_dir)
    assert ctx.resolve_sources(["index.?s"]) == ["index.js", "index.ts"]
    assert ctx.resolve_sources(["*.png", "/src/", "./src/a.txt"]) == ["x.png", "src", "src/a.txt"]
    assert ctx.resolve_sources(["arr[[]0].txt"]) == ["arr[0].txt"]
    assert ctx.resolve_sources(["."]) == ["."]
    assert ctx.resolve_sources(["src/**/*.txt"]) == ["src/a.txt", "src/sub/b.txt"]


def test_resolve_errors(ctx_dir):
    ctx = BuildContext.from_dir(ctx_dir)
    with pytest.raises(ContextError, match=r"^forbidden path outside the build context: \.\./x$"):
        ctx.resolve_sources(["../x"])
    with pytest.raises(ContextError, match="forbidden path outside the build context"):
        ctx.resolve_sources(["src/../../x"])
    with pytest.raises(ContextError) as ei:
        ctx.resolve_sources(["missing"])
    assert str(ei.value) == ("file not found in build context or excluded by .dockerignore: "
                             "stat missing: file does not exist")
    with pytest.raises(ContextError, match="excluded by .dockerignore"):
        ctx.resolve_sources(["secret.key"])           # ignored looks absent
    with pytest.raises(ContextError, match="^COPY failed: no source files were specified$"):
        ctx.resolve_sources(["*.nothing"])
    with pytest.raises(ContextError, match="^ADD failed"):
        ctx.resolve_sources(["*.key"], instruction="ADD")


def test_dockerfile_readable_even_if_ignored(ctx_dir):
    ctx = BuildContext.from_dir(ctx_dir)
    assert ctx.read_dockerfile() == "FROM x\n"
    with pytest.raises(ContextError):
        ctx.resolve_sources(["Dockerfile"])


def test_symlinks_stay_inside(ctx_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root")
    os.symlink(str(outside), ctx_dir / "evil")
    os.symlink("/", ctx_dir / "rootlink")
    ctx = BuildContext.from_dir(ctx_dir)
    # an absolute target is re-rooted inside the context, so nothing outside is reachable
    with pytest.raises(ContextError):
        ctx.resolve_sources(["evil/passwd"])
    assert ctx.host_path("rootlink/src/a.txt") == os.path.join(ctx.root, "src", "a.txt")
    assert ctx.host_path("evil").startswith(ctx.root)


def test_content_hash_ignores_mtime_but_sees_bytes_and_modes(ctx_dir):
    ctx = BuildContext.from_dir(ctx_dir)
    srcs = ctx.resolve_sources(["src"])
    h1 = ctx.content_hash(srcs)
    assert h1.startswith("sha256:") and ctx.content_hash(srcs) == h1
    os.utime(ctx_dir / "src" / "a.txt", (1, 1))
    assert ctx.content_hash(srcs) == h1
    (ctx_dir / "src" / "sub" / "b.txt").write_text("B")
    h2 = ctx.content_hash(srcs)
    assert h2 != h1
    os.chmod(ctx_dir / "src" / "sub" / "b.txt", 0o600)
    assert ctx.content_hash(srcs) != h2
    assert ctx.content_hash(["index.js"]) != ctx.content_hash(["index.ts"])


def test_content_hash_hard_link_edit(ctx_dir, tmp_path):
    ctx = BuildContext.from_dir(ctx_dir)
    before = ctx.content_hash(["src"])
    outside_link = tmp_path / "hardlink"
    os.link(ctx_dir / "src" / "a.txt", outside_link)
    assert ctx.content_hash(["src"]) == before      # a link elsewhere changes nothing copied
    inside_link = ctx_dir / "src" / "sub" / "a-link"
    os.link(ctx_dir / "src" / "a.txt", inside_link)
    with_link = ctx.content_hash(["src"])
    assert with_link != before
    st = os.stat(ctx_dir / "src" / "a.txt")
    with open(outside_link, "w") as f:                # same size, same mtime, other bytes
        f.write("z")
    os.utime(ctx_dir / "src" / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ctx.content_hash(["src"]) != with_link


def test_content_hash_skips_ignored(ctx_dir):
    ctx = BuildContext.from_dir(ctx_dir)
    h = ctx.content_hash(["."])
    (ctx_dir / "other.key").write_text("ignored")
    assert ctx.content_hash(["."]) == h
    names = [rel for rel, _ in ctx.iter_files(".")]
    assert "secret.key" not in names and "src/sub/b.txt" in names


def test_exception_inside_ignored_dir(tmp_path):
    (tmp_path / "build" / "deep").mkdir(parents=True)
    (tmp_path / "build" / "deep" / "keep.txt").write_text("k")
    (tmp_path / "build" / "drop.txt").write_text("d")
    ctx = BuildContext.from_dir(tmp_path, ["build", "!build/deep/keep.txt"])
    names = [rel for rel, _ in ctx.iter_files(".")]
    assert "build/deep/keep.txt" in names and "build/drop.txt" not in names


def _tar(members) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, kind, data, link in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            payload = io.BytesIO(data) if data is not None else None
            ti.size = len(data) if data is not None else 0
            tf.addfile(ti, payload)
    buf.seek(0)
    return buf


def test_from_tar_roundtrip_and_dockerignore():
    stream = _tar([("Dockerfile", tarfile.REGTYPE, b"FROM x\n", ""),
                   (".dockerignore", tarfile.REGTYPE, b"**/*.log\n", ""),
                   ("app/", tarfile.DIRTYPE, None, ""),
                   ("app/main.py", tarfile.REGTYPE, b"print(1)\n", ""),
                   ("app/debug.log", tarfile.REGTYPE, b"x", ""),
                   ("app/link", tarfile.SYMTYPE, None, "main.py"),
                   ("app/hard", tarfile.LNKTYPE, None, "app/main.py")])
    with BuildContext.from_tar(stream) as ctx:
        root = ctx.root
        assert ctx.read_dockerfile() == "FROM x\n"
        assert ctx.resolve_sources(["app/*"]) == ["app/hard", "app/link", "app/main.py"]
        assert os.path.samefile(os.path.join(root, "app/hard"), os.path.join(root, "app/main.py"))
    assert not os.path.exists(root)


@pytest.mark.parametrize("members", [
    [("../escape", tarfile.REGTYPE, b"x", "")],
    [("/abs", tarfile.REGTYPE, b"x", "")],
    [("a/../../escape", tarfile.REGTYPE, b"x", "")],
    [("link", tarfile.SYMTYPE, None, "/tmp"), ("link/owned", tarfile.REGTYPE, b"x", "")],
    [("hl", tarfile.LNKTYPE, None, "../../etc/passwd")],
    [("hl", tarfile.LNKTYPE, None, "/etc/passwd")],
])
def test_from_tar_rejects_escapes(members, tmp_path):
    work = tmp_path / "work"  # a private temp dir: /tmp is shared with parallel tests
    work.mkdir()
    with pytest.raises(InvalidArchive):
        BuildContext.from_tar(_tar(members), tmp_dir=str(work))
    assert not os.path.exists("/tmp/owned")
    assert os.listdir(work) == []  # the half-unpacked context was removed


def test_from_dockerfile_only():
    ctx = BuildContext.from_dockerfile_only("FROM x\n")
    assert ctx.read_dockerfile() == "FROM x\n"
    with pytest.raises(ContextError, match="file not found in build context"):
        ctx.resolve_sources(["a"])
    with pytest.raises(ContextError, match="no source files were specified"):
        ctx.resolve_sources(["*"])
