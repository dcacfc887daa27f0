"""The service's guard rails: socket mode, browser Origin, versions, errors, concurrency,
and that stopping it leaves containers alone."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from tests.api.conftest import wait_listening


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


def call(sock: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    c = _Unix(sock)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_socket_is_0660_root(service):
    st = os.stat(service["sock"])
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0


def test_ping_headers_and_versions(service):
    for method in ("GET", "HEAD"):
        status, hdr, body = call(service["sock"], method, "/_ping")
        assert status == 200
        assert hdr["API-Version"] == "1.41" and hdr["Ostype"] == "linux"
        assert hdr["Builder-Version"] == "1" and hdr["Docker-Experimental"] == "false"
        assert body == (b"OK" if method == "GET" else b"")
    status, _, body = call(service["sock"], "GET", "/v1.24/version")
    assert status == 200 and json.loads(body)["MinAPIVersion"] == "1.24"
    status, _, body = call(service["sock"], "GET", "/v1.99/version")
    assert status == 400 and b"too new" in body


def test_browser_origin_is_refused(service):
    status, _, body = call(service["sock"], "GET", "/containers/json",
                           headers={"Origin": "http://evil.example"})
    assert status == 403 and "message" in json.loads(body)


def test_errors_are_json_messages_never_tracebacks(service):
    sock = service["sock"]
    status, _, body = call(sock, "POST", "/containers/create", b"{not json",
                           {"Content-Type": "application/json"})
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = call(sock, "POST", "/containers/create",
                           json.dumps({"Image": "busybox", "Tty": "yes"}).encode())
    assert status == 400 and b"Traceback" not in body
    status, _, body = call(sock, "GET", "/containers/nope/json")
    assert status == 404 and json.loads(body)["message"] == "No such container: nope"
    status, _, body = call(sock, "GET", "/images/nope:1/json")
    assert status == 404
    status, _, body = call(sock, "POST", "/swarm/init", b"{}")
    assert status == 503 and b"not a swarm manager" in body
    status, _, body = call(sock, "GET", "/containers/json?filters=%7Bbad")
    assert status == 400


def test_tcp_is_loopback_only_without_tls(berth):
    p = berth("system", "service", "-H", "tcp://0.0.0.0:23750", "--timeout", "1")
    assert p.returncode != 0 and "without TLS" in p.stderr
    assert "Traceback" not in p.stderr


def test_idle_timeout_exits(berth_env):
    sock = os.path.join(berth_env["runroot"], "idle.sock")
    p = subprocess.run([sys.executable, "-m", "berth", "system", "service", "-H",
                        f"unix://{sock}", "--timeout", "1"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and not os.path.exists(sock)


def test_stopping_the_service_leaves_containers_running(service, docker, berth):
    docker("run", "-d", "--name", "keeps", "busybox", "sleep", "60")
    service["proc"].send_signal(signal.SIGTERM)
    service["proc"].wait(timeout=15)
    out = berth("ps", "--format", "{{.Names}} {{.State}}").stdout
    assert "keeps running" in out
    # a new service picks everything up
    again = subprocess.Popen([sys.executable, "-m", "berth", "system", "service", "-H",
                              service["host"], "--timeout", "0"], stderr=subprocess.DEVNULL)
    try:
        wait_listening(service["sock"], again)
        assert docker("exec", "keeps", "echo", "still").stdout == "still\n"
        assert docker("ps", "--format", "{{.Names}}").stdout == "keeps\n"
    finally:
        again.terminate()
        again.wait(timeout=15)
    berth("rm", "-f", "keeps", check=True)


def test_hundred_concurrent_clients_while_a_stream_is_open(service, docker):
    docker("run", "-d", "--name", "streamer", "busybox", "sleep", "60")
    # a long stream that never ends by itself
    follow = _Unix(service["sock"])
    follow.request("GET", "/containers/streamer/logs?follow=1&stdout=1")
    follow.getresponse()
    events = _Unix(service["sock"])
    events.request("GET", "/events")
    events.getresponse()
    results: list[int] = []

    def one() -> None:
        results.append(call(service["sock"], "GET", "/containers/json")[0])

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 100
    follow.close()
    events.close()
    docker("rm", "-f", "streamer")


def test_attach_detach_keys_end_the_session_not_the_container(service, docker):
    """Clients that send the detach keys raw (docker-py, scripts) rely on the service."""
    docker("run", "-d", "-it", "--name", "tty1", "busybox", "sh")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(service["sock"])
    s.sendall(b"POST /v1.41/containers/tty1/attach?stream=1&stdin=1&stdout=1&stderr=1 "
              b"HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101")
    s.sendall(b"echo x$((40+2))\n")
    got = head.split(b"\r\n\r\n", 1)[1]
    while b"x42" not in got:
        got += s.recv(4096)
    s.sendall(b"\x10\x11")
    rest = b""
    while True:  # the service ends the session: EOF
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    s.close()
    assert docker("inspect", "-f", "{{.State.Running}}", "tty1").stdout.strip() == "true"
    docker("rm", "-f", "tty1")


def test_wait_for_an_auto_removed_container_that_is_already_gone(service):
    """``run --rm``: the attach starts it; a late ``wait`` still gets its exit code."""
    sock = service["sock"]
    status, _, body = call(sock, "POST", "/v1.41/containers/create", json.dumps({
        "Image": "busybox", "Cmd": ["sh", "-c", "exit 6"], "AttachStdout": True,
        "HostConfig": {"AutoRemove": True}}).encode(), {"Content-Type": "application/json"})
    assert status == 201
    cid = json.loads(body)["Id"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    s.sendall(f"POST /v1.41/containers/{cid}/attach?stream=1&stdout=1 HTTP/1.1\r\n"
              "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    while s.recv(4096):
        pass
    s.close()
    deadline = time.monotonic() + 30
    while call(sock, "GET", f"/v1.41/containers/{cid}/json")[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, _, body = call(sock, "POST", f"/v1.41/containers/{cid}/wait?condition=removed")
    assert status == 200 and json.loads(body)["StatusCode"] == 6
    assert call(sock, "POST", f"/v1.41/containers/{cid}/wait")[0] == 404


def test_parallel_docker_runs_share_one_engine(service, docker):
    """Ten clients at once through one service: threads share the Engine safely."""
    env = docker.env()
    procs = [subprocess.Popen(["/usr/bin/docker", "run", "--rm", "--network", "bridge",
                               "busybox", "echo", f"n{i}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(10)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, [e for _, e in outs]
    assert sorted(o.strip() for o, _ in outs) == sorted(f"n{i}" for i in range(10))
    assert docker("ps", "-aq").stdout == ""
