"""Dockerfile parsing: instructions, directives, heredocs, and errors that name the line."""

from __future__ import annotations

import pytest

from berth.build.parser import parse_dockerfile, parse_duration_ns
from berth.errors import DockerfileError, InvalidArgument


def err(text: str, filename: str = "Dockerfile") -> str:
    with pytest.raises(DockerfileError) as ei:
        parse_dockerfile(text, filename)
    assert isinstance(ei.value, InvalidArgument)
    return str(ei.value)


def test_basic_instructions_and_lines():
    df = parse_dockerfile("FROM busybox AS b\nrun echo hi \\\n  there\nCOPY --from=b --chown=1:2 x y\n")
    names = [i.name for i in df.instructions]
    assert names == ["FROM", "RUN", "COPY"]
    run = df.instructions[1]
    assert (run.line, run.end_line) == (2, 3)
    assert run.args == ("echo hi   there",) and not run.json
    cp = df.instructions[2]
    assert cp.flags == {"from": ["b"], "chown": ["1:2"]}
    assert cp.args == ("x", "y")


def test_exec_form_and_comment_inside_continuation():
    df = parse_dockerfile('FROM x\nCMD ["a", "b c"]\nRUN echo hello \\\n# comment\nworld\n')
    assert df.instructions[1].json and df.instructions[1].args == ("a", "b c")
    assert df.instructions[2].args == ("echo hello world",)


def test_env_label_pairs_keep_raw_values():
    df = parse_dockerfile('FROM x\nENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog\nENV ONE TWO= THREE=world\n'
                          'LABEL "com.example.vendor"="ACME Incorporated"\n')
    assert df.instructions[1].args == ("MY_NAME", '"John Doe"', "MY_DOG", "Rex\\ The\\ Dog")
    assert df.instructions[2].args == ("ONE", "TWO= THREE=world")
    assert df.instructions[3].args == ('"com.example.vendor"', '"ACME Incorporated"')


def test_directives_syntax_escape_check():
    df = parse_dockerfile("# syntax=docker/dockerfile:1\n# Escape = `\n#check=skip=all\n\nFROM x\nRUN dir c:\\ `\n  foo\n")
    assert df.syntax == "docker/dockerfile:1"
    assert df.escape == "`"
    assert df.check == "skip=all"
    run = df.instructions[1]
    assert run.args == ("dir c:\\   foo",) and (run.line, run.end_line) == (6, 7)


def test_directive_after_comment_is_a_comment():
    df = parse_dockerfile("# About\n# escape=`\nFROM x\n")
    assert df.escape == "\\" and df.directives == {}


def test_duplicate_and_invalid_directives():
    assert err("# escape=`\n# escape=\\\nFROM x\n") == \
        "Dockerfile:2: only one escape parser directive can be used"
    assert err("# escape=x\nFROM x\n").startswith("Dockerfile:1: invalid escape token")


def test_heredocs_run_and_copy():
    text = ("FROM x\nRUN <<EOF\necho a\necho b\nEOF\nCOPY <<-EOT /s.sh\n\t\techo hi\n\tEOT\n"
            "RUN <<F1 cat > f1 && <<\"F2\" cat > f2\nI am\nF1\n$x\nF2\nRUN 3<<'X' cat <&3\nq\nX\n")
    df = parse_dockerfile(text)
    run = df.instructions[1]
    assert [(h.name, h.content, h.expand, h.chomp) for h in run.heredocs] == [("EOF", "echo a\necho b\n", True, False)]
    assert (run.line, run.end_line) == (2, 5)
    cp = df.instructions[2]
    assert cp.args == ("<<-EOT", "/s.sh")
    assert cp.heredocs[0].content == "echo hi\n" and cp.heredocs[0].chomp
    two = df.instructions[3].heredocs
    assert [(h.name, h.expand) for h in two] == [("F1", True), ("F2", False)]
    assert two[1].content == "$x\n"
    fd = df.instructions[4].heredocs[0]
    assert fd.fd == 3 and not fd.expand


def test_onbuild_keeps_trigger_flags():
    df = parse_dockerfile("FROM x\nONBUILD COPY --from=build /a /b\n")
    trig = df.instructions[1].trigger
    assert trig is not None and trig.name == "COPY" and trig.flags == {"from": ["build"]}


def test_healthcheck_forms():
    df = parse_dockerfile('FROM x\nHEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://l/ || exit 1\nHEALTHCHECK NONE\n'
                          'HEALTHCHECK --retries=2 CMD ["a","b"]\n')
    hc = df.instructions[1]
    assert hc.args[0] == "CMD" and hc.flag("interval") == "5m"
    assert df.instructions[3].json and df.instructions[3].args == ("CMD", "a", "b")
    assert parse_duration_ns("1m30s") == 90 * 10**9
    assert parse_duration_ns("500ms") == 500 * 10**6


@pytest.mark.parametrize("text,msg", [
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
    ("\n  \n# only a comment\n", "the Dockerfile (Dockerfile) cannot be empty"),
    ("RUN echo\n", "Dockerfile:1: no build stage in current context"),
    ("ARG A\nRUN x\n", "Dockerfile:2: no build stage in current context"),
    ("FROM x\n\n# c\nRUNN foo\n", "Dockerfile:4: unknown instruction: RUNN"),
    ("FROM x\nRUN a\nFROM a b\n", "Dockerfile:3: FROM requires either one or three arguments"),
    ("FROM x AS\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM x FOR y\n", 'Dockerfile:1: When using three arguments, the second argument must be "AS"'),
    ("FROM x AS 1st\n", 'Dockerfile:1: invalid name for build stage: "1st", name can\'t start with a number or contain symbols'),
    ("FROM x\nRUN y\nENV a\n", "Dockerfile:3: ENV must have two arguments"),
    ("FROM x\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
    ("FROM x\nLABEL\n", "Dockerfile:2: LABEL requires at least one argument"),
    ("FROM x\nENV a=b \\\n   c\n", "Dockerfile:2: Syntax error - can't find = in \"c\". Must be of the form: name=value"),
    ("FROM x\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined."),
    ("FROM x\nADD a\n", "Dockerfile:2: ADD requires at least two arguments, but only one was provided. Destination could not be determined."),
    ("FROM x\nRUN --foo x\n", "Dockerfile:2: unknown flag: foo"),
    ("FROM x\nCOPY --mount=a b c\n", "Dockerfile:2: unknown flag: mount"),
    ("FROM x\nCOPY --from a b\n", "Dockerfile:2: missing a value on flag: from"),
    ("FROM x\nCOPY --link=maybe a b\n", "Dockerfile:2: expecting boolean value for flag link, not: maybe"),
    ("FROM x\nCOPY --from=a --from=b a b\n", "Dockerfile:2: duplicate flag specified: from"),
    ("FROM x\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
    ("FROM x\nEXPOSE 80/xyz\n", "Dockerfile:2: invalid proto: xyz"),
    ("FROM x\nEXPOSE abc\n", "Dockerfile:2: invalid containerPort: abc"),
    ("FROM x\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
    ("FROM x\nSHELL /bin/sh -c\n", "Dockerfile:2: SHELL requires the arguments to be in JSON form"),
    ("FROM x\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
    ("FROM x\nHEALTHCHECK --interval=5s NONE\n", "Dockerfile:2: options are not allowed with HEALTHCHECK NONE"),
    ("FROM x\nHEALTHCHECK FOO bar\n", 'Dockerfile:2: Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("FROM x\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD"),
    ("FROM x\nHEALTHCHECK --interval=xyz CMD a\n", "Dockerfile:2: time: invalid duration 'xyz'"),
    ("FROM x\nHEALTHCHECK --retries=-1 CMD a\n", "Dockerfile:2: --retries cannot be negative (-1)"),
    ("FROM x\nHEALTHCHECK --bogus=1 CMD a\n", "Dockerfile:2: unknown flag: bogus"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM x\nONBUILD FROM y\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM x\nRUN <<EOF\nok\nEOF\nCOPY <<EOF /x\nnever ends\n", "Dockerfile:5: unterminated heredoc"),
])
def test_errors_name_the_line(text, msg):
    assert err(text) == msg


def test_error_uses_given_filename():
    assert err("FROM x\nRUNN y\n", "build/Dockerfile.dev") == \
        "build/Dockerfile.dev:2: unknown instruction: RUNN"
    assert err("", "Containerfile") == "the Dockerfile (Containerfile) cannot be empty"


def test_instruction_case_insensitive_and_leading_whitespace():
    df = parse_dockerfile("   from x\n\t  run echo\n")
    assert [i.name for i in df.instructions] == ["FROM", "RUN"]


def test_bom_is_ignored():
    assert parse_dockerfile("\ufeffFROM x\n").instructions[0].args == ("x",)
