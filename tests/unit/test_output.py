"""Docker's listing mechanics: tabwriter alignment, table/json/template formats, -q, inspect."""

from __future__ import annotations

import json

import pytest

from berth.cli.output import format_rows, print_json, tabwrite, text_width
from berth.errors import InvalidArgument

COLUMNS = [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"), ("SIZE", "Size")]
ROWS = [
    {"Repository": "busybox", "Tag": "latest", "ID": "abc123def456", "Size": "4.26MB"},
    {"Repository": "registry.example.com/team/app", "Tag": "v1", "ID": "0123456789ab",
     "Size": "77.8MB"},
]


def test_default_table_is_dockers() -> None:
    # Columns: widest cell + 3, at least 10 (TAG stays 10 wide); the last column unpadded.
    assert format_rows(ROWS, COLUMNS, None) == (
        "REPOSITORY                      TAG       IMAGE ID       SIZE\n"
        "busybox                         latest    abc123def456   4.26MB\n"
        "registry.example.com/team/app   v1        0123456789ab   77.8MB"
    )
    assert format_rows(ROWS, COLUMNS, "table") == format_rows(ROWS, COLUMNS, None)
    assert format_rows(ROWS, COLUMNS, "") == format_rows(ROWS, COLUMNS, None)


def test_default_table_without_rows_prints_the_header() -> None:
    assert format_rows([], COLUMNS, None) == "REPOSITORY   TAG       IMAGE ID   SIZE"


def test_default_table_prints_non_strings_like_go() -> None:
    rows = [{"A": 5, "B": None, "C": True}]
    assert format_rows(rows, [("A", "A"), ("B", "B"), ("C", "C")], None) == (
        "A         B         C\n"
        "5                   true"
    )


def test_tabwrite_minwidth_zero() -> None:
    assert tabwrite([["a", "bb", "c"], ["ccc", "d", "e"]], minwidth=0) == (
        "a     bb   c\n"
        "ccc   d    e"
    )


def test_tabwrite_a_short_line_ends_the_column_block() -> None:
    lines = [["a", "b", "c"], ["aaaaaaaaaaaaaaa"], ["x", "yyyyyyyyyyyy", "z"]]
    assert tabwrite(lines, minwidth=0) == (
        "a   b   c\n"
        "aaaaaaaaaaaaaaa\n"
        "x   yyyyyyyyyyyy   z"
    )


def test_tabwrite_pads_empty_cells_but_never_the_last() -> None:
    assert tabwrite([["A", "", "C"], ["", "B", ""]], minwidth=0) == (
        "A       C\n"
        "    B   "
    )


def test_tabwrite_counts_wide_characters_as_two_columns() -> None:
    assert text_width("日本") == 4
    assert text_width("e\u0301") == 1
    assert tabwrite([["日本", "x"], ["ab", "y"]], minwidth=0) == "日本   x\nab     y"


def test_tabwrite_padding_and_empty_input() -> None:
    assert tabwrite([["a", "b"], ["cc", "d"]], padding=1, minwidth=0) == "a  b\ncc d"
    assert tabwrite([]) == ""


def test_custom_table_derives_headers() -> None:
    out = format_rows(ROWS, COLUMNS, r"table {{.ID}}\t{{.Repository}}\t{{.Tag}}")
    assert out == (
        "IMAGE ID       REPOSITORY                      TAG\n"
        "abc123def456   busybox                         latest\n"
        "0123456789ab   registry.example.com/team/app   v1"
    )


def test_custom_table_headers_mapping_and_default_upper_case() -> None:
    rows = [{"ID": "c1", "Names": "web", "Extra": "x"}]
    out = format_rows(rows, [], "table {{.ID}}\t{{upper .Names}}\t{{.Extra}}",
                      headers={"ID": "CONTAINER ID"})
    assert out == (
        "CONTAINER ID   NAMES     EXTRA\n"
        "c1             WEB       x"
    )


def test_custom_table_without_rows_prints_header_only() -> None:
    assert format_rows([], COLUMNS, "table {{.ID}}\t{{.Size}}") == "IMAGE ID   SIZE"


def test_json_format_is_one_compact_sorted_object_per_line() -> None:
    rows = [{"Tag": "<none>", "ID": "1", "Size": 5, "Labels": {"z": "1", "a": "&"}}]
    out = format_rows(rows + rows, COLUMNS, "json")
    line = '{"ID":"1","Labels":{"a":"\\u0026","z":"1"},"Size":5,"Tag":"\\u003cnone\\u003e"}'
    assert out == line + "\n" + line
    assert json.loads(out.splitlines()[0])["Tag"] == "<none>"
    assert format_rows([], COLUMNS, "json") == ""


def test_plain_template_one_line_per_row_no_header() -> None:
    assert format_rows(ROWS, COLUMNS, "{{.ID}}: {{.Repository}}") == (
        "abc123def456: busybox\n0123456789ab: registry.example.com/team/app"
    )
    # No alignment: tabs stay tabs.
    assert format_rows(ROWS[:1], COLUMNS, r"{{.ID}}\t{{.Tag}}") == "abc123def456\tlatest"
    assert format_rows(ROWS[:1], COLUMNS, "  {{.Tag}}  ") == "latest"


def test_quiet_prints_keys_and_wins_over_format() -> None:
    assert format_rows(ROWS, COLUMNS, None, quiet=True) == "abc123def456\n0123456789ab"
    assert format_rows(ROWS, COLUMNS, "{{.Tag}}", quiet=True, quiet_key="Repository") == (
        "busybox\nregistry.example.com/team/app"
    )
    assert format_rows([], COLUMNS, None, quiet=True) == ""


def test_bad_templates_raise_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="template parsing error"):
        format_rows(ROWS, COLUMNS, "{{.ID")
    with pytest.raises(InvalidArgument, match="can't evaluate field Nope"):
        format_rows(ROWS, COLUMNS, "table {{.Nope}}")


def test_thousand_rows() -> None:
    rows = [{"ID": f"{i:012x}", "Repository": f"repo{i}", "Tag": "latest", "Size": "1MB"}
            for i in range(1000)]
    table = format_rows(rows, COLUMNS, r"table {{.ID}}\t{{.Repository}}\t{{.Tag}}").splitlines()
    assert len(table) == 1001
    assert table[1] == "000000000000   repo0        latest"
    assert table[1000] == "0000000003e7   repo999      latest"
    assert len(format_rows(rows, COLUMNS, "json").splitlines()) == 1000


def test_print_json_is_dockers_inspect() -> None:
    obj = {"Id": "sha256:ab", "RepoTags": ["a:1"], "Cmd": ["sh", "-c", "a && b > c"],
           "Empty": [], "Map": {}, "Name": "café", "Size": 1.0, "Null": None}
    assert print_json(obj) == (
        "[\n"
        "    {\n"
        '        "Id": "sha256:ab",\n'
        '        "RepoTags": [\n'
        '            "a:1"\n'
        "        ],\n"
        '        "Cmd": [\n'
        '            "sh",\n'
        '            "-c",\n'
        '            "a \\u0026\\u0026 b \\u003e c"\n'
        "        ],\n"
        '        "Empty": [],\n'
        '        "Map": {},\n'
        '        "Name": "café",\n'
        '        "Size": 1,\n'
        '        "Null": null\n'
        "    }\n"
        "]"
    )
    assert print_json([]) == "[]"
    assert print_json([obj]) == print_json(obj)
