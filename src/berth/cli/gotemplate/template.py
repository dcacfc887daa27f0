"""The entry points: compile a ``--format`` string once (cached), render it per row.

This is also where internal parse and execution errors become Docker's one-line
``template parsing error: template: ...`` :class:`InvalidArgument`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from berth.cli.gotemplate.errors import _Break, _Continue, _ExecError, _one_line, _ParseError
from berth.cli.gotemplate.execute import _Exec
from berth.cli.gotemplate.funcs import BASE_FUNCS, HEADER_FUNCS, HeaderData
from berth.cli.gotemplate.parser import _Parser
from berth.errors import InvalidArgument


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
