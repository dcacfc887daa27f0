"""``POST /containers/create`` JSON as CreateOptions: Docker's fields, its types, no leaks."""

from __future__ import annotations

import pytest

from berth.api.create import options_from_json
from berth.errors import InvalidArgument


def test_bare_env_names_never_take_the_services_environment(monkeypatch):
    monkeypatch.setenv("SERVICE_SECRET", "hunter2")
    opts, _ = options_from_json({"Image": "busybox", "Env": ["SERVICE_SECRET", "A=1"]}, None)
    assert opts.env == ["A=1"]


def test_host_config_fields():
    body = {
        "Image": "busybox", "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
        "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}, "Tty": True,
        "Volumes": {"/anon": {}, "/data": {}},
        "HostConfig": {
            "Binds": ["vol:/data:ro"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                     "HostPort": "8080"}]},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "Mounts": [{"Type": "tmpfs", "Target": "/scratch",
                        "TmpfsOptions": {"SizeBytes": 1024}}],
            "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "Memory": 1 << 26,
            "NanoCpus": 500_000_000, "PidsLimit": 50, "Init": True, "ReadonlyRootfs": True,
            "ExtraHosts": ["h:1.2.3.4"], "Dns": ["1.1.1.1"], "Tmpfs": {"/run": "size=1m"},
            "NetworkMode": "appnet"},
        "NetworkingConfig": {"EndpointsConfig": {
            "appnet": {"Aliases": ["web"]}, "other": {"Aliases": ["w2"]}}},
    }
    opts, extra = options_from_json(body, "n1")
    assert opts.name == "n1" and opts.entrypoint == "/bin/sh"
    assert opts.command == ["-c", "echo hi"]
    assert opts.volumes == ["vol:/data:ro", "/anon"]  # /data is covered by the bind
    assert opts.publish == ["127.0.0.1:8080:80/tcp"] and opts.expose == ["80/tcp"]
    assert opts.restart == "on-failure:3"
    assert opts.mounts == ["type=tmpfs,target=/scratch,tmpfs-size=1024"]
    assert (opts.memory, opts.cpus, opts.pids_limit) == (1 << 26, 0.5, 50)
    assert opts.init and opts.read_only and opts.tty
    assert opts.tmpfs == ["/run:size=1m"] and opts.add_hosts == ["h:1.2.3.4"]
    assert opts.network == "appnet" and opts.network_aliases == ["web"]
    assert extra == [("other", {"Aliases": ["w2"]})]


@pytest.mark.parametrize("body", [
    {},                                              # no image
    {"Image": 5},                                    # wrong type
    {"Image": "busybox", "Tty": "yes"},
    {"Image": "busybox", "Cmd": [1, 2]},
    {"Image": "busybox", "HostConfig": {"Memory": "lots"}},
    {"Image": "busybox", "HostConfig": {"Devices": "/dev/kvm"}},  # not a list
    {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind"}]}},
])
def test_wrong_types_are_invalid_arguments(body):
    with pytest.raises(InvalidArgument):
        options_from_json(body, None)


def test_healthcheck_forms():
    opts, _ = options_from_json({"Image": "b", "Healthcheck": {
        "Test": ["CMD", "wget", "-q", "http://x/a b"], "Interval": 2_000_000_000,
        "Retries": 3}}, None)
    assert opts.health_cmd == "wget -q 'http://x/a b'"
    assert (opts.health_interval, opts.health_retries) == ("2000000000ns", 3)
    opts, _ = options_from_json({"Image": "b", "Healthcheck": {"Test": ["NONE"]}}, None)
    assert opts.no_healthcheck
    with pytest.raises(InvalidArgument):
        options_from_json({"Image": "b", "Healthcheck": {"Test": ["BOGUS"]}}, None)
