"""Evaluation of a node tree against one data value: field lookup, pipelines,
``if``/``with``/``range``, variables and function calls.

Field lookup is where Python data meets Go semantics: a mapping key first, then an
attribute (zero-argument methods are called); a missing field on the root mapping (a Go
struct in Docker) is an error, a missing key in a nested mapping (a Go map) is nil.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth.cli.gotemplate.errors import _Break, _Continue, _ExecError
from berth.cli.gotemplate.funcs import _FuncSpec, _HeaderStr
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
from berth.cli.gotemplate.values import _go_type, _print_value, _sorted_keys, _truth, go_sprint

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
                return self.method(first, cmd, dot, final)
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

    def method(self, node: _Field, cmd: _Command, dot: Any, final: Any) -> Any:
        """``.Label "key"``: a method with arguments, as Go calls one on the receiver.

        Only public methods a row's class defines count (a listing row that offers
        Docker's ``Label`` method, say); a map key is never callable with arguments.
        """
        recv = dot
        for name in node.names[:-1]:
            recv = self.field(recv, name, node)
        name = node.names[-1]
        fn = getattr(type(recv), name, None) if not name.startswith("_") else None
        if recv is None or fn is None or not callable(fn) or \
                type(recv) in (dict, str, int, float, list, tuple, bytes, bool):
            raise _ExecError(f"{name} has arguments but cannot be invoked as function", node)
        args = [self.arg(a, dot) for a in cmd.args[1:]]
        if final is not _NO_FINAL:
            args.append(final)
        try:
            return fn(recv, *args)
        except TypeError as e:
            raise _ExecError(f"error calling {name}: {e}", node) from None

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

    def _key(self, recv: Mapping[str, Any], name: str, node: Any) -> Any:
        """A map lookup: a missing key is Go's error on the top-level object, else nil."""
        try:
            return recv[name]
        except KeyError:
            if recv is self.root:
                raise _ExecError(
                    f"can't evaluate field {name} in type {_go_type(recv)}", node) from None
            return None

    def field(self, recv: Any, name: str, node: Any) -> Any:
        if type(recv) is dict:  # the common case, before the slower ABC checks
            return self._key(recv, name, node)
        if recv is None:
            return None
        if isinstance(recv, _HeaderStr):
            return recv.headers[name]
        if isinstance(recv, Mapping):
            return self._key(recv, name, node)
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
