"""Dockerfile variable expansion ("environment replacement").

The builder, not a shell, expands ``$var`` in ADD, COPY, ENV, EXPOSE, FROM, LABEL,
STOPSIGNAL, USER, VOLUME, WORKDIR (and ONBUILD triggers when they run). The rules follow
BuildKit's word lexer rather than POSIX sh, because that is what users' Dockerfiles are
written against:

* ``$name`` / ``${name}``; unset variables expand to the empty string;
* modifiers ``${v:-w}`` ``${v-w}`` ``${v:+w}`` ``${v+w}`` ``${v:?msg}`` ``${v?msg}`` and the
  pattern forms ``${v#p}`` ``${v##p}`` ``${v%p}`` ``${v%%p}`` ``${v/p/r}`` ``${v//p/r}``
  (``p`` is a glob: ``*``, ``?``, escaped ``\\*``/``\\?`` are literal);
* single quotes: literal, no expansion; double quotes: expansion, and the escape character
  only escapes ``"``, ``$`` and itself; outside quotes it escapes any character;
* the escape character is ``\\`` unless the ``# escape=`` directive chose a backtick.

:func:`expand` yields one word (quotes removed); :func:`expand_words` also splits on
unquoted whitespace, including whitespace that came out of a variable (EXPOSE uses this);
:func:`split_kv` splits ``k=v k2="v 2"`` text the way ENV and LABEL do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from berth.errors import DockerfileError

__all__ = ["ExpansionError", "expand", "expand_words", "expand_heredoc", "split_kv",
           "referenced_names"]

_SPECIAL_PARAMS = set("@*#?-$!")


class ExpansionError(DockerfileError):
    """A malformed ``${...}`` or an unterminated quote in an expandable word."""


class _Words:
    """Collects output words; tracks whether the current word has started (``""`` is a word)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.cur: list[str] = []
        self.started = False

    def add_raw(self, text: str) -> None:
        self.cur.append(text)
        self.started = True

    def add_split(self, text: str) -> None:
        """Text from a variable: whitespace inside it separates words."""
        for ch in text:
            if ch.isspace():
                self.blank()
            else:
                self.add_raw(ch)

    def blank(self) -> None:
        if self.started:
            self.words.append("".join(self.cur))
        self.cur, self.started = [], False

    def finish(self) -> list[str]:
        self.blank()
        return self.words


class _Lexer:
    """One pass over one word; ``env`` is looked up, never modified."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.esc = escape

    # -- scanning helpers -------------------------------------------------
    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1 if ch else 0
        return ch

    # -- top level ----------------------------------------------------------
    def run(self, words: _Words | None, stop: str = "") -> str:
        """Process until ``stop`` (or the end); returns the flat text, feeding ``words``."""
        out: list[str] = []
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(out)
            if ch == "'":
                tmp = self.single_quote()
                out.append(tmp)
                if words is not None:
                    words.add_raw(tmp)
            elif ch == '"':
                tmp = self.double_quote()
                out.append(tmp)
                if words is not None:
                    words.add_raw(tmp)
            elif ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                if words is not None:
                    words.add_split(tmp)
            else:
                self.next()
                if ch == self.esc:
                    ch = self.next()
                    if not ch:
                        break
                    out.append(ch)
                    if words is not None:
                        words.add_raw(ch)
                    continue
                out.append(ch)
                if words is not None:
                    if ch in " \t\n":
                        words.blank()
                    else:
                        words.add_raw(ch)
        if stop:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.esc:
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.esc):
                    ch = self.next()
            out.append(ch)

    # -- variables ------------------------------------------------------------
    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            start = self.i
            while self.peek().isdigit():
                self.next()
            return self.s[start:self.i]
        if ch and ch in _SPECIAL_PARAMS:
            return self.next()
        start = self.i
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.s[start:self.i]

    def dollar(self) -> str:
        self.next()  # the '$'
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()  # '{'
        name = self.name()
        if not name:
            raise ExpansionError("bad substitution: missing variable name after ${")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        value = self.env.get(name)
        if ch == ":":
            op = self.next()
            if op not in ("-", "+", "?"):
                raise ExpansionError(f"unsupported modifier (:{op}) in substitution")
            word = self.run(None, stop="}")
            return _modifier(name, value, op, word, colon=True)
        if ch in ("-", "+", "?"):
            word = self.run(None, stop="}")
            return _modifier(name, value, ch, word, colon=False)
        if ch in ("#", "%"):
            longest = self.peek() == ch
            if longest:
                self.next()
            pattern = self.raw_until("}")
            return _trim(value or "", pattern, prefix=ch == "#", longest=longest)
        if ch == "/":
            every = self.peek() == "/"
            if every:
                self.next()
            pattern = self.raw_until("/", "}")
            repl = "" if self.s[self.i - 1] == "}" else self.run(None, stop="}")
            return _replace(value or "", pattern, repl, every)
        if not ch:
            raise ExpansionError("missing '}' in substitution")
        raise ExpansionError(f"unsupported modifier ({ch}) in substitution")

    def raw_until(self, *stops: str) -> str:
        """A glob pattern: variables expand, ``\\*``/``\\?`` stay escaped for the matcher."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError("missing '}' in substitution")
            if ch in stops:
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(_glob_escape(self.dollar()))
                continue
            self.next()
            if ch == self.esc and self.peek():
                out.append("\\" + self.next())
                continue
            out.append(ch)


def _modifier(name: str, value: str | None, op: str, word: str, *, colon: bool) -> str:
    is_set = value is not None and (value != "" or not colon)
    if op == "-":
        return value if is_set else word  # type: ignore[return-value]
    if op == "+":
        return word if is_set else ""
    if not is_set:  # '?'
        raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
    return value  # type: ignore[return-value]


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\\])", r"\\\1", text)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    rx = _glob_regex(pattern)
    n = len(value)
    cuts = range(n, -1, -1) if (prefix == longest) else range(0, n + 1)
    for k in cuts:
        if prefix and rx.fullmatch(value[:k]):
            return value[k:]
        if not prefix and rx.fullmatch(value[k:]):
            return value[:k]
    return value


def _replace(value: str, pattern: str, repl: str, every: bool) -> str:
    """``${v/p/r}``: the leftmost, longest match of ``p`` is replaced (all with ``//``)."""
    if not pattern:
        return value
    rx = _glob_regex(pattern)
    out: list[str] = []
    i = 0
    while i < len(value):
        hit = next((e for e in range(len(value), i, -1) if rx.fullmatch(value, i, e)), None)
        if hit is None:
            out.append(value[i])
            i += 1
            continue
        out.append(repl)
        i = hit
        if not every:
            break
    out.append(value[i:])
    return "".join(out)


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one word and remove its quotes: ``"${A:-x} b"`` → ``x b``."""
    return _Lexer(word, env, escape).run(None)


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split into words on unquoted whitespace, including whitespace that came
    out of a variable (``EXPOSE $PORTS`` with ``PORTS="80 443"`` is two ports)."""
    words = _Words()
    _Lexer(text, env, escape).run(words)
    return words.finish()


def expand_heredoc(content: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand a here-document body with POSIX here-doc rules: quotes are ordinary text,
    ``$`` expands, and the escape character only protects ``$``, itself and a newline."""
    out: list[str] = []
    lx = _Lexer(content, env, escape)
    while lx.peek():
        ch = lx.peek()
        if ch == "$":
            out.append(lx.dollar())
            continue
        lx.next()
        if ch == escape and lx.peek() in ("$", escape, "\n"):
            nxt = lx.next()
            if nxt != "\n":
                out.append(nxt)
            continue
        out.append(ch)
    return "".join(out)


def split_kv(text: str, escape: str = "\\") -> list[tuple[str, str]]:
    """Split ``ENV``/``LABEL`` style text into raw (unexpanded) ``(key, value)`` pairs.

    Words split on unquoted whitespace; each must contain ``=``. The legacy form
    ``KEY value with spaces`` (first word without ``=``) is one pair. Values keep their
    quotes so that expansion later sees exactly what the user wrote.
    """
    words = _raw_words(text, escape)
    if not words:
        return []
    if "=" not in words[0]:
        key, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if not rest:
            raise DockerfileError(f"{key} must have two arguments")
        return [(key, rest)]
    pairs = []
    for w in words:
        if "=" not in w:
            raise DockerfileError(
                f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        pairs.append((k, v))
    return pairs


def _raw_words(text: str, escape: str) -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes verbatim."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


_NAME_RX = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


def referenced_names(text: str) -> set[str]:
    """Names a word may reference (``$A``, ``${B:-x}``): a conservative superset, used to
    decide which build args a step depends on for caching."""
    return {a or b for a, b in _NAME_RX.findall(text)}
