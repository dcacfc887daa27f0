"""The subset of Go's ``text/template`` that Docker users put in ``--format``.

People paste format strings from Docker docs and scripts (``{{.ID}}\\t{{.Names}}``,
``{{json .Config.Labels}}``, ``{{range .Mounts}}{{.Source}} {{end}}``), so berth parses the
same syntax and prints values the way Go's ``fmt`` does (``true``, ``[a b]``,
``map[k:v]``, ``<no value>``). Templates compile once into a node tree and render per row,
because listings render the same template a thousand times.

What is here: fields and chains (``.A.B``, ``$v.A``, ``(pipe).A``), pipelines, variables
(``:=``/``=``), ``if``/``else if``/``else``/``with``/``range`` (with ``$k, $v :=``, ``else``,
``break``, ``continue``), trim markers, comments, and Docker's function set plus Go's
builtins (``index``, ``slice``, ``len``, ``print*``, comparisons, ``and``/``or``/``not``).
Not here: ``define``/``template``/``block`` and method calls with arguments.

Data are Python values: a field resolves a mapping key first, then an attribute. A missing
field on the *root* mapping (a row, an inspect object: a Go struct in Docker) is an error,
as Go's; a missing key in a nested mapping (``.Config.Labels.x``: a Go map) prints
``<no value>``, as Go's. Every error is an :class:`InvalidArgument` with Docker's one-line
``template parsing error: template: ...`` message.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from berth.errors import InvalidArgument

__all__ = ["Template", "compile_template", "go_json", "go_sprint", "go_sprintf", "render"]

_WS = " \t\r\n"
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)


class _ParseError(Exception):
    """A syntax error at template line ``line``; becomes Docker's one-line message."""

    def __init__(self, msg: str, line: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.line = line


class _ExecError(Exception):
    """A runtime error; the node that raised it is attached on the way up for the context."""

    def __init__(self, msg: str, node: Any = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.node = node


class _Break(Exception):
    """``{{break}}``: unwinds to the innermost range."""


class _Continue(Exception):
    """``{{continue}}``: unwinds to the innermost range's next iteration."""


def _one_line(text: str) -> str:
    """Error messages must stay on one line even when the template spans several."""
    return text.replace("\n", "\\n").replace("\t", "\\t")


# --------------------------------------------------------------------------- values


def _go_float(f: float) -> str:
    """Go's ``%v`` for float64: shortest digits, exponent form when exp < -4 or exp >= 6.

    So ``1`` for 1.0 and ``1e+06`` for a million, as Go prints JSON numbers it decoded.
    """
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    a = abs(f)
    if a < 1e6:
        if f == int(f):
            return str(int(f)) if f or repr(f)[0] != "-" else "-0"
        if a >= 1e-4:
            return repr(f)  # Python's repr is shortest and fixed-point in this range
    from decimal import Decimal

    sign, digits, exp = Decimal(repr(f)).as_tuple()
    assert isinstance(exp, int)
    e = len(digits) + exp - 1
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{'-' if sign else ''}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"


def _is_dataclass(v: Any) -> bool:
    return hasattr(type(v), "__dataclass_fields__")


def go_sprint(v: Any) -> str:
    """Go's ``fmt.Sprint`` of one value (``%v``): how template actions print data."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return _go_float(v)
    if v is None:
        return "<nil>"
    if isinstance(v, str):
        return str(v)
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{go_sprint(k)}:{go_sprint(v[k])}" for k in _sorted_keys(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    if _is_dataclass(v):
        names = type(v).__dataclass_fields__
        return "{" + " ".join(go_sprint(getattr(v, n)) for n in names) + "}"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
    """Go sorts map keys when printing and ranging; mixed key types fall back to text."""
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=str)


def _print_value(v: Any) -> str:
    """What ``{{X}}`` writes: like Sprint, except a missing/nil value is ``<no value>``."""
    if type(v) is str:
        return v
    if v is None:
        return "<no value>"
    return go_sprint(v)


def _go_type(v: Any) -> str:
    """Go's spelling of a value's type, for error messages users may search for."""
    if v is None:
        return "interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    return type(v).__name__


def _truth(v: Any) -> bool:
    """Go's template truth: zero values (false, 0, "", empty, nil) are false; structs true."""
    if v is None or v is False:
        return False
    if isinstance(v, (int, float, str, bytes, list, tuple, dict, set, frozenset, Mapping)):
        return bool(v)
    return True


# --------------------------------------------------------------------------- JSON


def _json_float(f: float) -> str:
    """encoding/json floats: fixed notation unless < 1e-6 or >= 1e21, ``e-7`` not ``e-07``."""
    if f != f or f in (float("inf"), float("-inf")):
        return "null"
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        text = repr(f)
        return re.sub(r"e([+-])0(\d)$", r"e\1\2", text)
    if f == int(f):
        return str(int(f))
    from decimal import Decimal

    text = format(Decimal(repr(f)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json_str(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    if "\u2028" in out or "\u2029" in out:
        out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return out


def _json_encode(v: Any, out: list[str], indent: str | None, level: int, sort_keys: bool) -> None:
    t = type(v)
    if t is str:
        out.append(_json_str(v))
    elif v is None:
        out.append("null")
    elif t is bool:
        out.append("true" if v else "false")
    elif t is int:
        out.append(str(v))
    elif t is float:
        out.append(_json_float(v))
    elif isinstance(v, Mapping):
        keys = _sorted_keys(v) if sort_keys else list(v)
        items = [(k if isinstance(k, str) else go_sprint(k), v[k]) for k in keys]
        _json_container("{", "}", items, out, indent, level, sort_keys)
    elif isinstance(v, (list, tuple)):
        _json_container("[", "]", [(None, x) for x in v], out, indent, level, sort_keys)
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_json_float(float(v)))
    elif isinstance(v, str):
        out.append(_json_str(str(v)))
    elif _is_dataclass(v):
        fields = {n: getattr(v, n) for n in type(v).__dataclass_fields__}
        _json_encode(fields, out, indent, level, sort_keys)
    elif isinstance(v, (set, frozenset)):
        _json_encode(sorted(v, key=str), out, indent, level, sort_keys)
    elif isinstance(v, bytes):
        import base64

        out.append('"' + base64.b64encode(v).decode("ascii") + '"')
    elif hasattr(v, "isoformat"):
        out.append(_json_str(v.isoformat()))
    else:
        out.append(_json_str(str(v)))


def _json_container(
    open_: str, close: str, items: list[tuple[str | None, Any]], out: list[str],
    indent: str | None, level: int, sort_keys: bool,
) -> None:
    if not items:
        out.append(open_ + close)
        return
    out.append(open_)
    inner = "\n" + indent * (level + 1) if indent is not None else ""
    for i, (key, value) in enumerate(items):
        if i:
            out.append(",")
        out.append(inner)
        if key is not None:
            out.append(_json_str(key))
            out.append(": " if indent is not None else ":")
        _json_encode(value, out, indent, level + 1, sort_keys)
    if indent is not None:
        out.append("\n" + indent * level)
    out.append(close)


def go_json(value: Any, *, escape_html: bool = False, indent: str | None = None,
            sort_keys: bool = False) -> str:
    """Encode like Go's encoding/json: compact (or ``MarshalIndent``), Go's number format.

    ``escape_html`` mirrors ``json.Marshal`` (``<`` -> ``\\u003c``), which Docker's API and
    ``--format json`` rows go through; the ``{{json}}`` template function turns it off,
    as Docker's does. Mapping order is kept (Go structs keep field order) unless
    ``sort_keys`` asks for Go's map order.
    """
    out: list[str] = []
    _json_encode(value, out, indent, 0, sort_keys)
    text = "".join(out)
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


# --------------------------------------------------------------------------- printf

_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.S)


def _pad(s: str, width: int | None, flags: str, zero_ok: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s.ljust(width)
    if "0" in flags and zero_ok:
        sign = s[0] if s[:1] in "+- " and s else ""
        return sign + s[len(sign):].rjust(width - len(sign), "0")
    return s.rjust(width)


def _fmt_int(n: int, verb: str, flags: str) -> str:
    body = {"d": "{:d}", "x": "{:x}", "X": "{:X}", "o": "{:o}", "b": "{:b}"}[verb].format(abs(n))
    if "#" in flags and verb in "xXob":
        body = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] + body
    sign = "-" if n < 0 else "+" if "+" in flags else " " if " " in flags else ""
    return sign + body


def _fmt_one(flags: str, width: int | None, prec: int | None, verb: str, arg: Any) -> str:
    """One Go verb applied to one argument; wrong types print Go's ``%!d(string=x)``."""
    bad = f"%!{verb}({_go_type(arg)}={go_sprint(arg)})"
    if verb == "v":
        s = go_sprint(arg)
    elif verb == "s":
        s = go_sprint(arg)
        if prec is not None:
            s = s[:prec]
    elif verb == "q":
        s = json.dumps(arg if isinstance(arg, str) else go_sprint(arg), ensure_ascii=False)
    elif verb == "t":
        if not isinstance(arg, bool):
            return bad
        s = "true" if arg else "false"
    elif verb in "dxXob":
        if isinstance(arg, str) and verb in "xX":
            s = arg.encode().hex()
            s = s.upper() if verb == "X" else s
        elif isinstance(arg, bool) or not isinstance(arg, int):
            return bad
        else:
            s = _fmt_int(arg, verb, flags)
        return _pad(s, width, flags, zero_ok=True)
    elif verb in "feEgGF":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            return bad
        f = float(arg)
        if verb in "gG" and prec is None:
            s = _go_float(f)
        else:
            spec = "%" + ("+" if "+" in flags else "") + "." + str(6 if prec is None else prec)
            s = (spec + ("f" if verb == "F" else verb)) % f
        return _pad(s, width, flags, zero_ok=True)
    elif verb == "c":
        if isinstance(arg, bool) or not isinstance(arg, int):
            return bad
        s = chr(arg)
    elif verb == "T":
        s = _go_type(arg)
    else:
        return f"%!{verb}({_go_type(arg)}={go_sprint(arg)})"
    return _pad(s, width, flags)


def go_sprintf(fmt: str, args: list[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs people use in formats: %s %v %d %q %f %x %t ...

    Flags ``-+# 0``, width and precision (also ``*``) behave as in Go, so
    ``printf "%-20s" .Name`` lines up the same; missing or extra arguments print Go's
    ``%!s(MISSING)`` / ``%!(EXTRA ...)`` markers instead of failing.
    """
    out: list[str] = []
    idx = 0
    pos = 0
    while True:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _VERB_RE.match(fmt, j)
        assert m is not None
        pos = m.end()
        flags, width_s, prec_s, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            break
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            if idx < len(args) and isinstance(args[idx], int):
                width = args[idx]
                if width < 0:
                    flags += "-"
                    width = -width
            idx += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if idx < len(args) and isinstance(args[idx], int):
                prec = args[idx]
            idx += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if idx >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(flags, width, prec, verb, args[idx]))
        idx += 1
    if idx < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_sprint(a)}" for a in args[idx:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# --------------------------------------------------------------------------- functions


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


# --------------------------------------------------------------------------- lexer

# token kinds
_FIELD, _DOT, _VAR, _IDENT, _STRING, _NUMBER, _PIPE, _LPAREN, _RPAREN = range(9)
_DECLARE, _ASSIGN, _COMMA, _CHAR, _CHAIN = 9, 10, 11, 12, 13  # _CHAIN: ".A" right after ")"


class _Tok:
    __slots__ = ("kind", "value", "pos", "space")

    def __init__(self, kind: int, value: Any, pos: int, space: bool) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos
        self.space = space


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)


def _unquote(body: str, line: int) -> str:
    def repl(m: re.Match[str]) -> str:
        e = m.group(1)
        if e in _ESCAPES:
            return _ESCAPES[e]
        if e[0] in "xuU":
            return chr(int(e[1:], 16))
        if len(e) == 3:
            return chr(int(e, 8))
        raise _ParseError("invalid syntax", line)

    return _ESCAPE_RE.sub(repl, body) if "\\" in body else body


class _Lexer:
    """Splits a template into text and action token lists, applying trim markers."""

    def __init__(self, src: str) -> None:
        self.src = src

    def line_at(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def items(self) -> list[tuple[str, Any, int]]:
        """``("text", str, pos)`` and ``("action", [tokens], pos)`` in template order."""
        src, n = self.src, len(self.src)
        out: list[tuple[str, Any, int]] = []
        pos = 0
        trim_next = False
        while pos <= n:
            start = src.find("{{", pos)
            text = src[pos:] if start < 0 else src[pos:start]
            if trim_next:
                text = text.lstrip(_WS)
            if start < 0:
                if text:
                    out.append(("text", text, pos))
                break
            k = start + 2
            if k + 1 < n and src[k] == "-" and src[k + 1] in _WS:
                text = text.rstrip(_WS)
                k += 2
            if text:
                out.append(("text", text, pos))
            if src.startswith("/*", k):
                pos, trim_next = self._comment(start, k)
                continue
            tokens, pos, trim_next = self._action(k, start)
            out.append(("action", tokens, start))
        return out

    def _comment(self, start: int, k: int) -> tuple[int, bool]:
        end = self.src.find("*/", k + 2)
        if end < 0:
            raise _ParseError("unclosed comment", self.line_at(start))
        p = end + 2
        rest = self.src[p:]
        if rest.startswith("}}"):
            return p + 2, False
        stripped = rest.lstrip(_WS)
        if stripped.startswith("-}}") and len(stripped) < len(rest):
            return p + (len(rest) - len(stripped)) + 3, True
        raise _ParseError("comment ends before closing delimiter", self.line_at(start))

    def _action(self, p: int, start: int) -> tuple[list[_Tok], int, bool]:
        src, n = self.src, len(self.src)
        toks: list[_Tok] = []
        space = False
        line = self.line_at(start)
        while True:
            if p >= n:
                raise _ParseError("unclosed action", line)
            ch = src[p]
            if ch in _WS:
                q = p
                while q < n and src[q] in _WS:
                    q += 1
                if src.startswith("-}}", q):
                    return toks, q + 3, True
                space = True
                p = q
                continue
            if src.startswith("}}", p):
                return toks, p + 2, False
            if ch == '"':
                q = p + 1
                while q < n and src[q] != '"':
                    q += 2 if src[q] == "\\" else 1
                if q >= n:
                    raise _ParseError("unterminated quoted string", line)
                toks.append(_Tok(_STRING, _unquote(src[p + 1:q], line), p, space))
                p = q + 1
            elif ch == "`":
                q = src.find("`", p + 1)
                if q < 0:
                    raise _ParseError("unterminated raw quoted string", line)
                toks.append(_Tok(_STRING, src[p + 1:q], p, space))
                p = q + 1
            elif ch == "'":
                m = re.compile(r"'(\\.[^']*|[^'\\])'").match(src, p)
                if m is None:
                    raise _ParseError("unterminated character constant", line)
                toks.append(_Tok(_CHAR, ord(_unquote(m.group(1), line)[0]), p, space))
                p = m.end()
            elif ch == "." and p + 1 < n and (src[p + 1].isalpha() or src[p + 1] == "_"):
                names, p2 = self._chain(p)
                toks.append(_Tok(_FIELD, names, p, space))
                p = p2
            elif ch == "$":
                m = _IDENT_RE.match(src, p + 1)
                name = "$" + (m.group(0) if m else "")
                q = m.end() if m else p + 1
                names, q = self._chain(q) if src.startswith(".", q) and q + 1 < n and (
                    src[q + 1].isalpha() or src[q + 1] == "_") else ((), q)
                toks.append(_Tok(_VAR, (name, names), p, space))
                p = q
            elif ch.isdigit() or (ch in "+-." and p + 1 < n and src[p + 1].isdigit()):
                m = _NUMBER_RE.match(src, p)
                assert m is not None
                toks.append(_Tok(_NUMBER, _number(m.group(0), line), p, space))
                p = m.end()
            elif ch == ".":
                toks.append(_Tok(_DOT, None, p, space))
                p += 1
            elif ch.isalpha() or ch == "_":
                m = _IDENT_RE.match(src, p)
                assert m is not None
                toks.append(_Tok(_IDENT, m.group(0), p, space))
                p = m.end()
            elif ch == "|":
                toks.append(_Tok(_PIPE, None, p, space))
                p += 1
            elif ch == "(":
                toks.append(_Tok(_LPAREN, None, p, space))
                p += 1
            elif ch == ")":
                toks.append(_Tok(_RPAREN, None, p, space))
                p += 1
                if src.startswith(".", p) and p + 1 < n and (src[p + 1].isalpha() or src[p + 1] == "_"):
                    names, p = self._chain(p)
                    toks.append(_Tok(_CHAIN, names, p, False))
            elif src.startswith(":=", p):
                toks.append(_Tok(_DECLARE, None, p, space))
                p += 2
            elif ch == "=":
                toks.append(_Tok(_ASSIGN, None, p, space))
                p += 1
            elif ch == ",":
                toks.append(_Tok(_COMMA, None, p, space))
                p += 1
            else:
                raise _ParseError(f"bad character {ch!r}", line)
            space = False

    def _chain(self, p: int) -> tuple[tuple[str, ...], int]:
        """``.A.B.C`` starting at ``p`` -> ("A", "B", "C") and the position after it."""
        names: list[str] = []
        src = self.src
        while src.startswith(".", p):
            m = _IDENT_RE.match(src, p + 1)
            if m is None:
                break
            names.append(m.group(0))
            p = m.end()
        return tuple(names), p


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?\d+", clean) or clean.lstrip("+-")[:2].lower() in ("0x", "0b", "0o"):
            return int(clean, 0) if not re.fullmatch(r"[+-]?0\d+", clean) else int(clean, 8)
        return float(clean)
    except ValueError:
        raise _ParseError(f"bad number syntax: {text!r}", line) from None


# --------------------------------------------------------------------------- parse tree


class _Field:
    """``.A.B``: a chain of field names looked up from dot."""

    __slots__ = ("names", "pos")

    def __init__(self, names: tuple[str, ...], pos: int) -> None:
        self.names = names
        self.pos = pos

    def __str__(self) -> str:
        return "." + ".".join(self.names)


class _Var:
    """``$name.A.B``: a variable, optionally followed by fields."""

    __slots__ = ("name", "names", "pos")

    def __init__(self, name: str, names: tuple[str, ...], pos: int) -> None:
        self.name = name
        self.names = names
        self.pos = pos

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.names)


class _Dot:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class _Const:
    """A literal: string, number, char, true/false, nil."""

    __slots__ = ("value", "text", "pos")

    def __init__(self, value: Any, text: str, pos: int) -> None:
        self.value = value
        self.text = text
        self.pos = pos

    def __str__(self) -> str:
        return self.text


class _Ident:
    """A function name used as an operand (called with no arguments) or as a command."""

    __slots__ = ("name", "pos")

    def __init__(self, name: str, pos: int) -> None:
        self.name = name
        self.pos = pos

    def __str__(self) -> str:
        return self.name


class _Command:
    __slots__ = ("args", "pos")

    def __init__(self, args: list[Any], pos: int) -> None:
        self.args = args
        self.pos = pos

    def __str__(self) -> str:
        return " ".join(str(a) for a in self.args)


class _Pipeline:
    __slots__ = ("decl", "assign", "cmds", "pos")

    def __init__(self, decl: list[str], assign: bool, cmds: list[_Command], pos: int) -> None:
        self.decl = decl
        self.assign = assign
        self.cmds = cmds
        self.pos = pos

    def __str__(self) -> str:
        head = ", ".join(self.decl) + (" = " if self.assign else " := ") if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


class _SubPipe:
    """``(pipeline).A.B``: a parenthesised pipeline used as an operand."""

    __slots__ = ("pipe", "names", "pos")

    def __init__(self, pipe: _Pipeline, names: tuple[str, ...], pos: int) -> None:
        self.pipe = pipe
        self.names = names
        self.pos = pos

    def __str__(self) -> str:
        return f"({self.pipe})" + "".join("." + n for n in self.names)


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Action:
    """``{{pipeline}}``; ``field`` is set when it is a bare ``.A.B`` (the common fast path)."""

    __slots__ = ("pipe", "field")

    def __init__(self, pipe: _Pipeline) -> None:
        self.pipe = pipe
        self.field: _Field | None = None
        if not pipe.decl and len(pipe.cmds) == 1 and len(pipe.cmds[0].args) == 1:
            arg = pipe.cmds[0].args[0]
            if type(arg) is _Field:
                self.field = arg


class _Branch:
    """``if`` or ``with``: body when the pipeline is true, else_body otherwise."""

    __slots__ = ("is_with", "pipe", "body", "else_body")

    def __init__(self, is_with: bool, pipe: _Pipeline, body: list[Any], else_body: list[Any]) -> None:
        self.is_with = is_with
        self.pipe = pipe
        self.body = body
        self.else_body = else_body


class _Range:
    __slots__ = ("pipe", "body", "else_body")

    def __init__(self, pipe: _Pipeline, body: list[Any], else_body: list[Any]) -> None:
        self.pipe = pipe
        self.body = body
        self.else_body = else_body


class _BreakNode:
    __slots__ = ()


class _ContinueNode:
    __slots__ = ()


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the lexer's items; checks names and variables up front."""

    def __init__(self, src: str) -> None:
        self.lexer = _Lexer(src)
        self.items = self.lexer.items()
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    def _err(self, msg: str, pos: int) -> _ParseError:
        return _ParseError(msg, self.lexer.line_at(pos))

    def parse(self) -> list[Any]:
        nodes, term = self._list()
        if term is not None:
            raise self._err(f"unexpected {{{{{term[0]}}}}}", term[2])
        return nodes

    def _list(self) -> tuple[list[Any], tuple[str, list[_Tok], int] | None]:
        nodes: list[Any] = []
        while self.i < len(self.items):
            kind, value, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(_Text(value))
                continue
            toks: list[_Tok] = value
            if not toks:
                raise self._err("missing value for command", pos)
            t0 = toks[0]
            if t0.kind == _IDENT and t0.value in _KEYWORDS:
                kw = t0.value
                if kw in ("end", "else"):
                    if kw == "end" and len(toks) > 1:
                        raise self._err("unexpected tokens after end", pos)
                    return nodes, (kw, toks, pos)
                if kw in ("if", "with"):
                    nodes.append(self._branch(kw == "with", toks[1:], pos))
                elif kw == "range":
                    nodes.append(self._range(toks[1:], pos))
                elif kw in ("break", "continue"):
                    if self.range_depth == 0:
                        raise self._err(f"{{{{{kw}}}}} outside {{{{range}}}}", pos)
                    if len(toks) > 1:
                        raise self._err(f"unexpected tokens after {kw}", pos)
                    nodes.append(_BreakNode() if kw == "break" else _ContinueNode())
                else:
                    raise self._err(f"{{{{{kw}}}}} is not supported in --format", pos)
                continue
            nodes.append(_Action(self._pipeline(toks, pos, "command")))
        return nodes, None

    def _branch(self, is_with: bool, toks: list[_Tok], pos: int) -> _Branch:
        mark = len(self.vars)
        pipe = self._pipeline(toks, pos, "with" if is_with else "if")
        inner = len(self.vars)
        body, term = self._list()
        del self.vars[inner:]
        else_body: list[Any] = []
        if term is None:
            raise self._err("unexpected EOF", pos)
        if term[0] == "else":
            rest = term[1][1:]
            if rest and rest[0].kind == _IDENT and rest[0].value in ("if", "with"):
                else_body = [self._branch(rest[0].value == "with", rest[1:], term[2])]
            elif rest:
                raise self._err(f"unexpected {_tok_text(rest[0])} in else", term[2])
            else:
                else_body, term = self._list()
                if term is None:
                    raise self._err("unexpected EOF", pos)
                if term[0] != "end":
                    raise self._err("expected end; found {{else}}", term[2])
        del self.vars[mark:]
        return _Branch(is_with, pipe, body, else_body)

    def _range(self, toks: list[_Tok], pos: int) -> _Range:
        mark = len(self.vars)
        pipe = self._pipeline(toks, pos, "range", max_decl=2)
        self.range_depth += 1
        body, term = self._list()
        self.range_depth -= 1
        else_body: list[Any] = []
        if term is None:
            raise self._err("unexpected EOF", pos)
        if term[0] == "else":
            if len(term[1]) > 1:
                raise self._err(f"unexpected {_tok_text(term[1][1])} in else", term[2])
            del self.vars[mark:]
            else_body, term = self._list()
            if term is None:
                raise self._err("unexpected EOF", pos)
            if term[0] != "end":
                raise self._err("expected end; found {{else}}", term[2])
        del self.vars[mark:]
        return _Range(pipe, body, else_body)

    def _pipeline(self, toks: list[_Tok], pos: int, context: str, max_decl: int = 1) -> _Pipeline:
        decl: list[str] = []
        assign = False
        j = 0
        if toks and toks[0].kind == _VAR and not toks[0].value[1]:
            if len(toks) > 1 and toks[1].kind in (_DECLARE, _ASSIGN):
                decl, assign, j = [toks[0].value[0]], toks[1].kind == _ASSIGN, 2
            elif (len(toks) > 3 and toks[1].kind == _COMMA and toks[2].kind == _VAR
                  and toks[3].kind in (_DECLARE, _ASSIGN)):
                if max_decl < 2:
                    raise self._err("too many declarations in command", pos)
                decl = [toks[0].value[0], toks[2].value[0]]
                assign, j = toks[3].kind == _ASSIGN, 4
        if j == len(toks):
            raise self._err(f"missing value for {context}", pos)
        cmds, k = self._commands(toks, j, pos)
        if k < len(toks):
            raise self._err(f"unexpected {_tok_text(toks[k])} in {context}", pos)
        for name in decl:
            if name == "$":
                raise self._err('cannot declare or assign "$"', pos)
            if assign and name not in self.vars:
                raise self._err(f'undefined variable "{name}"', pos)
        if not assign:
            self.vars.extend(decl)
        return _Pipeline(decl, assign, cmds, toks[j].pos)

    def _commands(self, toks: list[_Tok], i: int, pos: int) -> tuple[list[_Command], int]:
        cmds: list[_Command] = []
        while True:
            args: list[Any] = []
            start = toks[i].pos if i < len(toks) else pos
            while i < len(toks) and toks[i].kind not in (_PIPE, _RPAREN):
                arg, i = self._operand(toks, i, pos)
                args.append(arg)
            if not args:
                raise self._err("missing value for command", pos)
            cmds.append(_Command(args, start))
            if i < len(toks) and toks[i].kind == _PIPE:
                i += 1
                continue
            return cmds, i

    def _operand(self, toks: list[_Tok], i: int, pos: int) -> tuple[Any, int]:
        t = toks[i]
        k = t.kind
        if k == _FIELD:
            return _Field(t.value, t.pos), i + 1
        if k == _DOT:
            return _Dot(t.pos), i + 1
        if k == _VAR:
            name, names = t.value
            if name not in self.vars:
                raise self._err(f'undefined variable "{name}"', pos)
            return _Var(name, names, t.pos), i + 1
        if k in (_STRING, _NUMBER, _CHAR):
            text = json.dumps(t.value) if k == _STRING else str(t.value)
            return _Const(t.value, text, t.pos), i + 1
        if k == _IDENT:
            name = t.value
            if name in ("true", "false"):
                return _Const(name == "true", name, t.pos), i + 1
            if name == "nil":
                return _Const(None, "nil", t.pos), i + 1
            if name in _KEYWORDS:
                raise self._err(f"unexpected <{name}> in operand", pos)
            if name not in BASE_FUNCS:
                raise self._err(f'function "{name}" not defined', pos)
            return _Ident(name, t.pos), i + 1
        if k == _LPAREN:
            cmds, j = self._commands(toks, i + 1, pos)
            if j >= len(toks) or toks[j].kind != _RPAREN:
                raise self._err("unclosed left paren", pos)
            j += 1
            names: tuple[str, ...] = ()
            if j < len(toks) and toks[j].kind == _CHAIN:
                names = toks[j].value
                j += 1
            return _SubPipe(_Pipeline([], False, cmds, t.pos), names, t.pos), j
        raise self._err(f"unexpected {_tok_text(t)} in operand", pos)


def _tok_text(t: _Tok) -> str:
    return {_PIPE: '"|"', _LPAREN: '"("', _RPAREN: '")"', _DECLARE: '":="', _ASSIGN: '"="',
            _COMMA: '","'}.get(t.kind, f"<{t.value}>")


# --------------------------------------------------------------------------- executor

_NO_FINAL = object()


class _Exec:
    """One render: the root ($), variables, the function table, the output buffer."""

    __slots__ = ("root", "vars", "funcs", "out")

    def __init__(self, root: Any, funcs: Mapping[str, _FuncSpec]) -> None:
        self.root = root
        self.vars: list[list[Any]] = [["$", root]]
        self.funcs = funcs
        self.out: list[str] = []

    def run(self, nodes: list[Any], dot: Any) -> None:
        out = self.out
        for node in nodes:
            t = type(node)
            if t is _Text:
                out.append(node.text)
            elif t is _Action:
                field = node.field
                if field is not None:
                    value = dot
                    for name in field.names:
                        value = self.field(value, name, field)
                else:
                    value = self.pipeline(node.pipe, dot)
                    if node.pipe.decl:
                        continue
                out.append(value if type(value) is str else _print_value(value))
            elif t is _Branch:
                self.branch(node, dot)
            elif t is _Range:
                self.range(node, dot)
            elif t is _BreakNode:
                raise _Break
            elif t is _ContinueNode:
                raise _Continue

    def branch(self, node: _Branch, dot: Any) -> None:
        mark = len(self.vars)
        value = self.pipeline(node.pipe, dot)
        if _truth(value):
            self.run(node.body, value if node.is_with else dot)
        elif node.else_body:
            self.run(node.else_body, dot)
        del self.vars[mark:]

    def range(self, node: _Range, dot: Any) -> None:
        mark = len(self.vars)
        pipe = node.pipe
        value = self.pipeline(_Pipeline([], False, pipe.cmds, pipe.pos), dot)
        if isinstance(value, (list, tuple)):
            pairs: Any = enumerate(value)
        elif isinstance(value, Mapping):
            pairs = [(k, value[k]) for k in _sorted_keys(value)]
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = ((i, i) for i in range(value))
        elif value is None:
            pairs = ()
        elif isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise _ExecError(f"range can't iterate over {go_sprint(value)}", pipe.cmds[0])
        else:
            pairs = enumerate(value)
        decl = pipe.decl
        ran = False
        for key, elem in pairs:
            ran = True
            if len(decl) == 1:
                self.setvar(decl[0], elem, pipe.assign)
            elif len(decl) == 2:
                self.setvar(decl[0], key, pipe.assign)
                self.setvar(decl[1], elem, pipe.assign)
            try:
                self.run(node.body, elem)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[mark + (0 if pipe.assign else len(decl)):]
        del self.vars[mark:]
        if not ran and node.else_body:
            self.run(node.else_body, dot)

    def setvar(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for slot in reversed(self.vars):
                if slot[0] == name:
                    slot[1] = value
                    return
        self.vars.append([name, value])

    def getvar(self, name: str) -> Any:
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot[1]
        raise _ExecError(f'undefined variable: {name}')

    def pipeline(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        for name in pipe.decl:
            self.setvar(name, value, pipe.assign)
        return value

    def command(self, cmd: _Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        t = type(first)
        if t is _Ident:
            return self.call(first.name, cmd, dot, final)
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            if t is _Field:
                raise _ExecError(f"{first.names[-1]} has arguments but cannot be invoked as function", first)
            raise _ExecError(f"can't give argument to non-function {first}", cmd)
        return self.arg(first, dot)

    def call(self, name: str, cmd: _Command, dot: Any, final: Any) -> Any:
        fn, lo, hi = self.funcs[name]
        nargs = len(cmd.args) - 1 + (final is not _NO_FINAL)
        if nargs < lo or (hi is not None and nargs > hi):
            want = f"at least {lo}" if hi is None else str(lo)
            raise _ExecError(f"wrong number of args for {name}: want {want} got {nargs}", cmd)
        if name in ("and", "or"):
            value: Any = None
            for a in cmd.args[1:]:
                value = self.arg(a, dot)
                if _truth(value) != (name == "and"):
                    return value
            return final if final is not _NO_FINAL else value
        args = [self.arg(a, dot) for a in cmd.args[1:]]
        if final is not _NO_FINAL:
            args.append(final)
        try:
            return fn(*args)
        except _ExecError as e:
            raise _ExecError(f"error calling {name}: {e.msg}", cmd) from None
        except (ValueError, TypeError, OverflowError, KeyError) as e:
            raise _ExecError(f"error calling {name}: {e}", cmd) from None

    def arg(self, node: Any, dot: Any) -> Any:
        t = type(node)
        if t is _Field:
            value = dot
            for name in node.names:
                value = self.field(value, name, node)
            return value
        if t is _Const:
            return node.value
        if t is _Dot:
            return dot
        if t is _Var:
            value = self.getvar(node.name)
            for name in node.names:
                value = self.field(value, name, node)
            return value
        if t is _SubPipe:
            value = self.pipeline(node.pipe, dot)
            for name in node.names:
                value = self.field(value, name, node)
            return value
        if t is _Ident:
            return self.call(node.name, _Command([node], node.pos), dot, _NO_FINAL)
        raise _ExecError(f"can't evaluate {node}")  # pragma: no cover - parser prevents it

    def field(self, recv: Any, name: str, node: Any) -> Any:
        if type(recv) is dict:
            try:
                return recv[name]
            except KeyError:
                if recv is self.root:
                    raise _ExecError(
                        f"can't evaluate field {name} in type {_go_type(recv)}", node) from None
                return None
        if recv is None:
            return None
        if isinstance(recv, _HeaderStr):
            return recv.headers[name]
        if isinstance(recv, Mapping):
            try:
                return recv[name]
            except KeyError:
                if recv is self.root:
                    raise _ExecError(
                        f"can't evaluate field {name} in type {_go_type(recv)}", node) from None
                return None
        if not isinstance(recv, (str, int, float, list, tuple, bytes)) and not name.startswith("_"):
            try:
                value = getattr(recv, name)
            except AttributeError:
                pass
            else:
                if callable(value) and not isinstance(value, type):
                    try:
                        return value()
                    except TypeError as e:
                        raise _ExecError(f"error calling {name}: {e}", node) from None
                return value
        raise _ExecError(f"can't evaluate field {name} in type {_go_type(recv)}", node)


# --------------------------------------------------------------------------- public API


class Template:
    """A parsed ``--format`` template; parse once, then :meth:`render` for every row."""

    __slots__ = ("source", "_nodes")

    def __init__(self, source: str, nodes: list[Any]) -> None:
        self.source = source
        self._nodes = nodes

    def render(self, data: Any) -> str:
        """Execute against ``data`` (``$`` and the first ``.``)."""
        ex = _Exec(data, BASE_FUNCS)
        try:
            ex.run(self._nodes, data)
        except _ExecError as e:
            raise InvalidArgument(self._exec_message(e)) from None
        except RecursionError:
            raise InvalidArgument("template parsing error: template: : exceeded maximum template depth") from None
        return "".join(ex.out)

    def render_header(self, headers: Mapping[str, str] | None = None) -> str:
        """The table header row as Docker makes it: fields become column titles.

        Field ``X`` renders as ``headers[X]`` or ``X.upper()``; string functions are
        identities; errors are ignored and what rendered so far is kept, as in Docker.
        """
        data = HeaderData(headers or {})
        ex = _Exec(data, HEADER_FUNCS)
        try:
            ex.run(self._nodes, data)
        except (_ExecError, _Break, _Continue, RecursionError):
            pass
        return "".join(ex.out)

    def _exec_message(self, e: _ExecError) -> str:
        src = self.source
        node = e.node
        if node is None:
            return _one_line(f'template parsing error: template: : executing "": {e.msg}')
        pos = node.pos
        line = src.count("\n", 0, pos) + 1
        col = pos - (src.rfind("\n", 0, pos) + 1)
        return _one_line(
            f'template parsing error: template: :{line}:{col}: executing "" at <{node}>: {e.msg}'
        )


@functools.lru_cache(maxsize=64)
def _compile(source: str) -> Template:
    try:
        nodes = _Parser(source).parse()
    except _ParseError as e:
        raise InvalidArgument(_one_line(f"template parsing error: template: :{e.line}: {e.msg}")) from None
    return Template(source, nodes)


def compile_template(template: str) -> Template:
    """Parse a ``--format`` string; ``\\t``/``\\n`` typed in the shell become tab/newline.

    Raises :class:`InvalidArgument` (``template parsing error: ...``) on bad syntax.
    Parsed templates are cached, since a command may format with the same string often.
    """
    return _compile(template.replace("\\t", "\t").replace("\\n", "\n"))


def render(template: str, data: Any) -> str:
    """Parse (cached) and execute ``template`` against ``data`` in one call."""
    return compile_template(template).render(data)
