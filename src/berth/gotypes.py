"""Go's typed nil maps and slices, for views that must print as Docker's do.

Docker's structs hold nil maps and slices: ``encoding/json`` writes them as ``null``, but a
template prints a nil map as ``map[]`` and a nil slice as ``[]`` (``{{.Config.Labels}}`` on
an image without labels is ``map[]``, never ``<no value>``). A plain ``None`` can only be
one of the two, so views use these empty containers, which the JSON encoder
(:func:`berth.cli.gotemplate.go_json`) writes as ``null`` and templates print as empty.
"""

from __future__ import annotations

from typing import Any


class NilMap(dict):  # type: ignore[type-arg]
    """An empty map that JSON-encodes as ``null`` (a Go nil map)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError("a nil map is read-only")


class NilList(list):  # type: ignore[type-arg]
    """An empty slice that JSON-encodes as ``null`` (a Go nil slice)."""

    def append(self, value: Any) -> None:
        raise TypeError("a nil slice is read-only")


def nil_map(value: Any) -> Any:
    """``value`` itself, or a :class:`NilMap` when it is None."""
    return NilMap() if value is None else value


def nil_list(value: Any) -> Any:
    """``value`` itself, or a :class:`NilList` when it is None."""
    return NilList() if value is None else value
