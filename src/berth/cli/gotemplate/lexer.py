"""Template source to text chunks and action token lists.

Trim markers (``{{-``/``-}}``) and comments are resolved here, so the parser sees only
text and tokens; literals (strings, raw strings, chars, Go number syntax) are decoded here
too, so a bad literal reports the template line it is on.
"""

from __future__ import annotations

import re
from typing import Any

from berth.cli.gotemplate.errors import _ParseError

_WS = " \t\r\n"

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
