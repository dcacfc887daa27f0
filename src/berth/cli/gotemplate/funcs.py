"""The template function table: Docker's ``--format`` functions plus Go's builtins.

``BASE_FUNCS`` is what rows render with; ``HEADER_FUNCS`` and :class:`HeaderData` render a
table's header row the way Docker does (fields become column titles, string functions
become identities). Parsing checks names against ``BASE_FUNCS``, as Go checks at parse time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from berth.cli.gotemplate.errors import _ExecError
from berth.cli.gotemplate.values import _go_type, _print_value, _truth, go_json, go_sprint, go_sprintf


def _as_str(v: Any) -> str:
    """Go's string functions want strings; Python rows often carry ints, so print them."""
    return v if isinstance(v, str) else _print_value(v)


def _as_int(v: Any, what: str = "int") -> int:
    if isinstance(v, bool):
        raise _ExecError(f"wrong type for value; expected {what}; got bool")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v == int(v):
        return int(v)
    raise _ExecError(f"wrong type for value; expected {what}; got {_go_type(v)}")


def _title(s: str) -> str:
    """strings.Title: upper-case each word's first letter, leave the rest alone."""
    out = []
    prev_sep = True
    for ch in s:
        out.append(ch.upper() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_")
    return "".join(out)


def _split(s: Any, sep: Any) -> list[str]:
    text, sep = _as_str(s), _as_str(sep)
    return list(text) if sep == "" else text.split(sep)


def _join(items: Any, sep: Any) -> str:
    if items is None:
        return ""
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise _ExecError(f"wrong type for value; expected []string; got {_go_type(items)}")
    return _as_str(sep).join(_as_str(x) for x in items)


def _pad_fn(s: Any, left: Any, right: Any) -> str:
    text = _as_str(s)
    if text == "":
        return text
    return " " * _as_int(left) + text + " " * _as_int(right)


def _truncate(s: Any, n: Any) -> str:
    text = _as_str(s)
    length = _as_int(n)
    return text if len(text) < length else text[: max(length, 0)]


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, Mapping, bytes, set, frozenset)):
        return len(v)
    if v is None:
        raise _ExecError("len of nil pointer")
    raise _ExecError(f"len of type {_go_type(v)}")


def _index(item: Any, *keys: Any) -> Any:
    """Go's ``index``: a missing map key gives the zero value (``""`` for string maps)."""
    for key in keys:
        if isinstance(item, _HeaderStr):
            return item
        if item is None:
            if isinstance(key, str):
                return ""  # a nil map[string]string, e.g. .Config.Labels of an unlabelled image
            raise _ExecError("index of untyped nil")
        if isinstance(item, Mapping):
            if key in item:
                item = item[key]
            else:
                values = item.values()
                item = "" if all(isinstance(x, str) for x in values) else None
        elif isinstance(item, (list, tuple, str)):
            i = _as_int(key)
            if not 0 <= i < len(item):
                raise _ExecError(f"index out of range: {i}")
            item = item[i] if not isinstance(item, str) else item.encode()[i]
        else:
            raise _ExecError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise _ExecError(f"can't slice item of type {_go_type(item)}")
    bounds = [_as_int(i) for i in idx]
    if len(bounds) > 2 or any(not 0 <= b <= len(item) for b in bounds):
        raise _ExecError(f"index out of range: {bounds}")
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(item)
    if lo > hi:
        raise _ExecError(f"invalid slice index: {lo} > {hi}")
    return item[lo:hi]


def _basic_kind(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _ExecError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in others:
        kb = _basic_kind(b)
        if ka == "other" or kb == "other":
            if a is b or (isinstance(a, (list, tuple, Mapping)) and a == b):
                return True
            if ka == kb == "other":
                raise _ExecError("non-comparable types")
            raise _ExecError("incompatible types for comparison")
        if ka != kb and "nil" not in (ka, kb):
            raise _ExecError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise _ExecError("invalid type for comparison")
    if ka != kb:
        raise _ExecError("incompatible types for comparison")
    return bool(a < b)


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_sprint(a))
    return "".join(out)


def _json_fn(v: Any) -> str:
    return go_json(v)


# name -> (callable, min args, max args or None for variadic)
_FuncSpec = tuple[Callable[..., Any], int, int | None]
BASE_FUNCS: dict[str, _FuncSpec] = {
    "json": (_json_fn, 1, 1),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "title": (lambda s: _title(_as_str(s)), 1, 1),
    "lower": (lambda s: _as_str(s).lower(), 1, 1),
    "upper": (lambda s: _as_str(s).upper(), 1, 1),
    "pad": (_pad_fn, 3, 3),
    "truncate": (_truncate, 2, 2),
    "len": (_len, 1, 1),
    "index": (_index, 1, None),
    "slice": (_slice, 1, None),
    "print": (_sprint, 0, None),
    "println": (lambda *a: " ".join(go_sprint(x) for x in a) + "\n", 0, None),
    "printf": (lambda f, *a: go_sprintf(_as_str(f), list(a)), 1, None),
    "eq": (_eq, 1, None),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 2),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "not": (lambda a: not _truth(a), 1, 1),
    "and": (lambda *a: a[-1], 1, None),  # evaluated lazily by the executor
    "or": (lambda *a: a[-1], 1, None),  # evaluated lazily by the executor
}


def _header_identity(v: Any, *_: Any) -> Any:
    return v


# Docker renders a table's header row with these instead, so ``{{upper .Name}}`` keeps
# the header ``NAME`` and ``{{join .Names ","}}`` does not choke on a header string.
HEADER_FUNCS: dict[str, _FuncSpec] = {
    **BASE_FUNCS,
    "json": (_header_identity, 1, 1),
    "split": (_header_identity, 2, 2),
    "join": (_header_identity, 2, 2),
    "title": (_header_identity, 1, 1),
    "lower": (_header_identity, 1, 1),
    "upper": (_header_identity, 1, 1),
    "truncate": (_header_identity, 2, 2),
}


class _HeaderStr(str):
    """A header cell; a field of it is that field's header (``.State.Status`` -> STATUS)."""

    __slots__ = ("headers",)
    headers: Mapping[str, str]


class HeaderData(dict):  # type: ignore[type-arg]
    """Render data for a table's header row: any field name maps to its column title."""

    def Label(self, name: str) -> str:  # noqa: N802 - Docker's template name
        """``{{.Label "com.example.tier"}}``'s title: ``tier`` (``-``/``_`` as spaces)."""
        return name.rsplit(".", 1)[-1].replace("-", " ").replace("_", " ")

    def __missing__(self, key: str) -> _HeaderStr:
        h = _HeaderStr(key.upper())
        h.headers = self
        return h

    def __getitem__(self, key: str) -> Any:
        value = dict.get(self, key)
        if value is None:
            return self.__missing__(key)
        h = _HeaderStr(value)
        h.headers = self
        return h
