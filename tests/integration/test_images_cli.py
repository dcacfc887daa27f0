"""The image commands as a Docker user types them: output columns, exit codes, errors."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def imported(berth, busybox_tar):  # type: ignore[no-untyped-def]
    r = berth("import", "-c", 'CMD ["sh"]', "-c", "LABEL team=core", "-m", "first",
              str(busybox_tar), "busybox:latest")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    return image_id


def test_import_images_columns(berth, imported):  # type: ignore[no-untyped-def]
    r = berth("images")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    # columns align under their headers, as Go's tabwriter does
    assert row.index(imported[7:19]) == header.index("IMAGE ID")
    assert row.startswith("busybox ") and " latest " in row
    assert berth("images", "-q").stdout.strip() == imported[7:19]
    assert berth("images", "-q", "--no-trunc").stdout.strip() == imported


def test_format_and_json(berth, imported):  # type: ignore[no-untyped-def]
    r = berth("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert r.stdout.strip() == f"busybox:latest {imported[7:19]}"
    r = berth("images", "--format", "json")
    obj = json.loads(r.stdout.splitlines()[0])
    assert obj["Repository"] == "busybox" and obj["Tag"] == "latest"
    r = berth("images", "--format", "table {{.Repository}}\t{{.Tag}}")
    assert r.stdout.splitlines()[0].split() == ["REPOSITORY", "TAG"]


def test_inspect_and_change(berth, imported):  # type: ignore[no-untyped-def]
    r = berth("inspect", "busybox")
    assert r.returncode == 0, r.stderr
    [obj] = json.loads(r.stdout)
    assert obj["Id"] == imported
    assert obj["RepoTags"] == ["busybox:latest"]
    assert obj["Config"]["Cmd"] == ["sh"]
    assert obj["Config"]["Labels"] == {"team": "core"}
    assert obj["Comment"] == "first"
    assert len(obj["RootFS"]["Layers"]) == 1
    r = berth("image", "inspect", "--format", "{{.Config.Cmd}} {{index .Config.Labels \"team\"}}",
              imported[7:14])
    assert r.stdout.strip() == "[sh] core"


def test_tag_untag_dangling_prune(berth, imported, busybox_tar):  # type: ignore[no-untyped-def]
    assert berth("tag", "busybox", "localhost:5000/team/bb:v1").returncode == 0
    out = berth("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(out) == ["busybox:latest", "localhost:5000/team/bb:v1"]
    # removing one of two tags only untags
    assert berth("rmi", "localhost:5000/team/bb:v1").stdout.strip() == \
        "Untagged: localhost:5000/team/bb:v1"
    # re-importing with a different config under the same tag leaves the old one dangling
    r = berth("import", "-c", 'CMD ["echo","new"]', str(busybox_tar), "busybox:latest")
    new_id = r.stdout.strip()
    assert new_id != imported
    dangling = berth("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()
    assert dangling == [imported]
    r = berth("images", "--filter", "dangling=true")
    assert "<none>" in r.stdout.splitlines()[1]
    r = berth("image", "prune", "-f")
    assert r.returncode == 0
    assert f"deleted: {imported}" in r.stdout
    assert "Total reclaimed space:" in r.stdout
    assert berth("images", "-q", "-f", "dangling=true").stdout.strip() == ""
    assert berth("images", "-q", "--no-trunc").stdout.split() == [new_id]


def test_rmi_semantics(berth, imported):  # type: ignore[no-untyped-def]
    berth("tag", "busybox", "other/name:1")
    r = berth("rmi", imported[7:19])
    assert r.returncode == 1
    assert "referenced in multiple repositories" in r.stderr
    r = berth("rmi", "-f", imported[7:19])
    assert r.returncode == 0, r.stderr
    assert "Untagged: busybox:latest" in r.stdout and f"Deleted: {imported}" in r.stdout
    assert berth("images", "-q").stdout.strip() == ""
    r = berth("rmi", "nope")
    assert r.returncode == 1 and r.stderr.strip() == "Error: No such image: nope"


def test_short_id_everywhere(berth, imported):  # type: ignore[no-untyped-def]
    assert berth("tag", imported[7:11], "again:x").returncode == 0
    assert berth("history", "again:x").returncode == 0


@pytest.mark.parametrize("ref", ["Busybox", "bad//name", "a:" + "t" * 129, "-x", "UPPER:tag"])
def test_invalid_reference(berth, imported, ref):  # type: ignore[no-untyped-def]
    r = berth("tag", "busybox", ref)
    if ref.startswith("-"):  # a flag, not a reference: a usage error
        assert r.returncode == 125 and r.stderr.startswith("Error: "), r.stderr
    else:
        assert r.returncode == 1
        assert r.stderr.startswith("Error: invalid reference format"), r.stderr
        assert "Traceback" not in r.stderr


def test_bad_flag_and_command(berth):  # type: ignore[no-untyped-def]
    r = berth("images", "--bogus")
    assert r.returncode == 125 and "unknown flag: --bogus" in r.stderr
    r = berth("frobnicate")
    assert r.returncode == 125 and "unknown command" in r.stderr
    r = berth("images", "--filter", "color=red")
    assert r.returncode == 1 and r.stderr.strip() == "Error: invalid filter 'color'"


def test_history(berth, imported):  # type: ignore[no-untyped-def]
    r = berth("history", "busybox")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["IMAGE", "CREATED"]
    assert lines[1].startswith(imported[7:19])
    assert "berth import" in lines[1] and "first" in lines[1]


def test_save_load_roundtrip(berth, imported, berth_env):  # type: ignore[no-untyped-def]
    out = berth_env["tmp"] / "bb.tar"
    r = berth("save", "-o", str(out), "busybox")
    assert r.returncode == 0, r.stderr
    assert berth("rmi", "busybox").returncode == 0
    assert berth("images", "-q").stdout.strip() == ""
    r = berth("load", "-i", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Loaded image: busybox:latest"
    assert berth("images", "-q", "--no-trunc").stdout.strip() == imported
    # stdin forms
    oci = berth_env["tmp"] / "bb-oci.tar"
    assert berth("save", "--format", "oci-archive", "-o", str(oci), "busybox").returncode == 0
    berth("rmi", "busybox")
    r = berth("load", input=oci.read_bytes())
    assert r.returncode == 0, r.stderr
    assert berth("images", "-q", "--no-trunc").stdout.strip() == imported


def test_load_garbage_is_clean_error(berth, berth_env):  # type: ignore[no-untyped-def]
    bad = berth_env["tmp"] / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 100)
    r = berth("load", "-i", str(bad))
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = berth("system", "check")
    assert r.returncode == 0, r.stdout


def test_save_refuses_unknown(berth, tmp_path):  # type: ignore[no-untyped-def]
    r = berth("save", "-o", str(tmp_path / "never-written.tar"), "nope")
    assert r.returncode == 1 and "No such image: nope" in r.stderr
    assert not (tmp_path / "never-written.tar").exists()


def _on_a_terminal(*args: str, stdin: bool = False) -> tuple[int, str, bytes]:
    """Run berth with stdout (or stdin) on a real pty: exit code, stderr, what the
    terminal received."""
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "berth", *args],
                           stdin=slave if stdin else subprocess.DEVNULL,
                           stdout=subprocess.PIPE if stdin else slave,
                           stderr=subprocess.PIPE, timeout=20, check=False)
        os.set_blocking(master, False)
        try:
            seen = os.read(master, 1 << 16)
        except BlockingIOError:
            seen = b""
    finally:
        os.close(master)
        os.close(slave)
    return p.returncode, p.stderr.decode(), seen


def test_save_refuses_terminal(berth, imported):  # type: ignore[no-untyped-def]
    code, err, seen = _on_a_terminal("save", "busybox")
    assert (code, err) == (1, "Error: cowardly refusing to save to a terminal. "
                              "Use the -o flag or redirect\n")
    assert seen == b""  # not one byte of the archive reached the terminal


def test_load_refuses_terminal(berth):  # type: ignore[no-untyped-def]
    code, err, _ = _on_a_terminal("load", stdin=True)
    assert (code, err) == (1, "Error: requested load from stdin, but stdin is empty\n")


def test_system_df_and_info(berth, imported):  # type: ignore[no-untyped-def]
    r = berth("system", "df")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert lines[1].split()[:3] == ["Images", "1", "0"]
    r = berth("info")
    assert "Images: 1" in r.stdout
    assert berth("version").returncode == 0


def test_reference_checked_before_anything_else(berth):  # type: ignore[no-untyped-def]
    r = berth("run", "--rm", "Bad:Ref", "true")
    assert r.returncode == 125
    assert r.stderr == ("Error: invalid reference format: repository name (library/Bad) "
                        "must be lowercase\n")
    r = berth("tag", "nosuch", "Bad")
    assert r.returncode == 1 and r.stderr.startswith("Error: invalid reference format")


def test_prune_filters_and_prompts(berth, busybox_tar):  # type: ignore[no-untyped-def]
    for ref, keep in (("keep:1", "yes"), ("drop:1", "no")):
        assert berth("import", "-c", f"LABEL keep={keep}", str(busybox_tar), ref).returncode == 0
    r = berth("image", "prune", "-a", "-f", "--filter", "label!=keep=yes")
    assert r.returncode == 0 and "untagged: drop:1" in r.stdout
    assert berth("images", "--format", "{{.Repository}}").stdout.split() == ["keep"]
    for cmd in (["system", "prune", "-f", "--filter", "color=red"],
                ["builder", "prune", "-f", "--filter", "until=1h"]):
        r = berth(*cmd)
        assert r.returncode == 1 and r.stderr.startswith("Error: invalid filter"), r.stderr
    r = berth("builder", "prune", input="n\n")  # the prompt, answered no
    assert r.returncode == 0 and "Are you sure you want to continue?" in r.stdout
    r = berth("system", "prune", input="n\n")
    assert r.returncode == 0 and "Are you sure you want to continue?" in r.stdout
    assert berth("images", "-q").stdout.strip() != ""
