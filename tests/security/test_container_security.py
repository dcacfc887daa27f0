"""The container's security settings, each tested on its own and against Docker's values.

Every check here is paired with a run where the setting is lifted (``--privileged``,
``seccomp=unconfined``), so the probe itself is shown able to see the difference: a probe
that fails for an unrelated reason (a missing file, a missing capability) would pass
whether the guarantee holds or not.

The capability masks are Docker's literal ``CapEff`` values (``docker run busybox grep
CapEff /proc/self/status``), not berth's own table, so a wrong table fails here too.
"""

from __future__ import annotations

import json
import os

import pytest

from engine_run import run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

STATUS = "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
DOCKER_DEFAULT_CAPEFF = 0x00000000A80425FB  # Docker's 14 default capabilities


def _status(out: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines()
                                      if line.split(":", 1)[0] in
                                      ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"))}


def _own_bounding_set() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


def _probe(engine, **kw) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rec, code, out, err = run(engine, "sh", "-c", STATUS, **kw)
    assert code == 0, err
    engine.container_remove(rec.id)
    return _status(out)


@pytest.mark.parametrize(("kw", "want"), [
    ({}, DOCKER_DEFAULT_CAPEFF),
    ({"cap_add": ["NET_ADMIN"]}, DOCKER_DEFAULT_CAPEFF | 1 << 12),
    ({"cap_add": ["cap_sys_ptrace", "SYS_TIME"]}, DOCKER_DEFAULT_CAPEFF | 1 << 19 | 1 << 25),
    ({"cap_drop": ["NET_RAW", "chown"]}, DOCKER_DEFAULT_CAPEFF & ~(1 << 13 | 1 << 0)),
    ({"cap_drop": ["ALL"]}, 0),
    ({"cap_drop": ["ALL"], "cap_add": ["CHOWN", "KILL"]}, 1 << 0 | 1 << 5),
    ({"cap_add": ["NET_ADMIN"], "cap_drop": ["NET_ADMIN"]}, DOCKER_DEFAULT_CAPEFF | 1 << 12),
])
def test_capabilities_match_docker(engine, busybox_image, kw, want):
    st = _probe(engine, **kw)
    # Docker gives the same set as effective, permitted and bounding
    assert {k: int(st[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")} == dict.fromkeys(
        ("CapEff", "CapPrm", "CapBnd"), want)


@pytest.mark.parametrize("kw", [{"privileged": True}, {"cap_add": ["ALL"]}])
def test_privileged_and_cap_add_all_get_every_capability(engine, busybox_image, kw):
    # Docker grants every capability; berth every one it holds itself (root here may run
    # with a reduced bounding set, and a runtime cannot grant more than that)
    assert int(_probe(engine, **kw)["CapEff"], 16) == _own_bounding_set()


def test_seccomp_filter_is_installed(engine, busybox_image):
    assert _probe(engine)["Seccomp"] == "2"
    assert _probe(engine, security_opt=["seccomp=unconfined"])["Seccomp"] == "0"
    assert _probe(engine, privileged=True)["Seccomp"] == "0"


USERNS = "unshare -U true && echo USERNS-OK"


def test_seccomp_blocks_what_capabilities_allow(engine, busybox_image):
    """``unshare(CLONE_NEWUSER)`` needs no capability: only the profile refuses it."""
    _, code, out, err = run(engine, "sh", "-c", USERNS)
    assert "USERNS-OK" not in out and "Operation not permitted" in err, (out, err)
    _, code, out, err = run(engine, "sh", "-c", USERNS, security_opt=["seccomp=unconfined"])
    assert code == 0 and "USERNS-OK" in out, err


def test_seccomp_custom_profile(engine, busybox_image, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    probe = STATUS + "; mkdir /tmp/d && echo MKDIR-OK; " + USERNS
    _, _, out, err = run(engine, "sh", "-c", probe, security_opt=[f"seccomp={profile}"])
    st = _status(out)
    assert st["Seccomp"] == "2"
    assert "MKDIR-OK" not in out and "Operation not permitted" in err, (out, err)
    # the user's profile replaces the default one: what only the default refuses works
    assert "USERNS-OK" in out, err
    _, _, out, err = run(engine, "sh", "-c", "mkdir /tmp/d && echo MKDIR-OK")
    assert "MKDIR-OK" in out, err


@pytest.mark.parametrize("opt", ["no-new-privileges", "no-new-privileges:true",
                                 "no-new-privileges=true"])
def test_no_new_privileges(engine, busybox_image, opt):
    assert _probe(engine)["NoNewPrivs"] == "0"
    assert _probe(engine, security_opt=[opt])["NoNewPrivs"] == "1"


def test_no_new_privileges_false(engine, busybox_image):
    assert _probe(engine, security_opt=["no-new-privileges:false"])["NoNewPrivs"] == "0"


def test_kernel_modules_refused_by_the_profile(engine, busybox_image):
    """``insmod`` of a file that exists: refused (EPERM) unless privileged.

    Privileged, the kernel itself gets to look at the file and answers something else
    (ENOSYS without module support, ENOEXEC for a non-module), which proves the
    unprivileged EPERM came from berth's settings and not from the probe.
    """
    _, _, _, err = run(engine, "insmod", "/bin/busybox")
    assert "Operation not permitted" in err
    _, _, _, err = run(engine, "insmod", "/bin/busybox", privileged=True)
    assert "insmod" in err and "Operation not permitted" not in err
