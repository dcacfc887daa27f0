"""How listing and inspect commands print: Docker's table, ``--format``, ``-q``, JSON.

Scripts parse Docker's output, so berth reproduces its mechanics rather than its look:
tables are aligned by the same elastic-tabstop rule as Docker's tabwriter (minimum cell
width 10, padding 3, the last column unpadded), ``--format "table ..."`` derives the header
row from the template, ``--format json`` prints one compact object per line, and
``inspect`` prints a 4-space indented JSON list.

Every function returns text without a trailing newline; callers print it (and print
nothing when it is empty, so ``-q`` over no rows prints no blank line).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from berth.cli.gotemplate import compile_template, go_json, go_sprint

__all__ = ["format_rows", "print_json", "tabwrite", "text_width"]

# Docker's formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
TABLE_MINWIDTH = 10
TABLE_PADDING = 3


def text_width(s: str) -> int:
    """Terminal columns of ``s``: wide East Asian characters count 2, combining marks 0.

    Docker's tabwriter measures cells with go-runewidth; plain ``len`` would misalign
    a column holding a name like ``日本``.
    """
    if s.isascii():
        return len(s)
    width = 0
    for ch in s:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def tabwrite(lines: Sequence[Sequence[str]], padding: int = TABLE_PADDING,
             minwidth: int = TABLE_MINWIDTH) -> str:
    """Align cells like Go's text/tabwriter: each line is its cells, tab-terminated but last.

    A column is a run of consecutive lines that all have a cell there (and a cell after
    it), so a short line ends the columns it lacks, exactly as in Go. A column is as wide
    as its widest cell plus ``padding``, but at least ``minwidth``; a line's last cell is
    never padded, so lines carry no trailing spaces.
    """
    widths = [[text_width(c) for c in line] for line in lines]
    out: list[str] = []
    col_widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        ncols = len(col_widths)
        for i in range(line0, line1):
            parts = []
            for j, cell in enumerate(lines[i]):
                parts.append(cell)
                if j < ncols:
                    parts.append(" " * (col_widths[j] - widths[i][j]))
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(col_widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, widths[this][column] + padding)
                this += 1
            col_widths.append(width)
            fmt(line0, this)
            col_widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)


def _cell(value: Any) -> str:
    """A default-table cell: Go's printing, but a missing value is blank, not <no value>."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    return go_sprint(value)


class LabeledRow(dict):  # type: ignore[type-arg]
    """A listing row whose template may call Docker's ``{{.Label "key"}}``.

    Docker's ps, volume ls and network ls contexts have a ``Label`` method; the row stays
    a plain mapping for every other use (fields, ``json``)."""

    def __init__(self, row: Mapping[str, Any], labels: Mapping[str, str] | None) -> None:
        super().__init__(row)
        self.labels = dict(labels or {})

    def Label(self, key: str) -> str:  # noqa: N802 - Docker's template name
        return self.labels.get(key, "")


def format_rows(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    fmt: str | None,
    *,
    quiet_key: str | None = None,
    quiet: bool = False,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Render a listing the way Docker's ``--format``/``-q`` would.

    ``columns`` are the default table's ``(HEADER, field)`` pairs. ``fmt``:
    ``None``/``""``/``"table"`` -> that table; ``"json"`` -> each row as one compact JSON
    object (keys sorted, HTML escaped, as Docker's); ``"table TEMPLATE"`` -> the template's
    cells (split on tabs) under a header made by rendering it over field names, titled
    from ``headers`` (field -> title), then ``columns``, else the field upper-cased;
    any other string -> the template per row, unaligned. ``quiet`` wins over all of
    these and prints ``row[quiet_key]`` (default: the ``ID`` field) per line.
    Raises :class:`~berth.errors.InvalidArgument` for a bad template.
    """
    if quiet:
        key = quiet_key or "ID"
        return "\n".join(_cell(row.get(key)) for row in rows)
    if fmt is None or fmt in ("", "table"):
        table = [[h for h, _ in columns]]
        table.extend([_cell(row.get(field)) for _, field in columns] for row in rows)
        return tabwrite(table)
    if fmt == "json":
        return "\n".join(go_json(row, escape_html=True, sort_keys=True) for row in rows)
    if fmt.startswith("table"):
        tmpl = compile_template(fmt[len("table"):].strip(" "))
        titles = {field: header for header, field in columns}
        titles.update(headers or {})
        # Feed the tabwriter what Docker feeds it: header, newline, each row plus newline.
        text = tmpl.render_header(titles) + "\n" + "".join(tmpl.render(row) + "\n" for row in rows)
        return tabwrite([line.split("\t") for line in text.split("\n")[:-1]])
    tmpl = compile_template(fmt.strip(" "))
    return "\n".join(tmpl.render(row) for row in rows)


def print_json(obj: Any) -> str:
    """``inspect`` output: a 4-space indented JSON list, as Docker prints it.

    A single object is wrapped in a list (Docker always prints ``[...]``); non-ASCII
    stays readable while ``<``, ``>`` and ``&`` are escaped, since Docker's JSON comes
    from Go's ``json.Marshal`` (``&&`` in a RUN line shows as ``\\u0026\\u0026``).
    """
    if not isinstance(obj, (list, tuple)):
        obj = [obj]
    return go_json(list(obj), escape_html=True, indent="    ")
