"""Credential helpers (``credsStore``/``credHelpers``): passwords never land in config.json.

The helper here is a small program of our own that speaks Docker's helper protocol
(``get``/``store``/``erase`` on stdin/stdout) and keeps its secrets in a JSON file, so the
test sees exactly what berth handed over. The registry is docker-registry with htpasswd
auth on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from test_pull_push import Registry, auth_registry, docker_config  # noqa: F401 - fixtures

HELPER = r'''#!/usr/bin/python3
import json, os, sys
db = os.environ["BERTH_TEST_KEYCHAIN"]
try:
    secrets = json.load(open(db))
except FileNotFoundError:
    secrets = {}
action = sys.argv[1]
data = sys.stdin.read()
with open(db + ".log", "a") as log:
    log.write(action + "\n")
if action == "get":
    entry = secrets.get(data.strip())
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({"ServerURL": data.strip(), **entry}))
elif action == "store":
    doc = json.loads(data)
    secrets[doc["ServerURL"]] = {"Username": doc["Username"], "Secret": doc["Secret"]}
    json.dump(secrets, open(db, "w"))
elif action == "erase":
    if secrets.pop(data.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    json.dump(secrets, open(db, "w"))
'''


@pytest.fixture
def keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "helpers"
    bindir.mkdir()
    exe = bindir / "docker-credential-berthtest"
    exe.write_text(HELPER)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    db = tmp_path / "keychain.json"
    monkeypatch.setenv("BERTH_TEST_KEYCHAIN", str(db))
    return db


def _config(docker_config: Path, doc: dict) -> Path:  # noqa: F811
    docker_config.mkdir(parents=True, exist_ok=True)
    path = docker_config / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_login_with_creds_store_keeps_the_password_out_of_config(
        berth, busybox_image, auth_registry: Registry, docker_config: Path,  # noqa: F811
        keychain: Path) -> None:
    host = auth_registry.host
    cfg = _config(docker_config, {"credsStore": "berthtest", "psFormat": "{{.ID}}"})
    r = berth("login", "-u", "bob", "--password-stdin", host, input="hunter2\n")
    assert r.returncode == 0 and r.stdout.strip() == "Login Succeeded", r.stderr
    text = cfg.read_text()
    assert "hunter2" not in text and "aHVudGVyMg" not in text  # nor base64 of it
    doc = json.loads(text)
    assert doc["auths"] == {host: {}} and doc["psFormat"] == "{{.ID}}"
    assert json.loads(keychain.read_text()) == {host: {"Username": "bob", "Secret": "hunter2"}}

    ref = f"{host}/private/bb:1"
    berth("tag", "busybox", ref)
    r = berth("push", ref)
    assert r.returncode == 0, r.stderr
    assert "get" in Path(str(keychain) + ".log").read_text().split()
    berth("rmi", ref)
    assert berth("pull", ref).returncode == 0

    r = berth("logout", host)
    assert r.returncode == 0 and r.stdout.strip() == f"Removing login credentials for {host}"
    assert json.loads(keychain.read_text()) == {}
    assert host not in json.loads(cfg.read_text())["auths"]
    berth("rmi", ref)
    r = berth("pull", ref)
    assert r.returncode == 1 and "unauthorized" in r.stderr and r.stderr.count("\n") == 1


def test_cred_helpers_per_registry_win_over_creds_store(
        berth, busybox_image, auth_registry: Registry, docker_config: Path,  # noqa: F811
        keychain: Path) -> None:
    host = auth_registry.host
    keychain.write_text(json.dumps({host: {"Username": "bob", "Secret": "hunter2"}}))
    _config(docker_config, {"credsStore": "absent", "credHelpers": {host: "berthtest"}})
    ref = f"{host}/private/bb:2"
    berth("tag", "busybox", ref)
    r = berth("push", ref)
    assert r.returncode == 0, r.stderr


def test_missing_or_broken_helper_is_a_one_line_error(
        berth, busybox_image, auth_registry: Registry, docker_config: Path,  # noqa: F811
        keychain: Path) -> None:
    host = auth_registry.host
    _config(docker_config, {"credsStore": "nosuchhelper"})
    r = berth("login", "-u", "bob", "--password-stdin", host, input="hunter2\n")
    assert r.returncode == 1
    assert r.stderr == ("Error: credential helper docker-credential-nosuchhelper not found in "
                        "PATH (configured in config.json)\n")
    assert "hunter2" not in (docker_config / "config.json").read_text()

    (keychain.parent / "helpers" / "docker-credential-berthtest").write_text(
        "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    _config(docker_config, {"credsStore": "berthtest"})
    ref = f"{host}/private/bb:3"
    berth("tag", "busybox", ref)
    r = berth("push", ref)
    assert r.returncode == 1
    assert r.stderr == ("Error: error getting credentials from docker-credential-berthtest: "
                        "keychain locked\n")
