"""``network ls --filter``: Docker's keys, values of one key OR'ed, keys AND'ed."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidArgument
from .records import NetworkRecord

KEYS = {"driver", "id", "label", "name", "scope", "type", "dangling"}


def build_predicate(filters: dict[str, list[str]]) -> Callable[[NetworkRecord], bool]:
    """One predicate; ``name``/``id`` match substrings as Docker's do."""
    for k in filters:
        if k not in KEYS:
            raise InvalidArgument(f"invalid filter '{k}'")
    for t in filters.get("type", []):
        if t not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter: 'type'='{t}'")

    def pred(net: NetworkRecord) -> bool:
        from ..container.views import label_match

        if "driver" in filters and net.driver not in filters["driver"]:
            return False
        if "id" in filters and not any(v in net.id for v in filters["id"]):
            return False
        if "name" in filters and not any(v in net.name for v in filters["name"]):
            return False
        if "scope" in filters and "local" not in filters["scope"]:
            return False
        if "type" in filters and ("builtin" if net.predefined else "custom") \
                not in filters["type"]:
            return False
        if "label" in filters and not label_match(net.labels, filters["label"]):
            return False
        return True

    return pred
