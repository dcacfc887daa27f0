"""The API service under test: ``berth system service`` on a private socket per test,
driven by real clients (the docker CLI 20.10 from Debian's docker.io, docker-py, Compose)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

DOCKER = "/usr/bin/docker"  # Debian's docker.io 20.10 (its dockerd is never started here)


def wait_listening(sock: str, proc: subprocess.Popen, timeout: float = 20) -> None:  # type: ignore[type-arg]
    """Until the service accepts connections (the socket file appears just before)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("service did not start")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(sock)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()


@pytest.fixture
def service(berth_env, busybox_image):  # type: ignore[no-untyped-def]
    """A running service; yields ``{"sock", "host", "proc", "stderr"}`` and stops it after."""
    sock = os.path.join(berth_env["runroot"], "docker.sock")
    err_path = os.path.join(berth_env["tmp"], "service.err")
    err = open(err_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "berth", "system", "service",
                             "-H", f"unix://{sock}", "--timeout", "0"],
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_listening(sock, proc)
    except RuntimeError:
        err.close()
        raise RuntimeError("service did not start: " + open(err_path).read()) from None
    info = {"sock": sock, "host": f"unix://{sock}", "proc": proc, "stderr": err_path}
    yield info
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err.close()


@pytest.fixture
def docker(service, tmp_path):  # type: ignore[no-untyped-def]
    """Run the real docker CLI against the service: ``docker("ps")`` → CompletedProcess."""
    if not os.path.exists(DOCKER):
        pytest.fail("docker CLI missing: run ./scripts/apt-ensure docker.io")
    cfg = tmp_path / "docker-config"
    cfg.mkdir(exist_ok=True)

    def run(*args: str, input: str | bytes | None = None, timeout: float = 120,
            check: bool = True):  # type: ignore[no-untyped-def]
        env = dict(os.environ, DOCKER_HOST=service["host"], DOCKER_CONFIG=str(cfg),
                   DOCKER_BUILDKIT="0")
        p = subprocess.run([DOCKER, *args], input=input, capture_output=True,
                           text=not isinstance(input, bytes), timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    run.env = lambda: dict(os.environ, DOCKER_HOST=service["host"],  # type: ignore[attr-defined]
                           DOCKER_CONFIG=str(cfg), DOCKER_BUILDKIT="0")
    return run
