"""How Go prints values: ``fmt``'s ``%v`` (:func:`go_sprint`), ``Sprintf``
(:func:`go_sprintf`) and ``encoding/json`` (:func:`go_json`), plus template truth and Go type names.

Scripts compare berth's output with Docker's byte for byte, so numbers, maps, nil and
bad-verb markers follow Go's spelling, not Python's ``str``/``repr``/``json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from berth.gotypes import NilList, NilMap


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
    elif v is None or t is NilMap or t is NilList:
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
    open_: str, close: str, items: Sequence[tuple[str | None, Any]], out: list[str],
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
