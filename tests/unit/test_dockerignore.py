""".dockerignore: Docker's pattern rules, exceptions, and safe directory pruning."""

from __future__ import annotations

import pytest

from berth.build.dockerignore import IgnoreMatcher, parse_dockerignore, read_dockerignore


def m(*patterns: str) -> IgnoreMatcher:
    return IgnoreMatcher(parse_dockerignore("\n".join(patterns)))


def test_parse_normalises():
    text = "\ufeff# comment\n  \n/foo/\n./bar/../baz\n ! /keep \n#not/a/pattern\n  #x\n*.md\n"
    assert parse_dockerignore(text) == ["foo", "baz", "!keep", "#x", "*.md"]


@pytest.mark.parametrize("patterns,path,ignored", [
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "temp", False),
    (["*/*/temp*"], "a/b/temp.x", True),
    (["temp?"], "temp1", True),
    (["temp?"], "temp12", False),
    (["*.md"], "README.md", True),
    (["*.md"], "docs/README.md", False),     # * does not cross /
    (["**/*.md"], "docs/a/README.md", True),
    (["**/*.md"], "README.md", True),        # ** matches zero directories too
    (["docs/**"], "docs/a/b", True),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["node_modules"], "node_modules/pkg/index.js", True),   # parents excluded
    (["/node_modules/"], "node_modules", True),
    (["[a-c]at"], "bat", True),
    (["[a-c]at"], "dat", False),
    (["[^a]at"], "bat", True),
    (["\\*star"], "*star", True),
    (["\\*star"], "xstar", False),
    (["file.txt"], "fileXtxt", False),
    (["*", "!README.md"], "README.md", False),
    (["*", "!README.md"], "main.py", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),  # last wins
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/keep/inner.txt", False),
    (["dir", "!dir/keep"], "dir/other", True),
    ([], "anything", False),
])
def test_matches(patterns, path, ignored):
    assert m(*patterns).matches(path) is ignored


def test_root_is_never_ignored():
    assert not m("*").matches(".")


def test_can_skip_dir():
    assert m("build").can_skip_dir("build")
    assert not m("build").can_skip_dir("src")
    assert not m("build", "!build/keep.txt").can_skip_dir("build")
    assert m("build", "!src/keep.txt").can_skip_dir("build")
    assert not m("build", "!**/keep.txt").can_skip_dir("build")
    assert not m("*", "!*/keep").can_skip_dir("anydir")
    assert not m("a", "!a").can_skip_dir("a")
    assert not m("a", "!a").can_skip_dir("a/b")            # the exception re-includes a/b
    assert m("a", "!a/x/y").can_skip_dir("a/z")
    assert not m("a", "!a/x/y").can_skip_dir("a/x")


def test_read_dockerignore_prefers_dockerfile_specific(tmp_path):
    (tmp_path / ".dockerignore").write_text("generic\n")
    sub = tmp_path / "ci"
    sub.mkdir()
    (sub / "Dockerfile.dev").write_text("FROM x\n")
    (sub / "Dockerfile.dev.dockerignore").write_text("specific\n")
    assert read_dockerignore(tmp_path, "ci/Dockerfile.dev").matches("specific")
    assert not read_dockerignore(tmp_path, "ci/Dockerfile.dev").matches("generic")
    assert read_dockerignore(tmp_path, "Dockerfile").matches("generic")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not read_dockerignore(empty)
