"""Dockerfile text the Go parser cannot take never reaches it (issue 9, medium).

Invalid UTF-8 made the CLI die with SIGSEGV inside the Go parser (exit 134 and an 84-line
Go trace); a NUL byte silently cut the line short. Each case runs in a subprocess, since
without the guard it kills the interpreter it runs in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    (b"FROM scratch\nRUN echo \xff\xfe\n", 2, "invalid UTF-8 (byte 0xff) at column 10"),
    (b"FROM scratch\n# ok\nLABEL a=\xc3\n", 3, "invalid UTF-8 (byte 0xc3)"),
    (b"FROM scratch\nRUN echo \xed\xa0\x80\n", 2, "invalid UTF-8 (byte 0xed)"),
    (b"FROM scratch\nRUN echo a\x00b\n", 2, "a NUL byte at column 11"),
    (b"\xef\xbb\xbfFROM scratch\nCOPY <<EOF /x\n\xfe\nEOF\n", 3, "invalid UTF-8 (byte 0xfe)"),
    (b"FROM scratch\nRUN echo " + b"a" * 70000 + b"\n", 2, "greater than max allowed size"),
]


@pytest.mark.parametrize(("text", "line", "what"), CASES)
def test_cli_one_line_error_exit_1(berth, tmp_path: Path, text: bytes, line: int,  # type: ignore[no-untyped-def]
                                   what: str) -> None:
    (tmp_path / "Dockerfile").write_bytes(text)
    r = berth("build", "-q", str(tmp_path))
    assert r.returncode == 1, (r.returncode, r.stderr[:300])
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"Error: Dockerfile:{line}: ")
    assert what in r.stderr
    r = berth("build", "-q", "-", input=text)  # the Dockerfile on stdin takes the same path
    assert r.returncode == 1 and f"Dockerfile:{line}: ".encode() in r.stderr


def test_lone_surrogate_from_a_base_image() -> None:
    """ONBUILD triggers come from image JSON, where ``"\\ud800"`` is a lone surrogate."""
    code = ("from berth.build.parser import parse_dockerfile\n"
            "from berth.errors import DockerfileError\n"
            "try:\n    parse_dockerfile('FROM scratch\\nRUN echo \\ud800\\n')\n"
            "except DockerfileError as e:\n    print(e.message)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-300:]
    assert r.stdout.strip() == ("Dockerfile:2: invalid UTF-8 (lone surrogate U+D800) at "
                                "column 10: a Dockerfile must be UTF-8 text")


def test_valid_text_still_parses() -> None:
    from berth.build.parser import parse_dockerfile

    df = parse_dockerfile("\ufeffFROM scratch\nLABEL x=\"h\u00e9llo \U0001f600\"\n")
    assert df.instructions[1].original.endswith("\U0001f600\"")
