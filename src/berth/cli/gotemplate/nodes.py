"""The parse tree the parser builds and the executor walks.

Nodes are plain ``__slots__`` classes (a listing renders one tree per row, so attribute
access must be cheap), and ``str(node)`` spells the node as Go does, because runtime errors
quote it: ``executing "" at <.Foo>: ...``.
"""

from __future__ import annotations

from typing import Any


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
