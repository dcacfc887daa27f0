"""The default seccomp filter, in the OCI ``linux.seccomp`` form, for a given cap set.

Source of truth, in order: the host's ``/usr/share/containers/seccomp.json`` (the profile
Podman ships, Docker's format with ``includes``/``excludes``), else berth's own bundled
deny-list ``berth/data/seccomp.json``. Both are resolved here against the container's
capabilities and the host architecture, because the OCI runtime only understands plain
rules. On top of either, the mount family and module loading are refused unless the
container holds the matching capability: Podman's profile leaves ``mount`` to capability
checks alone, Docker's refuses it in seccomp too, and we follow Docker.
"""

from __future__ import annotations

import json
import os

from ..errors import InvalidArgument

SYSTEM_PROFILE = "/usr/share/containers/seccomp.json"
_BUNDLED = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "seccomp.json")
EPERM = 1

# Syscalls refused unless the container holds the capability (Docker's gating).
GATED: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": ("mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig",
                      "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
                      "unshare", "setns"),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
}

# uname machine -> (Go arch names used by ``includes.arches``, libseccomp arch names)
_ARCHES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "x86_64": (("amd64",), ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": (("arm64",), ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "armv7l": (("arm",), ("SCMP_ARCH_ARM",)),
    "i686": (("386", "x86"), ("SCMP_ARCH_X86",)),
    "ppc64le": (("ppc64le",), ("SCMP_ARCH_PPC64LE",)),
    "s390x": (("s390x",), ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
    "riscv64": (("riscv64",), ("SCMP_ARCH_RISCV64",)),
}

_cache: dict[tuple[str, frozenset[str]], dict] = {}


def _kernel() -> tuple[int, ...]:
    nums = []
    for part in os.uname().release.split("-")[0].split(".")[:2]:
        nums.append(int(part) if part.isdigit() else 0)
    return tuple(nums)


def _applies(rule: dict, caps: frozenset[str], goarch: tuple[str, ...]) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("arches") and not any(a in goarch for a in inc["arches"]):
        return False
    if inc.get("minKernel"):
        want = tuple(int(x) for x in str(inc["minKernel"]).split(".")[:2] if x.isdigit())
        if _kernel() < want:
            return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    if exc.get("arches") and any(a in goarch for a in exc["arches"]):
        return False
    return True


def convert(profile: dict, caps: frozenset[str], gate: bool = True) -> dict:
    """Resolve a Docker/Podman-format profile into an OCI ``linux.seccomp`` object.

    ``gate`` adds berth's capability gating (default profile only: a user's own profile
    is applied as written).
    """
    goarch, scmp = _ARCHES.get(os.uname().machine, ((), ()))
    out: dict = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO")}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") in scmp:
            arches = [entry["architecture"], *entry.get("subArchitectures", [])]
            break
    if arches:
        out["architectures"] = arches
    gated = {n for cap, names in GATED.items() if cap not in caps for n in names} if gate else set()
    rules = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, goarch):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if rule.get("action") == "SCMP_ACT_ALLOW":
            names = [n for n in names if n not in gated]
        if not names:
            continue
        new = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            new["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            new["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                           for a in rule["args"]]
        rules.append(new)
    if gated:
        rules.append({"names": sorted(gated), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM})
    out["syscalls"] = rules
    return out


def _bundled_profile() -> dict:
    """berth's own format: default-allow plus a caps-aware deny list (see the JSON)."""
    with open(_BUNDLED, encoding="utf-8") as f:
        own = json.load(f)
    syscalls = []
    for d in own["deny"]:
        rule = {"names": d["names"], "action": "SCMP_ACT_ERRNO",
                "errnoRet": d.get("errno", EPERM)}
        if d.get("unlessCaps"):
            rule["excludes"] = {"caps": d["unlessCaps"]}
        if d.get("args"):
            rule["args"] = d["args"]
        syscalls.append(rule)
    return {"defaultAction": "SCMP_ACT_ALLOW", "archMap": own["archMap"], "syscalls": syscalls}


def default_profile(caps: list[str] | frozenset[str], source: str | None = None) -> dict:
    """The converted default profile; cached per process since every run asks for it."""
    path = source or (SYSTEM_PROFILE if os.path.exists(SYSTEM_PROFILE) else _BUNDLED)
    key = (path, frozenset(caps))
    if key not in _cache:
        if path == _BUNDLED:
            raw = _bundled_profile()
        else:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        _cache[key] = convert(raw, key[1])
    return _cache[key]


def load_profile(spec: str, caps: list[str]) -> dict | None:
    """``default`` | ``unconfined`` (None: no filter) | path to a profile in Docker's format.

    A user file in OCI form already (no includes, no archMap) passes through unchanged
    apart from the capability resolution, which is a no-op for it.
    """
    if spec in ("", "default"):
        return default_profile(caps)
    if spec == "unconfined":
        return None
    try:
        with open(spec, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"opening seccomp profile ({spec}) failed: {e}") from e
    return convert(raw, frozenset(caps), gate=False)
