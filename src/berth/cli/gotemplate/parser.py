"""Tokens to node tree, by recursive descent over the lexer's items.

Function names and variables are checked here, as Go checks them at parse time, so a typo
in ``--format`` fails before any row renders, with Docker's ``template: :LINE: msg`` text.
"""

from __future__ import annotations

import json
from typing import Any

from berth.cli.gotemplate.errors import _ParseError
from berth.cli.gotemplate.funcs import BASE_FUNCS
from berth.cli.gotemplate.lexer import (
    _ASSIGN,
    _CHAIN,
    _CHAR,
    _COMMA,
    _DECLARE,
    _DOT,
    _FIELD,
    _IDENT,
    _LPAREN,
    _NUMBER,
    _PIPE,
    _RPAREN,
    _STRING,
    _VAR,
    _Lexer,
    _Tok,
)
from berth.cli.gotemplate.nodes import (
    _Action,
    _Branch,
    _BreakNode,
    _Command,
    _Const,
    _ContinueNode,
    _Dot,
    _Field,
    _Ident,
    _Pipeline,
    _Range,
    _SubPipe,
    _Text,
    _Var,
)

_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)


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
            chain: tuple[str, ...] = ()
            if j < len(toks) and toks[j].kind == _CHAIN:
                chain = toks[j].value
                j += 1
            return _SubPipe(_Pipeline([], False, cmds, t.pos), chain, t.pos), j
        raise self._err(f"unexpected {_tok_text(t)} in operand", pos)


def _tok_text(t: _Tok) -> str:
    return {_PIPE: '"|"', _LPAREN: '"("', _RPAREN: '")"', _DECLARE: '":="', _ASSIGN: '"="',
            _COMMA: '","'}.get(t.kind, f"<{t.value}>")
