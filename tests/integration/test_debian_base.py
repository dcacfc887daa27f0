"""The Debian base image every real-distribution test stands on works as a user expects."""

from __future__ import annotations


def test_debian_image_runs_bash_and_knows_its_users(berth, debian_image) -> None:  # type: ignore[no-untyped-def]
    r = berth("run", "--rm", "--network", "none", "debian:bookworm", "bash", "-c",
              "echo $BASH_VERSION; id -un; getent group adm; . /etc/os-release; echo $VERSION_CODENAME")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0].startswith("5.")
    assert lines[1] == "root"
    assert lines[2].startswith("adm:x:4:")
    assert lines[-1] == "bookworm"
