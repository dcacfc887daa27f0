"""``volume ls --filter``: Docker's keys and how their values combine.

Values of one key OR together (``name=a --filter name=b`` lists both), except ``label``,
whose values must all hold, as Docker documents; different keys AND together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from .service import label_filter

if TYPE_CHECKING:  # pragma: no cover
    from .service import VolumeRecord

VOLUME_FILTERS = {"dangling", "name", "label", "driver"}
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def build_predicate(filters: dict[str, list[str]], in_use: Callable[[], set[str]]
                    ) -> Callable[[VolumeRecord], bool]:
    """One predicate for all filters; ``in_use`` is read once, only for ``dangling``."""
    dangling: set[bool] = set()
    for v in filters.get("dangling", []):
        if v.lower() in _TRUE:
            dangling.add(True)
        elif v.lower() in _FALSE:
            dangling.add(False)
        else:
            raise InvalidArgument(f"invalid filter 'dangling={v}'")
    used = in_use() if dangling else set()
    names = filters.get("name", [])
    drivers = filters.get("driver", [])
    labels = filters.get("label", [])

    def pred(v: VolumeRecord) -> bool:
        if dangling and (v.name not in used) not in dangling:
            return False
        if names and not any(n in v.name for n in names):
            return False
        if drivers and v.driver not in drivers:
            return False
        return label_filter(v.labels, labels)

    return pred
