"""Reading documents (manifests, configs, tag lists) from a registry, verified.

Documents are small, so they are read whole — but never more than a bound (4 MiB for a
manifest, as the distribution spec allows registries to enforce) so a hostile registry
cannot make us buffer gigabytes. Every document fetched by digest must hash to it, and a
manifest fetched by tag must hash to the ``Docker-Content-Digest`` the registry announced.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.errors import DigestMismatch, ManifestUnknown, RegistryError
from berth.oci import mediatypes as mt
from berth.oci.digest import sha256_bytes, validate
from berth.oci.manifest import MAX_MANIFEST_SIZE
from berth.oci.reference import Reference
from berth.registry.client.session import Session

MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST,
                             mt.DOCKER_MANIFEST])
MAX_CONFIG_SIZE = 16 * 1024 * 1024


@dataclass
class FetchedManifest:
    raw: bytes
    media_type: str | None
    digest: str


def _read_bounded(resp, limit: int, what: str) -> bytes:  # type: ignore[no-untyped-def]
    import httpx

    buf = bytearray()
    try:
        for chunk in resp.iter_raw():
            buf += chunk
            if len(buf) > limit:
                raise RegistryError(f"{what} is larger than the {limit}-byte limit")
    except httpx.TransportError as e:
        from berth.errors import RegistryUnreachable
        from berth.registry.client.transport import describe

        raise RegistryUnreachable(f"error reading {what}: {describe(e)}") from None
    finally:
        resp.close()
    return bytes(buf)


def manifest(session: Session, ref: Reference, target: str, scopes: list[str], *,
             expected_size: int | None = None) -> FetchedManifest:
    """GET a manifest or index by tag or digest and verify what came back."""
    resp = _get(session, ref, f"/v2/{ref.path}/manifests/{target}", scopes,
                headers={"Accept": MANIFEST_ACCEPT})
    shown = f"{ref.repository}:{target}" if ":" not in target else f"{ref.repository}@{target}"
    if resp.status_code == 404:
        resp.close()
        raise ManifestUnknown(f"manifest for {_familiar(ref, target)} not found: "
                              "manifest unknown: manifest unknown")
    if resp.status_code in (401, 403):
        raise _denied(session, resp, ref)
    if resp.status_code != 200:
        raise session.fail(resp, f"fetching manifest {shown}")
    ctype = resp.headers.get("content-type")
    announced = resp.headers.get("docker-content-digest")
    raw = _read_bounded(resp, MAX_MANIFEST_SIZE, f"manifest {shown}")
    digest = sha256_bytes(raw)
    if target.startswith("sha256:"):
        if digest != target:
            raise DigestMismatch(f"manifest digest mismatch for {shown}: got {digest}")
    elif announced:
        try:
            validate(announced)
        except Exception:  # noqa: BLE001 - a sha512 or junk header: we verify by sha256 only
            announced = None
        if announced and announced != digest:
            raise DigestMismatch(f"manifest for {shown} does not match the digest the "
                                 f"registry announced ({announced}): got {digest}")
    if expected_size is not None and len(raw) != expected_size:
        raise DigestMismatch(f"manifest {shown}: expected {expected_size} bytes, "
                             f"got {len(raw)}")
    return FetchedManifest(raw, ctype, digest)


def small_blob(session: Session, ref: Reference, digest: str, size: int,
               scopes: list[str]) -> bytes:
    """GET a config-sized blob, verified against its descriptor's digest and size."""
    if size > MAX_CONFIG_SIZE:
        raise RegistryError(f"blob {digest} is too large for an image config ({size} bytes)")
    resp = _get(session, ref, f"/v2/{ref.path}/blobs/{digest}", scopes)
    if resp.status_code in (401, 403):
        raise _denied(session, resp, ref)
    if resp.status_code != 200:
        raise session.fail(resp, f"fetching blob {digest}")
    raw = _read_bounded(resp, size, f"blob {digest}")
    if len(raw) != size or sha256_bytes(raw) != digest:
        raise DigestMismatch(f"digest mismatch for blob {digest}: got {sha256_bytes(raw)} "
                             f"({len(raw)} bytes)")
    return raw


def tags(session: Session, ref: Reference, scopes: list[str]) -> list[str]:
    """Every tag of a repository, following ``Link: <…>; rel="next"`` pagination."""
    out: list[str] = []
    url = f"/v2/{ref.path}/tags/list?n=1000"
    for _ in range(10_000):
        resp = _get(session, ref, url, scopes)
        resp.read()
        if resp.status_code == 404:
            resp.close()
            raise ManifestUnknown(f"repository {ref.repository} not found: name unknown")
        if resp.status_code in (401, 403):
            raise _denied(session, resp, ref)
        if resp.status_code != 200:
            raise session.fail(resp, f"listing tags of {ref.repository}")
        try:
            doc = resp.json()
        except ValueError:
            raise RegistryError(f"tag list of {ref.repository} is not JSON") from None
        out += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
        nxt = resp.links.get("next", {}).get("url")
        if not nxt:
            break
        url = nxt if nxt.startswith(("http://", "https://", "/")) else "/" + nxt
    return out


def _get(session: Session, ref: Reference, url: str, scopes: list[str],
         headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A streamed GET; a refused token request reads as Docker's "pull access denied"."""
    from berth.errors import Unauthorized

    try:
        return session.request("GET", url, scopes=scopes, headers=headers, stream=True,
                               follow_redirects=True)
    except Unauthorized as e:
        raise Unauthorized(f"pull access denied for {ref.familiar_repository}, repository "
                           f"does not exist or may require 'berth login': {e.message}") from None


def _familiar(ref: Reference, target: str) -> str:
    base = ref.familiar_repository
    return f"{base}@{target}" if target.startswith("sha") else f"{base}:{target}"


def _denied(session: Session, resp, ref: Reference) -> Exception:  # type: ignore[no-untyped-def]
    from berth.errors import Unauthorized
    from berth.registry.client.errors import describe_status

    reason = describe_status(resp)
    if resp.status_code == 401 and reason.startswith("401"):
        reason = "unauthorized: authentication required"
    resp.close()
    return Unauthorized(f"pull access denied for {ref.familiar_repository}, repository does "
                        f"not exist or may require 'berth login': {reason}")
