"""The seccomp profile converter: Docker/Podman's conditional rules resolved for one
container (its capabilities, this machine's architecture and kernel), berth's capability
gating, the bundled fallback profile and ``--security-opt seccomp=...`` parsing.

The container tests (tests/security/test_container_security.py) show the filter working in
a real container; these pin every rule of the conversion, quickly."""

from __future__ import annotations

import json
import os

import pytest

from berth.container import seccomp
from berth.errors import InvalidArgument

MACHINE = os.uname().machine
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(MACHINE, "")
needs_known_arch = pytest.mark.skipif(not GOARCH, reason=f"{MACHINE}: no arch table entry")


def _names(out: dict, action: str = "SCMP_ACT_ALLOW") -> set[str]:
    return {n for r in out["syscalls"] if r["action"] == action for n in r["names"]}


def _rule(names: list[str], action: str = "SCMP_ACT_ALLOW", **kw: object) -> dict:
    return {"names": names, "action": action, **kw}


def test_caps_conditions():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        _rule(["needs_admin"], includes={"caps": ["CAP_SYS_ADMIN"]}),
        _rule(["needs_both"], includes={"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}),
        _rule(["unless_admin"], excludes={"caps": ["CAP_SYS_ADMIN"]}),
        _rule(["always"]),
    ]}
    none = seccomp.convert(profile, frozenset(), gate=False)
    assert _names(none) == {"unless_admin", "always"}
    admin = seccomp.convert(profile, frozenset({"CAP_SYS_ADMIN"}), gate=False)
    assert _names(admin) == {"needs_admin", "always"}
    both = seccomp.convert(profile, frozenset({"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}), gate=False)
    assert _names(both) == {"needs_admin", "needs_both", "always"}
    net = seccomp.convert(profile, frozenset({"CAP_NET_ADMIN"}), gate=False)
    assert _names(net) == {"unless_admin", "always"}


@needs_known_arch
def test_arch_conditions_and_arch_map():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
        {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
        {"architecture": {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}[GOARCH],
         "subArchitectures": ["SCMP_ARCH_SUB"]},
    ], "syscalls": [
        _rule(["here"], includes={"arches": [GOARCH, "s390x"]}),
        _rule(["elsewhere"], includes={"arches": ["s390x"]}),
        _rule(["not_here"], excludes={"arches": [GOARCH]}),
        _rule(["not_elsewhere"], excludes={"arches": ["s390x"]}),
    ]}
    out = seccomp.convert(profile, frozenset(), gate=False)
    assert _names(out) == {"here", "not_elsewhere"}
    assert out["architectures"][1:] == ["SCMP_ARCH_SUB"]
    assert out["architectures"][0] in ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")


def test_explicit_architectures_kept_and_none_means_absent():
    out = seccomp.convert({"architectures": ["SCMP_ARCH_X86"], "syscalls": []}, frozenset())
    assert out["architectures"] == ["SCMP_ARCH_X86"]
    assert "architectures" not in seccomp.convert({"syscalls": []}, frozenset())


def test_min_kernel(monkeypatch):
    monkeypatch.setattr(seccomp, "_kernel", lambda: (5, 10))
    profile = {"syscalls": [
        _rule(["old"], includes={"minKernel": "4.8"}),
        _rule(["same"], includes={"minKernel": "5.10"}),
        _rule(["patch_level"], includes={"minKernel": "5.10.7"}),  # major.minor only
        _rule(["minor_newer"], includes={"minKernel": "5.11"}),
        _rule(["major_newer"], includes={"minKernel": "6.1"}),
    ]}
    assert _names(seccomp.convert(profile, frozenset(), gate=False)) == {
        "old", "same", "patch_level"}


def test_kernel_version_parsing(monkeypatch):
    class U:
        release = "6.1.0-18-amd64"
    monkeypatch.setattr(seccomp.os, "uname", lambda: U)
    assert seccomp._kernel() == (6, 1)
    U.release = "5.15rc2-foo"
    assert seccomp._kernel() == (5, 0)


def test_rule_fields_carried_over():
    arg = {"index": 0, "value": 2080505856, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ",
           "comment": "dropped"}
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
        _rule(["clone"], args=[arg]),
        _rule(["kill"], "SCMP_ACT_ERRNO", errnoRet=13),
        {"name": "single", "action": "SCMP_ACT_ALLOW"},
        _rule([], "SCMP_ACT_ALLOW"),
    ]}
    out = seccomp.convert(profile, frozenset(), gate=False)
    assert out["defaultAction"] == "SCMP_ACT_ERRNO" and out["defaultErrnoRet"] == 38
    assert out["syscalls"] == [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{k: arg[k] for k in ("index", "value", "valueTwo", "op")}]},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["single"], "action": "SCMP_ACT_ALLOW"},
    ]
    assert "defaultErrnoRet" not in seccomp.convert({"syscalls": []}, frozenset())
    assert seccomp.convert({}, frozenset())["defaultAction"] == "SCMP_ACT_ERRNO"


def test_capability_gating():
    """Docker refuses mounts, namespaces and modules in seccomp unless the capability is
    held; the gate removes them from allow rules and denies them with EPERM."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        _rule(["mount", "unshare", "read"]), _rule(["init_module"], "SCMP_ACT_LOG")]}
    out = seccomp.convert(profile, frozenset())
    assert _names(out) == {"read"}
    deny = out["syscalls"][-1]
    assert deny["action"] == "SCMP_ACT_ERRNO" and deny["errnoRet"] == 1 == seccomp.EPERM
    want = {n for names in seccomp.GATED.values() for n in names}
    assert set(deny["names"]) == want and deny["names"] == sorted(want)
    assert {"init_module"} <= _names(out, "SCMP_ACT_LOG")  # only allow rules are filtered
    admin = seccomp.convert(profile, frozenset({"CAP_SYS_ADMIN"}))
    assert _names(admin) == {"mount", "unshare", "read"}
    assert set(admin["syscalls"][-1]["names"]) == set(seccomp.GATED["CAP_SYS_MODULE"])
    full = seccomp.convert(profile, frozenset(seccomp.GATED))
    assert all(r["action"] != "SCMP_ACT_ERRNO" for r in full["syscalls"])
    ungated = seccomp.convert(profile, frozenset(), gate=False)
    assert _names(ungated) == {"mount", "unshare", "read"}
    # a rule left with no names is dropped, and the rules after it still count
    only_gated = seccomp.convert({"syscalls": [_rule(["mount"]), _rule(["read"])]}, frozenset())
    assert _names(only_gated) == {"read"}


def test_bundled_profile_conversion():
    raw = seccomp._bundled_profile()
    with open(seccomp._BUNDLED) as f:
        own = json.load(f)
    assert raw["defaultAction"] == "SCMP_ACT_ALLOW" and raw["archMap"] == own["archMap"]
    assert len(raw["syscalls"]) == len(own["deny"])
    for rule, d in zip(raw["syscalls"], own["deny"]):
        assert rule["names"] == d["names"] and rule["action"] == "SCMP_ACT_ERRNO"
        assert rule["errnoRet"] == d.get("errno", 1)
        assert rule.get("excludes") == ({"caps": d["unlessCaps"]} if d.get("unlessCaps")
                                        else None)
        assert rule.get("args") == d.get("args")
    gated_by_caps = [d for d in own["deny"] if d.get("unlessCaps")]
    assert gated_by_caps, "the bundled profile has capability-conditional entries"
    d = gated_by_caps[0]
    without = _names(seccomp.convert(raw, frozenset(), gate=False), "SCMP_ACT_ERRNO")
    with_cap = _names(seccomp.convert(raw, frozenset(d["unlessCaps"]), gate=False),
                      "SCMP_ACT_ERRNO")
    assert set(d["names"]) <= without and not set(d["names"]) <= with_cap


@pytest.mark.parametrize("system", [True, False])
def test_default_profile_source_and_cache(monkeypatch, tmp_path, system):
    seccomp._cache.clear()
    if not system:
        monkeypatch.setattr(seccomp, "SYSTEM_PROFILE", str(tmp_path / "absent.json"))
    first = seccomp.default_profile(["CAP_CHOWN"])
    assert seccomp.default_profile(frozenset({"CAP_CHOWN"})) is first  # cached per caps
    assert seccomp.default_profile(["CAP_KILL"]) is not first
    # the gate always applies to the default profile
    assert "mount" in _names(first, "SCMP_ACT_ERRNO")
    want_default = ("SCMP_ACT_ERRNO" if system and os.path.exists(seccomp.SYSTEM_PROFILE)
                    else "SCMP_ACT_ALLOW")
    assert first["defaultAction"] == want_default
    seccomp._cache.clear()


def test_load_profile(tmp_path):
    assert seccomp.load_profile("unconfined", []) is None
    assert seccomp.load_profile("default", ["CAP_CHOWN"]) == seccomp.default_profile(
        ["CAP_CHOWN"])
    assert seccomp.load_profile("", []) == seccomp.default_profile([])
    own = tmp_path / "p.json"
    own.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [_rule(["mount"])]}))
    out = seccomp.load_profile(str(own), [])
    assert out is not None and _names(out) == {"mount"}  # a user's profile: not gated
    with pytest.raises(InvalidArgument, match="opening seccomp profile"):
        seccomp.load_profile(str(tmp_path / "missing.json"), [])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="opening seccomp profile"):
        seccomp.load_profile(str(tmp_path / "bad.json"), [])
