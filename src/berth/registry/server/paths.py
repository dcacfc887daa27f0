"""URL paths → routes, and the validation that stands between a URL and the filesystem.

Repository names contain slashes, so the API cannot be routed by a fixed pattern; we match
from the right (``.../blobs/<digest>``, ``.../manifests/<ref>``, ...) and take everything
before as the name. Every name, tag, digest and upload id is checked against the spec's
grammar *here*, before any other module sees it: after this point they are safe path parts
(no ``..``, no absolute paths, no empty components).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidDigest
from berth.oci import digest as digests
from berth.registry.server.errors import ApiError, digest_invalid, upload_unknown

ALGORITHMS = ("sha256", "sha512")
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}")
MAX_NAME = 255

_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("tags", re.compile(r"(.+)/tags/list")),
    ("uploads", re.compile(r"(.+)/blobs/uploads/?")),
    ("upload", re.compile(r"(.+)/blobs/uploads/([^/]+)")),
    ("blob", re.compile(r"(.+)/blobs/([^/]+)")),
    ("manifest", re.compile(r"(.+)/manifests/([^/]+)")),
    ("referrers", re.compile(r"(.+)/referrers/([^/]+)")),
]


@dataclass(frozen=True)
class Route:
    """What a request addresses: ``kind`` plus the validated name and argument."""

    kind: str  # base | catalog | tags | uploads | upload | blob | manifest | referrers
    name: str = ""
    arg: str = ""


def route(tail: str) -> Route | None:
    """Match the path after ``/v2/``; None when it is no API endpoint (plain 404)."""
    if tail == "":
        return Route("base")
    if tail in ("_catalog", "_catalog/"):
        return Route("catalog")
    for kind, pattern in _ROUTES:
        m = pattern.fullmatch(tail)
        if m:
            name = check_name(m.group(1))
            arg = m.group(2) if m.lastindex and m.lastindex > 1 else ""
            if kind in ("blob", "referrers"):
                arg = check_digest(arg)
            elif kind == "upload":
                arg = check_upload_id(arg)
            return Route(kind, name, arg)
    return None


def check_name(name: str) -> str:
    """A repository name that matches the spec's regex, else 400 NAME_INVALID."""
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        raise ApiError(400, "NAME_INVALID", detail={"name": name[:300]})
    return name


def check_digest(value: str) -> str:
    """A well-formed sha256/sha512 digest, else 400 DIGEST_INVALID."""
    try:
        return digests.validate(value, algorithms=ALGORITHMS)
    except InvalidDigest:
        raise digest_invalid("invalid digest", detail={"digest": value[:200]}) from None


def check_upload_id(value: str) -> str:
    """Upload ids are ours (uuid4 hex); anything else cannot be a live session."""
    if not UPLOAD_ID_RE.fullmatch(value):
        raise upload_unknown(value[:100])
    return value


def is_digest_ref(reference: str) -> bool:
    """Tags may not contain ':' so a colon means the client meant a digest."""
    return ":" in reference


def check_reference(reference: str) -> str:
    """A manifest reference: a valid digest (400 DIGEST_INVALID) or a valid tag."""
    if is_digest_ref(reference):
        return check_digest(reference)
    return check_tag(reference)


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise ApiError(400, "MANIFEST_INVALID", "invalid tag", detail={"tag": tag[:200]})
    return tag
