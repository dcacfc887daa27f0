"""Image configs: validate what we are given, build what we write, derive chain IDs.

The config's digest *is* the image ID, so building one must be deterministic (fixed key
order, compact JSON): import, commit and build of the same inputs give the same ID. Parsing
checks the two facts the layer store will lean on — every diff_id is a real digest, and
history agrees with the layer count — so a bad config is refused at the door rather than
half-way through unpacking layers.

:func:`apply_changes` (``--change`` lines of ``import``/``commit``) lives in
:mod:`berth.oci.config_changes` and is re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from berth.errors import InvalidDigest, InvalidManifest
from berth.oci.config_changes import apply_changes
from berth.oci.digest import validate
from berth.oci.manifest import host_arch

__all__ = ["parse_config", "new_config", "chain_ids", "apply_changes", "canonical_config",
           "finish_config", "MAX_CONFIG_SIZE"]

MAX_CONFIG_SIZE = 8 * 1024 * 1024

# Docker's container.Config field order, so configs we write read like Docker's.
_CONFIG_ORDER = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
    "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
    "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
)
_MAP_KEYS = ("ExposedPorts", "Volumes", "Labels")
_HISTORY_ORDER = ("created", "created_by", "author", "comment", "empty_layer")
_STR_LISTS = ("Env", "Cmd", "Entrypoint", "OnBuild", "Shell")
_STRS = ("WorkingDir", "User", "StopSignal")


def _fail(msg: str) -> InvalidManifest:
    return InvalidManifest(f"invalid image config: {msg}")


def _check_inner(cfg: Any) -> None:
    """Type-check the container config fields a runtime will consume."""
    if cfg is None:
        return
    if not isinstance(cfg, dict):
        raise _fail("config must be an object")
    for key in _STR_LISTS:
        v = cfg.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(s, str) for s in v)):
            raise _fail(f"config.{key} must be a list of strings")
    for key in _STRS:
        v = cfg.get(key)
        if v is not None and not isinstance(v, str):
            raise _fail(f"config.{key} must be a string")
    for key in _MAP_KEYS:
        v = cfg.get(key)
        if v is not None and not isinstance(v, dict):
            raise _fail(f"config.{key} must be an object")
    labels = cfg.get("Labels")
    if labels and not all(isinstance(v, str) for v in labels.values()):
        raise _fail("config.Labels values must be strings")
    hc = cfg.get("Healthcheck")
    if hc is not None and not isinstance(hc, dict):
        raise _fail("config.Healthcheck must be an object")


def _non_empty_history(history: Any) -> int:
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise _fail("history must be a list of objects")
    return sum(1 for h in history if not h.get("empty_layer"))


def _check_diff_ids(diff_ids: Any) -> list[str]:
    if not isinstance(diff_ids, list):
        raise _fail("rootfs.diff_ids must be a list")
    for d in diff_ids:
        try:
            validate(d if isinstance(d, str) else "", algorithms=("sha256", "sha512"))
        except InvalidDigest:
            raise _fail(f"invalid diff_id {d!r}") from None
    return diff_ids


def parse_config(raw: bytes) -> dict[str, Any]:
    """Parse and validate an image config; return the JSON object as a dict."""
    if len(raw) > MAX_CONFIG_SIZE:
        raise _fail(f"too large: {len(raw)} bytes (limit {MAX_CONFIG_SIZE})")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail(f"not valid JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise _fail("top level must be a JSON object")
    for key in ("architecture", "os", "created", "author", "variant"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise _fail(f"{key} must be a string")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict):
        raise _fail("rootfs is missing")
    if rootfs.get("type") != "layers":
        raise _fail(f"rootfs.type must be 'layers', got {rootfs.get('type')!r}")
    diff_ids = _check_diff_ids(rootfs.get("diff_ids", []))
    _check_inner(doc.get("config"))
    if doc.get("history") is not None:
        n = _non_empty_history(doc["history"])
        if n != len(diff_ids):
            raise _fail(f"history has {n} non-empty layer entries but rootfs has "
                        f"{len(diff_ids)} diff_ids")
    return doc


def _ordered_inner(cfg: dict[str, Any]) -> dict[str, Any]:
    """Container config with Docker's key order; maps sorted; None values dropped."""
    out: dict[str, Any] = {}
    keys = [k for k in _CONFIG_ORDER if k in cfg] + sorted(k for k in cfg if k not in _CONFIG_ORDER)
    for k in keys:
        v = cfg[k]
        if v is None:
            continue
        if k in _MAP_KEYS and isinstance(v, dict):
            v = {mk: v[mk] for mk in sorted(v)}
        out[k] = v
    return out


def _ordered_history(h: dict[str, Any]) -> dict[str, Any]:
    out = {k: h[k] for k in _HISTORY_ORDER if h.get(k) not in (None, "", False)}
    out.update({k: h[k] for k in sorted(h) if k not in _HISTORY_ORDER and h[k] is not None})
    return out


def canonical_config(doc: dict[str, Any]) -> bytes:
    """Serialise a config dict in the OCI struct's key order, compactly.

    ``new_config`` builds through this; callers that edit a parsed config (``commit``,
    ``--change``) use it too so equal content always gives an equal image ID.
    """
    out: dict[str, Any] = {}
    head = ("created", "author", "architecture", "os", "os.version", "os.features", "variant")
    for k in head:
        if doc.get(k) not in (None, ""):
            out[k] = doc[k]
    if "config" in doc and doc["config"] is not None:
        out["config"] = _ordered_inner(doc["config"])
    rootfs = doc.get("rootfs") or {"type": "layers", "diff_ids": []}
    out["rootfs"] = {"type": rootfs.get("type", "layers"),
                     "diff_ids": list(rootfs.get("diff_ids") or [])}
    if doc.get("history") is not None:
        out["history"] = [_ordered_history(h) for h in doc["history"]]
    known = {*head, "rootfs", "history", "config"}
    for k in sorted(doc):
        if k not in known and doc[k] is not None:
            out[k] = doc[k]
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def new_config(*, diff_ids: list[str], architecture: str | None = None, os: str = "linux",
               created: str, author: str = "", config: dict[str, Any] | None = None,
               history: list[dict[str, Any]] | None = None,
               variant: str | None = None) -> bytes:
    """Build a canonical image config; validated by :func:`parse_config` before returning."""
    doc: dict[str, Any] = {
        "created": created,
        "author": author,
        "architecture": architecture or host_arch(),
        "os": os,
        "variant": variant,
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": list(history) if history is not None else None,
    }
    raw = canonical_config(doc)
    parse_config(raw)
    return raw


def finish_config(doc: dict[str, Any]) -> bytes:
    """The stored bytes of an edited config (commit, build): Docker-only legacy keys
    dropped, canonical JSON so equal content keeps an equal image ID, and validated."""
    for legacy in ("container", "container_config", "docker_version"):
        doc.pop(legacy, None)
    raw = canonical_config(doc)
    parse_config(raw)
    return raw


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs: each names a layer *together with everything beneath it*.

    ``chain[0] = diff[0]``; ``chain[n] = sha256(chain[n-1] + " " + diff[n])``. The layer
    store keys unpacked layers by these, so identical stacks are shared between images.
    """
    out: list[str] = []
    for d in diff_ids:
        validate(d, algorithms=("sha256", "sha512"))
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out
