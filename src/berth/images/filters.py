"""``--filter`` for images: dangling, reference, before, since, label, until."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from berth.images.records import ImageRecord
from berth.oci import reference

IMAGE_FILTERS = {"dangling", "reference", "before", "since", "label", "until"}


def label_matches(labels: dict[str, str], expr: str) -> bool:
    """``key`` (present), ``key=value`` (equal) or ``key!=value`` (different or absent);
    a leading ``!`` (from ``--filter label!=...``) negates the whole test."""
    if expr.startswith("!"):
        return not label_matches(labels, expr[1:])
    if "!=" in expr:
        k, v = expr.split("!=", 1)
        return labels.get(k) != v
    k, sep, v = expr.partition("=")
    if not sep:
        return k in labels
    return labels.get(k) == v


def reference_matches(rec: ImageRecord, pattern: str) -> bool:
    """Docker matches the pattern against ``repo`` and ``repo:tag`` in familiar form, and a
    ``repo@digest`` pattern against the image's repo digests."""
    if "@" in pattern:
        repo, _, digest = pattern.partition("@")
        want = reference.parse(repo).repository
        return any(d == f"{want}@{digest}" for d in rec.repo_digests)
    return any(tag_matches(t, pattern) for t in rec.tags)


def tag_matches(tag: str, pattern: str) -> bool:
    """Whether one tag (``repo:tag``) matches a ``reference`` filter pattern: Docker
    lists only the matching tags of a matching image (``images NAME`` too)."""
    if "@" in pattern:
        return True  # a digest pattern picks the image, not a tag
    ref = reference.parse(tag)
    fam = ref.familiar_repository
    for cand in (fam, f"{fam}:{ref.tag}", ref.repository, str(ref)):
        if fnmatch.fnmatchcase(cand, pattern) and (pattern.count("/") == cand.count("/")):
            return True
    return False


def build_predicate(filters: dict[str, list[str]],
                    resolve: Callable[[str], ImageRecord]) -> Callable[[ImageRecord], bool]:
    """Compile parsed filters into one predicate (values of one key OR, keys AND)."""
    from berth.errors import InvalidArgument
    from berth.units import parse_timestamp

    checks: list[Callable[[ImageRecord], bool]] = []
    for v in filters.get("dangling", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={v}'")
        want = v.lower() in ("true", "1")
        checks.append(_dangling_is(want))
    if filters.get("reference"):
        pats = filters["reference"]
        checks.append(lambda r: any(reference_matches(r, p) for p in pats))
    for v in filters.get("before", []):
        checks.append(_created_before(resolve(v).created))
    for v in filters.get("since", []):
        checks.append(_created_after(resolve(v).created))
    for v in filters.get("until", []):
        checks.append(_created_before(parse_timestamp(v)))
    labels = filters.get("label", [])
    if labels:
        checks.append(lambda r: all(label_matches(r.labels, e) for e in labels))
    return lambda r: all(c(r) for c in checks)


# one closure per filter value (a loop variable captured directly would be late-bound)
def _dangling_is(want: bool) -> Callable[[ImageRecord], bool]:
    return lambda r: r.dangling == want


def _created_before(t: float) -> Callable[[ImageRecord], bool]:
    return lambda r: r.created < t


def _created_after(t: float) -> Callable[[ImageRecord], bool]:
    return lambda r: r.created > t
