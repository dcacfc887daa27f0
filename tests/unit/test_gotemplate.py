"""The Go text/template subset behind --format: syntax, Go's printing, Docker's errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from berth.cli.gotemplate import compile_template, go_json, go_sprintf, render
from berth.errors import InvalidArgument


@dataclass
class Port:
    Private: int
    Type: str


class Container:
    """An object, not a dict: fields come from attributes and niladic methods."""

    ID = "abc123"

    def Names(self) -> str:
        return "web"


ROW = {
    "ID": "abc123",
    "Names": "web",
    "Size": 42,
    "Ratio": 1.0,
    "Up": True,
    "Tags": ["a", "b", "c"],
    "Labels": {"com.x": "1", "b": "2"},
    "State": {"Status": "running", "Pid": 7},
    "Empty": [],
    "Nil": None,
}


@pytest.mark.parametrize(
    ("tmpl", "out"),
    [
        ("{{.ID}}", "abc123"),
        ("id={{.ID}} name={{.Names}}", "id=abc123 name=web"),
        ("{{.State.Status}}/{{.State.Pid}}", "running/7"),
        ("{{.Up}} {{.Size}} {{.Ratio}}", "true 42 1"),
        ("{{.Tags}}", "[a b c]"),
        ("{{.Labels}}", "map[b:2 com.x:1]"),
        ("{{.Nil}}", "<no value>"),
        ("{{.Labels.missing}}", "<no value>"),
        ('{{index .Labels "com.x"}}', "1"),
        ('{{index .Labels "nope"}}', ""),
        ('{{index .Nil "nope"}}', ""),
        ("{{index .Tags 1}}", "b"),
        # Docker turns a typed \\n into a newline before parsing, even inside raw strings
        ('{{"lit"}} {{`raw\\n`}} {{3}} {{1.5}}', "lit raw\n 3 1.5"),
        ("{{.Names | upper}}", "WEB"),
        ("{{.Names | printf \"%s!\"}}", "web!"),
        ('{{join .Tags ", "}}', "a, b, c"),
        ('{{split "a:b" ":"}}', "[a b]"),
        ('{{upper "x"}}{{lower "Y"}}{{title "hello big-world"}}', "XyHello Big-World"),
        ('{{truncate .ID 3}}|{{truncate .ID 30}}', "abc|abc123"),
        ('[{{pad .Names 1 2}}][{{pad "" 1 2}}]', "[ web  ][]"),
        ("{{len .Tags}} {{len .Labels}} {{len .ID}}", "3 2 6"),
        ("{{slice .Tags 1 2}} {{slice .ID 3}}", "[b] 123"),
        ('{{print "a" 1 2 "b"}}', "a1 2b"),
        ('{{println "a" 1}}', "a 1\n"),
        ("{{json .Labels}}", '{"com.x":"1","b":"2"}'),
        ("{{json .Tags}} {{json .Nil}} {{json .Ratio}}", '["a","b","c"] null 1'),
        ('{{json "<a&b>"}}', '"<a&b>"'),
        ("{{if .Up}}up{{end}}", "up"),
        ("{{if .Empty}}x{{else}}empty{{end}}", "empty"),
        ("{{if eq .Size 1}}1{{else if eq .Size 42}}42{{else}}?{{end}}", "42"),
        ('{{if and .Up (eq .Names "web")}}yes{{end}}', "yes"),
        ("{{or .Nil .Empty .ID}} {{and .Up .Size}} {{and .Up .Nil}}", "abc123 42 <no value>"),
        ("{{not .Up}} {{ne .Size 1}} {{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}}",
         "false true true true false true"),
        ('{{eq .Names "db" "web"}}', "true"),
        ("{{with .State}}{{.Status}}{{end}}", "running"),
        ("{{with .Nil}}x{{else}}none{{end}}", "none"),
        ("{{range .Tags}}<{{.}}>{{end}}", "<a><b><c>"),
        ("{{range $i, $t := .Tags}}{{$i}}={{$t}} {{end}}", "0=a 1=b 2=c "),
        ("{{range $k, $v := .Labels}}{{$k}}:{{$v}};{{end}}", "b:2;com.x:1;"),
        ("{{range $t := .Tags}}{{$t}}{{end}}", "abc"),
        ("{{range .Empty}}x{{else}}none{{end}}", "none"),
        ("{{range .Tags}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}", "ac"),
        ("{{range .Tags}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}", "a"),
        ("{{range .Tags}}{{$.ID}}{{end}}", "abc123abc123abc123"),
        ("{{$n := .Names}}{{$n}}-{{$n}}", "web-web"),
        ("{{$n := 1}}{{if .Up}}{{$n = 2}}{{end}}{{$n}}", "2"),
        ("{{(index .Tags 0) | upper}}", "A"),
        ("{{(.State).Status}}", "running"),
        ("a  {{- .ID -}}  b", "aabc123b"),
        ("{{range .Tags -}}\n  {{.}}\n{{- end}}", "abc"),
        ("{{with .Nil}}x{{else with .State}}{{.Pid}}{{end}}", "7"),
        ("{{if .Nil}}x{{else if .Empty}}y{{end}}.", "."),
        ("{{/* comment */}}x {{- /* trimmed */ -}} y", "xy"),
        ("{{.}}", "map[Empty:[] ID:abc123 Labels:map[b:2 com.x:1] Names:web "
         "Nil:<nil> Ratio:1 Size:42 State:map[Pid:7 Status:running] Tags:[a b c] Up:true]"),
    ],
)
def test_render(tmpl: str, out: str) -> None:
    assert render(tmpl, ROW) == out


def test_shell_escapes_become_tab_and_newline() -> None:
    assert render(r"{{.ID}}\t{{.Names}}\n", ROW) == "abc123\tweb\n"
    assert render(r'{{join .Tags "\n"}}', ROW) == "a\nb\nc"


def test_objects_and_dataclasses() -> None:
    assert render("{{.ID}} {{.Names}}", Container()) == "abc123 web"
    data = {"Ports": [Port(80, "tcp")]}
    assert render("{{range .Ports}}{{.Private}}/{{.Type}}{{end}}", data) == "80/tcp"
    assert render("{{.Ports}}", data) == "[{80 tcp}]"
    assert render("{{json .Ports}}", data) == '[{"Private":80,"Type":"tcp"}]'


def test_compile_once_render_many() -> None:
    tmpl = compile_template(r"{{.ID}}\t{{upper .Names}}\t{{if .Up}}up{{end}}")
    rows = [{"ID": f"id{i}", "Names": f"n{i}", "Up": i % 2 == 0} for i in range(1000)]
    out = [tmpl.render(r) for r in rows]
    assert len(out) == 1000
    assert out[0] == "id0\tN0\tup"
    assert out[999] == "id999\tN999\t"
    assert compile_template(r"{{.ID}}\t{{upper .Names}}\t{{if .Up}}up{{end}}") is tmpl


def test_header_rendering_uses_titles_and_identity_functions() -> None:
    tmpl = compile_template("{{.ID}}\t{{upper .Names}}\t{{json .Labels}}\t{{.State.Status}}")
    assert tmpl.render_header({"ID": "CONTAINER ID"}) == "CONTAINER ID\tNAMES\tLABELS\tSTATUS"


def _error(tmpl: str, data: object = ROW) -> str:
    with pytest.raises(InvalidArgument) as info:
        render(tmpl, data)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("template parsing error: template: :")
    return msg


def test_missing_field_error_is_gos() -> None:
    assert _error("{{.Nope}}") == (
        'template parsing error: template: :1:2: executing "" at <.Nope>: '
        "can't evaluate field Nope in type map[string]interface {}"
    )


@pytest.mark.parametrize(
    ("tmpl", "fragment"),
    [
        ("{{.ID}} {{.State.Pid.X}}", ":1:10: executing \"\" at <.State.Pid.X>: "
                                     "can't evaluate field X in type int"),
        ("line1\n  {{.Nope}}", ":2:4: executing"),
        ("{{.Nope}}", "Nope"),
        ("{{index .Tags 9}}", "at <index .Tags 9>: error calling index: index out of range: 9"),
        ("{{len .Size}}", "error calling len: len of type int"),
        ("{{join .Tags}}", "wrong number of args for join: want 2 got 1"),
        ('{{eq .Size "x"}}', "error calling eq: incompatible types for comparison"),
        ("{{range .Size}}{{end}}", ""),
        ("{{.ID 1}}", "ID has arguments but cannot be invoked as function"),
        ("{{.Names}}", "can't evaluate field Names in type Box"),
    ],
)
def test_exec_errors(tmpl: str, fragment: str) -> None:
    class Box:
        pass

    data = Box() if tmpl == "{{.Names}}" else ROW
    if tmpl == "{{range .Size}}{{end}}":
        assert render(tmpl, data) == ""  # Go 1.22 ranges over an int: 42 empty iterations
        return
    assert fragment in _error(tmpl, data)


@pytest.mark.parametrize(
    ("tmpl", "message"),
    [
        ("{{.ID", "template: :1: unclosed action"),
        ("{{if .Up}}x", "template: :1: unexpected EOF"),
        ("x{{end}}", "template: :1: unexpected {{end}}"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{nope .ID}}", 'template: :1: function "nope" not defined'),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ('{{"abc}}', "template: :1: unterminated quoted string"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{if}}{{end}}", "template: :1: missing value for if"),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("a\n{{.A | }}", "template: :2: missing value for command"),
        ("{{(.A}}", "template: :1: unclosed left paren"),
        ('{{define "x"}}{{end}}', "template: :1: {{define}} is not supported"),
        ("{{.A # }}", "template: :1: bad character"),
    ],
)
def test_parse_errors(tmpl: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_template(tmpl)
    text = str(info.value)
    assert text.startswith("template parsing error: " + message)
    assert "\n" not in text


@pytest.mark.parametrize(
    ("fmt", "args", "out"),
    [
        ("%s|%v|%d", ["a", [1, 2], 7], "a|[1 2]|7"),
        ("%-6s|%6s|", ["ab", "cd"], "ab    |    cd|"),
        ("%05d|%+d|%x|%X|%#x", [42, 3, 255, 255, 255], "00042|+3|ff|FF|0xff"),
        ("%.2f|%8.3f|%e|%g", [3.14159, 2.5, 1500.0, 0.5], "3.14|   2.500|1.500000e+03|0.5"),
        ("%q|%t|%c|%%", ["hi", True, 65], '"hi"|true|A|%'),
        ("%.3s", ["abcdef"], "abc"),
        ("%F|%.1e|%-5d|", [1.5, 12345.0, 3], "1.500000|1.2e+04|3    |"),
        ("%*d", [4, 7], "   7"),
        ("%d", ["x"], "%!d(string=x)"),
        ("%s %s", ["a"], "a %!s(MISSING)"),
        ("%s", ["a", 1], "a%!(EXTRA int=1)"),
        ("%v %v %v", [None, True, 1e21], "<nil> true 1e+21"),
    ],
)
def test_printf(fmt: str, args: list[object], out: str) -> None:
    assert go_sprintf(fmt, args) == out


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.5, "0.5"), (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"),
     (1e-5, "1e-05"), (-2.5, "-2.5")],
)
def test_float_printing_is_gos(value: float, text: str) -> None:
    assert render("{{.}}", value) == text


def test_go_json() -> None:
    data = {"b": 1, "a": [1.0, 1.5, 1e-7, 1e21, 1e16], "s": "<é>&\u2028", "n": None, "t": True}
    assert go_json(data) == '{"b":1,"a":[1,1.5,1e-7,1e+21,10000000000000000],"s":"<é>&\\u2028",' \
                            '"n":null,"t":true}'
    assert go_json(data, escape_html=True, sort_keys=True).startswith('{"a":')
    assert "\\u003cé\\u003e\\u0026" in go_json(data, escape_html=True)
    assert go_json({"a": [], "b": {}}, indent="  ") == '{\n  "a": [],\n  "b": {}\n}'
