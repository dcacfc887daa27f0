"""Variable expansion: the reference's examples plus BuildKit's quoting and escape rules."""

from __future__ import annotations

import pytest

from berth.build.expand import (
    ExpansionError,
    expand,
    expand_heredoc,
    expand_words,
    referenced_names,
    split_kv,
)

ENV = {"FOO": "/bar", "str": "foobarbaz", "EMPTY": "", "PORTS": "80 443/udp", "A": "hello"}


@pytest.mark.parametrize("word,want", [
    ("$FOO", "/bar"),
    ("${FOO}", "/bar"),
    ("${FOO}_bar", "/bar_bar"),
    ("$FOO_bar", ""),                 # the name is FOO_bar, unset
    ("$UNSET", ""),
    ("\\$FOO", "$FOO"),
    ("\\${FOO}", "${FOO}"),
    ("'$FOO'", "$FOO"),
    ('"$FOO"', "/bar"),
    ('"\\$FOO"', "$FOO"),
    ('"a\\b"', "a\\b"),               # in double quotes only " $ \ can be escaped
    ("a\\ b", "a b"),
    ("Rex\\ The\\ Dog", "Rex The Dog"),
    ('"John Doe"', "John Doe"),
    ("$", "$"),
    ("a$", "a$"),
    ("${EMPTY:-word}", "word"),
    ("${UNSET:-word}", "word"),
    ("${FOO:-word}", "/bar"),
    ("${EMPTY-word}", ""),
    ("${UNSET-word}", "word"),
    ("${FOO:+word}", "word"),
    ("${EMPTY:+word}", ""),
    ("${EMPTY+word}", "word"),
    ("${UNSET+word}", ""),
    ("${UNSET:-$FOO/x}", "/bar/x"),
    ("${UNSET:-${A:+yes}}", "yes"),
    ("${str#f*b}", "arbaz"),
    ("${str##f*b}", "az"),
    ("${str%b*}", "foobar"),
    ("${str%%b*}", "foo"),
    ("${str/ba/fo}", "fooforbaz"),
    ("${str//ba/fo}", "fooforfoz"),
    ("${str/nomatch/x}", "foobarbaz"),
    ("${str#\\*}", "foobarbaz"),
])
def test_expand(word, want):
    assert expand(word, ENV) == want


def test_backtick_escape():
    assert expand("`$FOO", ENV, escape="`") == "$FOO"
    assert expand("c:\\dir", ENV, escape="`") == "c:\\dir"


def test_question_modifier_errors():
    with pytest.raises(ExpansionError, match="UNSET: must be set"):
        expand("${UNSET:?must be set}", ENV)
    assert expand("${FOO:?x}", ENV) == "/bar"


@pytest.mark.parametrize("bad", ["'open", '"open', "${FOO", "${}", "${FOO:x}", "${FOO^}"])
def test_malformed(bad):
    with pytest.raises(ExpansionError):
        expand(bad, ENV)


def test_same_value_throughout_instruction():
    # ENV abc=bye def=$abc → def sees the value before the instruction
    before = {"abc": "hello"}
    pairs = [(k, expand(v, before)) for k, v in split_kv("abc=bye def=$abc")]
    assert pairs == [("abc", "bye"), ("def", "hello")]


def test_expand_words_splits_variables_not_quotes():
    assert expand_words("$PORTS 8080", ENV) == ["80", "443/udp", "8080"]
    assert expand_words("'a b' \"c $A\" d\\ e", ENV) == ["a b", "c hello", "d e"]
    assert expand_words('""', ENV) == [""]
    assert expand_words("  ", ENV) == []


def test_split_kv_forms():
    assert split_kv('MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy') == [
        ("MY_NAME", '"John Doe"'), ("MY_DOG", "Rex\\ The\\ Dog"), ("MY_CAT", "fluffy")]
    assert split_kv("ONE TWO= THREE=world") == [("ONE", "TWO= THREE=world")]
    assert split_kv("k='a b'") == [("k", "'a b'")]


def test_heredoc_expansion_is_posix():
    body = 'echo "hello ${FOO}" \'$A\' \\$keep\n'
    assert expand_heredoc(body, ENV) == "echo \"hello /bar\" 'hello' $keep\n"


def test_referenced_names():
    assert referenced_names("${A:-x} $B_c \\$D ${E#p}") >= {"A", "B_c", "E"}
