"""Build planning: stages, --target pruning, ARG/ENV scoping, mounts, cache keys."""

from __future__ import annotations

import pytest

from berth.build.cachekey import step_cache_key
from berth.build.parser import parse_dockerfile
from berth.build.plan import DEFAULT_PATH, plan, platform_args
from berth.errors import DockerfileError


def P(text: str, args=None, target=None, **kw):
    return plan(parse_dockerfile(text), args or {}, target, **kw)


def steps(p, stage=-1):
    return p.stages[stage].steps if stage != -1 else p.target.steps


MULTI = """\
FROM alpine AS base
RUN base
FROM base AS dev
RUN dev
FROM golang AS build
RUN build
FROM base AS prod
COPY --from=build /app /app
FROM scratch AS unrelated
"""


def test_default_target_is_last_stage():
    p = P(MULTI)
    assert p.target.name == "unrelated" and p.order == [4]


def test_target_pruning_and_order():
    p = P(MULTI, target="prod")
    assert [s.name for s in p.build_stages] == ["base", "build", "prod"]
    assert p.stages[3].base_stage == 0 and p.stages[3].deps == {0, 2}
    assert p.stages[1].steps == []            # dev is not built, not expanded
    assert P(MULTI, target="DEV").order == [0, 1]


def test_unknown_target():
    with pytest.raises(DockerfileError, match='^target stage "nope" could not be found$'):
        P(MULTI, target="nope")


def test_copy_from_index_and_image():
    p = P("FROM a\nRUN x\nFROM b\nCOPY --from=0 /x /y\nCOPY --from=nginx:latest /etc/nginx/nginx.conf /n\n")
    s = p.target
    assert s.deps == {0} and s.image_deps == ["nginx:latest"]
    assert [st.copy_from for st in s.steps] == [0, "nginx:latest"]
    assert p.order == [0, 1]
    with pytest.raises(DockerfileError, match="refers to current or future build stage"):
        P("FROM a\nCOPY --from=0 /x /y\n")


def test_forward_reference_by_name_and_cycles():
    p = P("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nRUN y\n", target="one")
    assert p.order == [1, 0]
    with pytest.raises(DockerfileError, match="circular dependency"):
        P("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n", target="two")


def test_global_args_feed_from_only():
    text = "ARG CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nRUN echo\nUSER ${CODE_VERSION:-none}\n"
    p = P(text)
    assert p.target.base == "base:latest"
    assert p.target.steps[1].args == ["none"]          # not redeclared → invisible
    assert P(text, {"CODE_VERSION": "1.2"}).target.base == "base:1.2"


def test_redeclared_global_arg_takes_global_value():
    p = P("ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nRUN echo $VERSION\n",
          {"VERSION": "1.36"})
    assert p.target.base == "busybox:1.36"
    run = p.target.steps[1]
    assert run.build_args == {"VERSION": "1.36"} and run.cache_args == {"VERSION": "1.36"}
    p = P("ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nRUN echo\n")
    assert p.target.steps[1].build_args == {"VERSION": "latest"}


def test_arg_scope_starts_at_declaration():
    text = "FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n"
    s = P(text, {"username": "what_user"}).target.steps
    assert s[0].args == ["some_user"] and s[2].args == ["what_user"]


def test_env_overrides_arg():
    text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n"
    run = P(text, {"CONT_IMG_VER": "v2.0.1"}).target.steps[2]
    assert run.run_env()["CONT_IMG_VER"] == "v1.0.0"
    text2 = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n"
    assert P(text2).target.steps[1].pairs == [("CONT_IMG_VER", "v1.0.0")]
    assert P(text2, {"CONT_IMG_VER": "v2"}).target.steps[1].pairs == [("CONT_IMG_VER", "v2")]


def test_env_same_value_within_instruction_and_base_env():
    text = "FROM img\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nENV PATH=$PATH:/x\n"
    p = P(text, image_env=lambda ref, plat: ["PATH=/usr/bin"])
    s = p.target.steps
    assert s[1].pairs == [("abc", "bye"), ("def", "hello")]
    assert s[2].pairs == [("ghi", "bye")]
    assert s[3].pairs == [("PATH", "/usr/bin:/x")]
    assert p.target.env["PATH"] == "/usr/bin:/x"


def test_child_stage_inherits_env_and_args():
    text = "FROM a AS base\nARG V=1\nENV E=e\nFROM base\nRUN x\nWORKDIR /$E/$V\n"
    s = P(text).target.steps
    assert s[0].build_args == {"V": "1"} and s[0].env == {"E": "e", "PATH": DEFAULT_PATH}
    assert s[1].args == ["/e/1"]


def test_default_path_at_from_when_the_base_has_none():
    """``ENV PATH=/opt/x:$PATH`` on a base without PATH (Docker sets the default at FROM)."""
    text = "FROM img\nENV PATH=/opt/x:$PATH\n"
    p = P(text, image_env=lambda ref, plat: ["HOME=/root"])
    assert p.target.steps[0].pairs == [("PATH", "/opt/x:" + DEFAULT_PATH)]
    assert P("FROM scratch\nENV P2=$PATH\n").target.steps[0].pairs == [("P2", DEFAULT_PATH)]
    own = P(text, image_env=lambda ref, plat: ["PATH=/mine"])
    assert own.target.steps[0].pairs == [("PATH", "/opt/x:/mine")]


def test_unrelated_stage_does_not_inherit_args():
    text = "FROM a AS one\nARG V=1\nFROM b\nWORKDIR /${V:-none}\n"
    assert P(text).target.steps[0].args == ["/none"]


def test_proxy_args_used_but_not_recorded():
    p = P("FROM u\nRUN echo\n", {"HTTP_PROXY": "http://p", "no_proxy": "x"})
    run = p.target.steps[0]
    assert run.proxy_args == {"HTTP_PROXY": "http://p", "no_proxy": "x"}
    assert run.build_args == {} and run.cache_args == {}
    assert run.run_env()["HTTP_PROXY"] == "http://p"
    assert p.warnings == []
    declared = P("FROM u\nARG HTTP_PROXY\nRUN echo\n", {"HTTP_PROXY": "http://p"}).target.steps[1]
    assert declared.proxy_args == {} and declared.cache_args == {"HTTP_PROXY": "http://p"}


def test_unused_build_args_warning():
    p = P("ARG G\nFROM a\nARG USED\nFROM b AS other\nARG ONLY_OTHER\n", {"foo": "1", "USED": "2", "G": "3",
          "ONLY_OTHER": "4", "SOURCE_DATE_EPOCH": "0"}, target=None)
    assert p.unused_build_args == ["USED", "foo"]     # stage 0 is not built
    assert p.warnings == ["[Warning] One or more build-args [USED foo] were not consumed"]


def test_platform_args():
    assert platform_args("linux/arm/v7", "linux/amd64")["TARGETVARIANT"] == "v7"
    text = "FROM --platform=$BUILDPLATFORM golang AS b\nARG TARGETARCH\nRUN echo $TARGETARCH\nWORKDIR /$TARGETOS$TARGETARCH\n"
    p = P(text, platform="linux/arm64", build_platform="linux/amd64")
    assert p.target.platform == "linux/amd64"
    assert p.target.steps[0].pairs == [("TARGETARCH", "arm64")]
    assert p.target.steps[2].args == ["/arm64"]   # TARGETOS was not declared in the stage
    assert P("FROM img:$TARGETARCH\n", platform="linux/arm64").target.base == "img:arm64"


def test_expansions_per_instruction():
    text = ("FROM busybox\nENV FOO=/bar P=8080\nWORKDIR ${FOO}\nADD . $FOO\nCOPY \\$FOO /quux\n"
            "RUN echo $FOO\nCMD echo $FOO\nEXPOSE $P 53/udp\nLABEL \"k\"=\"v $FOO\"\n"
            "VOLUME [\"$FOO\"]\nCOPY --chown=$P --chmod=755 a b\n")
    s = P(text).target.steps
    assert s[1].args == ["/bar"]
    assert s[2].args == [".", "/bar"]
    assert s[3].args == ["$FOO", "/quux"]
    assert s[4].args == ["echo $FOO"]           # the shell expands RUN, not the builder
    assert s[5].args == ["echo $FOO"]
    assert s[6].args == ["8080", "53/udp"]
    assert s[7].pairs == [("k", "v /bar")]
    assert s[8].args == ["/bar"]
    assert s[9].flags == {"chown": ["8080"], "chmod": ["755"]}


def test_expose_validated_after_expansion():
    with pytest.raises(DockerfileError, match="^Dockerfile:3: invalid containerPort: oops$"):
        P("FROM a\nARG P=oops\nEXPOSE $P\n")


def test_expansion_error_names_line():
    with pytest.raises(DockerfileError, match="^Dockerfile:2: "):
        P("FROM a\nWORKDIR ${X\n")


def test_copy_heredoc_expands_unless_quoted():
    text = 'FROM a\nARG FOO=bar\nCOPY <<-EOT /script.sh\n\techo "hello ${FOO}"\nEOT\nCOPY <<-"EOT" /s2\n\techo "hello ${FOO}"\nEOT\n'
    s = P(text).target.steps
    assert s[1].heredocs[0].content == 'echo "hello bar"\n'
    assert s[2].heredocs[0].content == 'echo "hello ${FOO}"\n'
    assert s[1].args == ["<<-EOT", "/script.sh"]
    assert "hello bar" in s[1].text


def test_run_mounts():
    text = ("FROM a AS tools\nFROM b\nARG CACHE=/root/.cache\n"
            "RUN --mount=type=cache,target=$CACHE,sharing=locked,id=c1 "
            "--mount=type=bind,from=tools,source=/bin,target=/t,rw "
            "--mount=type=tmpfs,dst=/tmp,size=64m --mount=type=secret,id=aws "
            "--mount=target=/src --mount=type=ssh --mount=from=alpine:3,target=/img make\n")
    p = P(text)
    cache, bind, tmpfs, secret, ctxbind, ssh, img = p.target.steps[1].mounts
    assert (cache.type, cache.target, cache.sharing, cache.id, cache.readonly) == ("cache", "/root/.cache", "locked", "c1", False)
    assert (bind.from_, bind.from_stage, bind.readonly, bind.source) == ("tools", 0, False, "/bin")
    assert (tmpfs.type, tmpfs.target, tmpfs.size) == ("tmpfs", "/tmp", 64 * 1024 * 1024)
    assert (secret.id, secret.target) == ("aws", "/run/secrets/aws")
    assert (ctxbind.type, ctxbind.target, ctxbind.readonly, ctxbind.from_) == ("bind", "/src", True, None)
    assert ssh.id == "default"
    assert img.from_stage is None and p.target.image_deps == ["alpine:3"]
    assert p.order == [0, 1]


@pytest.mark.parametrize("mount,msg", [
    ("type=nfs,target=/x", "unsupported mount type"),
    ("type=cache", "requires a target"),
    ("type=tmpfs,target=/x,from=a", "unexpected key 'from'"),
    ("type=cache,target=/x,sharing=odd", "unsupported sharing"),
])
def test_bad_mounts(mount, msg):
    with pytest.raises(DockerfileError, match=f"^Dockerfile:2: .*{msg}"):
        P(f"FROM a\nRUN --mount={mount} x\n")


def test_duplicate_stage_name():
    with pytest.raises(DockerfileError, match='Dockerfile:2: duplicate stage name "a"'):
        P("FROM x AS a\nFROM y AS A\n")


def test_cache_keys():
    base = step_cache_key("sha256:p", "RUN echo", {"A": "1"})
    assert base == step_cache_key("sha256:p", "RUN echo", {"A": "1"}, None, None)
    assert base != step_cache_key("sha256:q", "RUN echo", {"A": "1"})
    assert base != step_cache_key("sha256:p", "RUN echo ", {"A": "1"})
    assert base != step_cache_key("sha256:p", "RUN echo", {"A": "2"})
    assert base != step_cache_key("sha256:p", "RUN echo", {"A": "1"}, "sha256:src")
    assert step_cache_key("p", "x", {"a": "1", "b": "2"}) == step_cache_key("p", "x", {"b": "2", "a": "1"})


def test_step_cache_key_follows_used_args_only():
    text = "FROM u\nARG V\nRUN echo hello\n"
    k1 = P(text, {"V": "1"}).target.steps[1].cache_key("sha256:base")
    k2 = P(text, {"V": "2"}).target.steps[1].cache_key("sha256:base")
    assert k1 != k2                               # ARG in scope is the RUN's environment
    text2 = "FROM u\nRUN echo hello\n"
    k3 = P(text2, {"HTTP_PROXY": "a"}).target.steps[0].cache_key("sha256:base")
    k4 = P(text2, {"HTTP_PROXY": "b"}).target.steps[0].cache_key("sha256:base")
    assert k3 == k4                               # undeclared proxies never bust the cache
    text3 = "FROM u\nARG V\nENV X=$V\nCOPY a /b\n"
    c1 = P(text3, {"V": "1"}).target.steps[2].cache_key("p", "sha256:s")
    c2 = P(text3, {"V": "2"}).target.steps[2].cache_key("p", "sha256:s")
    assert c1 == c2                               # COPY does not see args beyond its text
