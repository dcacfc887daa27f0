"""Image configs: validation, canonical building (stable image IDs), chain IDs, --change."""

from __future__ import annotations

import hashlib
import json

import pytest

from berth.errors import InvalidArgument, InvalidManifest
from berth.oci.digest import sha256_bytes
from berth.oci.image_config import apply_changes, chain_ids, new_config, parse_config

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
CREATED = "2024-01-02T03:04:05Z"


def _cfg(**over):
    doc = {"architecture": "amd64", "os": "linux",
           "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
           "history": [{"created_by": "a"}, {"created_by": "b", "empty_layer": True},
                       {"created_by": "c"}]}
    doc.update(over)
    return json.dumps(doc).encode()


def test_parse_valid():
    doc = parse_config(_cfg())
    assert doc["rootfs"]["diff_ids"] == [D1, D2]


@pytest.mark.parametrize("raw, needle", [
    (b"{", "JSON"),
    (b"[]", "object"),
    (_cfg(rootfs=None), "rootfs"),
    (_cfg(rootfs={"type": "tar", "diff_ids": []}), "rootfs.type"),
    (_cfg(rootfs={"type": "layers", "diff_ids": ["sha256:zz"]}), "diff_id"),
    (_cfg(rootfs={"type": "layers", "diff_ids": [D1, "../x"]}), "diff_id"),
    (_cfg(history=[{"created_by": "a"}]), "history"),
    (_cfg(config={"Env": "A=B"}), "Env"),
    (_cfg(config={"Labels": {"a": 1}}), "Labels"),
    (_cfg(architecture=5), "architecture"),
])
def test_parse_invalid(raw, needle):
    with pytest.raises(InvalidManifest) as ei:
        parse_config(raw)
    assert needle in str(ei.value) and "\n" not in str(ei.value)


def test_new_config_is_canonical_and_valid():
    kw = dict(diff_ids=[D1], architecture="amd64", created=CREATED,
              config={"Labels": {"b": "2", "a": "1"}, "Cmd": ["sh"], "Env": ["PATH=/bin"]},
              history=[{"created_by": "import", "created": CREATED}])
    a = new_config(**kw)
    kw["config"] = {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"a": "1", "b": "2"}}
    b = new_config(**kw)
    assert a == b and sha256_bytes(a) == sha256_bytes(b)
    doc = parse_config(a)
    assert list(doc) == ["created", "architecture", "os", "config", "rootfs", "history"]
    assert list(doc["config"]) == ["Env", "Cmd", "Labels"]
    assert list(doc["history"][0]) == ["created", "created_by"]
    assert b" " not in a.replace(b"created_by", b"")


def test_new_config_defaults_host_arch():
    doc = json.loads(new_config(diff_ids=[], created=CREATED))
    assert doc["architecture"] in ("amd64", "arm64") or doc["architecture"]
    assert doc["os"] == "linux" and doc["rootfs"] == {"type": "layers", "diff_ids": []}


def test_new_config_rejects_history_mismatch():
    with pytest.raises(InvalidManifest):
        new_config(diff_ids=[D1, D2], created=CREATED, history=[{"created_by": "x"}])


def test_chain_ids():
    assert chain_ids([]) == []
    assert chain_ids([D1]) == [D1]
    c1 = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {D3}".encode()).hexdigest()
    assert chain_ids([D1, D2, D3]) == [D1, c1, c2]


def test_changes_cmd_entrypoint():
    base = {"Cmd": ["sh"], "Env": ["PATH=/bin"]}
    out = apply_changes(base, ['CMD ["echo", "hi"]'])
    assert out["Cmd"] == ["echo", "hi"] and base["Cmd"] == ["sh"]
    assert apply_changes(base, ["CMD echo hi"])["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    out = apply_changes(base, ["ENTRYPOINT /entry.sh"])
    assert out["Entrypoint"] == ["/bin/sh", "-c", "/entry.sh"] and out["Cmd"] is None
    out = apply_changes(base, ["CMD x", 'ENTRYPOINT ["/e"]'])
    assert out["Entrypoint"] == ["/e"] and out["Cmd"] == ["/bin/sh", "-c", "x"]


def test_changes_env():
    base = {"Env": ["PATH=/bin", "A=1"]}
    out = apply_changes(base, ['ENV A=2 B="two words" C=x\\ y', "ENV D hello  world"])
    assert out["Env"] == ["PATH=/bin", "A=2", "B=two words", "C=x y", "D=hello  world"]
    assert apply_changes({}, ["env K 'quoted v'"])["Env"] == ["K=quoted v"]


def test_changes_misc():
    out = apply_changes({"WorkingDir": "/app"}, [
        "WORKDIR sub", "USER 1000:1000", "EXPOSE 80 53/udp 8000-8001/tcp",
        'LABEL a=b "c d"="e f" version=1.0', 'VOLUME ["/data", "/logs"]', "VOLUME /x /y",
        "STOPSIGNAL SIGINT"])
    assert out["WorkingDir"] == "/app/sub"
    assert out["User"] == "1000:1000"
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert out["Labels"] == {"a": "b", "c d": "e f", "version": "1.0"}
    assert out["Volumes"] == {"/data": {}, "/logs": {}, "/x": {}, "/y": {}}
    assert out["StopSignal"] == "SIGINT"
    assert apply_changes({}, ["WORKDIR /abs"])["WorkingDir"] == "/abs"


def test_changes_healthcheck_onbuild():
    out = apply_changes({}, ["HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://x/",
                             "ONBUILD RUN echo hi"])
    assert out["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://x/"],
                                  "Interval": 30_000_000_000, "Retries": 3}
    assert out["OnBuild"] == ["RUN echo hi"]
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize("line, needle", [
    ("RUN echo hi", "RUN is not a valid change command"),
    ("FROM busybox", "not a valid change command"),
    ("BOGUS x", "not a valid change command"),
    ("EXPOSE 99999", "invalid containerPort"),
    ("EXPOSE 80/icmp", "invalid containerPort"),
    ('ENV A="unterminated', "matching"),
    ("CMD", "requires"),
    ("LABEL =x", "LABEL"),
])
def test_changes_invalid(line, needle):
    with pytest.raises(InvalidArgument) as ei:
        apply_changes({}, [line])
    assert needle in str(ei.value) and "\n" not in str(ei.value)
