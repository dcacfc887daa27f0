"""Exceptions shared by the lexer, parser, functions and executor.

They live apart from all of those because each raises them: the lexer raises
``_ParseError`` before the parser exists, and builtin functions raise ``_ExecError``
without importing the executor that attaches the node and catches it.
"""

from __future__ import annotations

from typing import Any


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
