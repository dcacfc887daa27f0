"""Image references: ``[HOST[:PORT]/][NAMESPACE/]NAME[:TAG][@DIGEST]`` as Docker reads them.

Follows the grammar of distribution/reference: a first component is a registry host only
when it contains ``.`` or ``:`` or is ``localhost``; no host means ``docker.io``, and a
one-part name there means ``library/NAME``. Repository names are lowercase; tags are at most
128 characters. Errors use Docker's wording (``invalid reference format``) so scripts that
match on it keep working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidDigest, InvalidReference
from berth.oci.digest import validate

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised reference. ``tag`` and ``digest`` may both be None."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Fully qualified repository: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """What Docker prints: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_NAMESPACE + "/") and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_NAMESPACE) + 1:]
            return self.path
        return self.repository

    def with_default_tag(self) -> Reference:
        """``busybox`` → ``busybox:latest``; a digest reference is left alone."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    @property
    def familiar(self) -> str:
        s = self.familiar_repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def _fail(text: str, why: str | None = None) -> InvalidReference:
    msg = f"invalid reference format: {why}" if why else "invalid reference format"
    return InvalidReference(f"{msg}: {text!r}" if not why else msg)


def split_domain(name: str) -> tuple[str, str]:
    """Split a name into (domain, path), applying Docker Hub's defaults."""
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return domain, path


def parse(text: str) -> Reference:
    """Parse and normalise a reference; raise :class:`InvalidReference` with Docker's text."""
    if not text or text != text.strip():
        raise _fail(text)
    rest = text
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        try:
            validate(digest, algorithms=("sha256", "sha512"))
        except InvalidDigest:
            raise _fail(text) from None
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise _fail(text)
    if not rest:
        raise _fail(text)
    if len(rest) > NAME_TOTAL_MAX:
        raise _fail(text, "repository name must not be more than 255 characters")
    domain, path = split_domain(rest)
    if not _DOMAIN_RE.match(domain):
        raise _fail(text)
    if path.lower() != path and _PATH_RE.match(path.lower()):
        raise _fail(text, f"repository name ({path}) must be lowercase")
    if not _PATH_RE.match(path):
        raise _fail(text)
    return Reference(domain, path, tag, digest)


def parse_named_tagged(text: str) -> Reference:
    """Parse a reference that names a repository (tag defaults to ``latest``).

    Refuses a bare 64-hex string, as Docker does, because it would shadow an image ID.
    """
    if _HEX64_RE.match(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    return parse(text).with_default_tag()


def looks_like_reference(text: str) -> bool:
    try:
        parse(text)
    except InvalidReference:
        return False
    return True
