"""Commands racing each other give the true error and leave nothing half-made.

Two kinds of test:

* **Pinned interleavings** (fast, deterministic): one step of a command is wrapped so that
  a second :class:`Engine` (its own connection, as another process would have) does the
  racing command exactly between the first one's read and its write: ``run`` after ``rmi``
  removed its image, ``tag`` after ``rmi``, ``image prune -a`` after ``run`` created a
  container on an image it thought unused.
* **Real races** through the CLI (slow): ten ``run -d -p PORT:80`` on one host port, and
  ``run``/``tag`` racing ``rmi`` in parallel processes; every error must be one of the true
  ones, never a foreign-key failure or a name conflict with container "".
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from berth.container.create_options import CreateOptions
from berth.engine import Engine
from berth.errors import NotFound

# A registry host nothing listens on: a run that misses its image tries a pull that fails at
# once on 127.0.0.1 instead of reaching out to Docker Hub.
REPO = "127.0.0.1:9/race"
FALSE_ERRORS = ("FOREIGN KEY", "IntegrityError", 'container ""', "unique container name",
                "internal error", "Traceback")


@pytest.fixture
def other(berth_env):  # type: ignore[no-untyped-def]
    """A second engine on the same store: the racing process."""
    eng = Engine(root=berth_env["root"], runroot=berth_env["runroot"])
    yield eng
    eng.close()


def _import(engine: Engine, busybox_tar: Path, ref: str, label: str = "") -> str:
    with open(busybox_tar, "rb") as f:
        changes = [f"LABEL race={label or ref}"]
        return engine.import_image(f, ref, changes=changes)


def _opts(image: str, name: str | None = None) -> CreateOptions:
    return CreateOptions(image=image, command=["true"], name=name, network="none")


@pytest.mark.parametrize("name", [None, "named"])
def test_run_after_rmi_took_its_image_is_no_such_image(engine, other, busybox_tar,
                                                       monkeypatch, name) -> None:  # type: ignore[no-untyped-def]
    """``run`` resolved the image, then ``rmi`` deleted it before the container row."""
    ref = f"{REPO}:run"
    _import(engine, busybox_tar, ref)
    svc = engine.image_service
    real_config = svc.config

    def config_then_rmi(image_id: str):  # type: ignore[no-untyped-def]
        cfg = real_config(image_id)
        _, errors = other.rmi([ref])
        assert not errors
        return cfg

    monkeypatch.setattr(svc, "config", config_then_rmi)
    with pytest.raises(NotFound, match=f"^No such image: {REPO}:run$"):
        engine.container_create(_opts(ref, name))
    assert engine.containers(all=True) == []
    cdir = Path(engine.root, "containers")
    assert not cdir.exists() or not any(cdir.iterdir())


def test_run_after_rmi_collected_the_config_is_no_such_image(engine, other, busybox_tar,
                                                             monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``rmi`` (and its garbage collection) ran between resolving and reading the config."""
    ref = f"{REPO}:gone"
    _import(engine, busybox_tar, ref)
    real_resolve = engine.image_service.resolve

    def resolve_then_rmi(name: str) -> str:
        image_id = real_resolve(name)
        other.rmi([ref])
        return image_id

    monkeypatch.setattr(engine.image_service, "resolve", resolve_then_rmi)
    with pytest.raises(NotFound, match=f"^No such image: {REPO}:gone$"):
        engine.container_create(_opts(ref))
    assert engine.containers(all=True) == []


def test_tag_after_rmi_is_no_such_image(engine, other, busybox_tar, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ref = f"{REPO}:tag"
    _import(engine, busybox_tar, ref)
    real_resolve = engine.image_service.resolve

    def resolve_then_rmi(name: str) -> str:
        image_id = real_resolve(name)
        other.rmi([ref])
        return image_id

    monkeypatch.setattr(engine.image_service, "resolve", resolve_then_rmi)
    with pytest.raises(NotFound, match=f"^No such image: {REPO}:tag$"):
        engine.tag(ref, f"{REPO}:new")
    assert other.images(all=True) == []


def test_prune_all_keeps_the_image_a_racing_run_took(engine, other, busybox_tar,
                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``image prune -a`` listed the image as unused; ``create`` then used it."""
    ref = f"{REPO}:prune"
    image_id = _import(engine, busybox_tar, ref)
    svc = engine.image_service
    real_parents = svc.parent_ids
    made = []

    def parents_then_create() -> set[str]:
        made.append(other.container_create(_opts(ref)).id)
        return real_parents()

    monkeypatch.setattr(svc, "parent_ids", parents_then_create)
    result = engine.image_prune(all=True)
    assert image_id not in result.deleted
    assert engine.image(ref).id == image_id
    assert [c.id for c in engine.containers(all=True)] == made


# -- real races through the CLI -----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "berth", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_parallel_runs_on_one_host_port_leave_one_container(busybox_image, berth) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    procs = [_spawn("run", "-d", "-p", f"{port}:80", "busybox", "sleep", "60")
             for _ in range(10)]
    outs = [(p.wait(120), *p.communicate()) for p in procs]
    won = [o for o in outs if o[0] == 0]
    lost = [o for o in outs if o[0] != 0]
    assert len(won) == 1, outs
    for code, _out, err in lost:
        assert code == 125 and err.strip().endswith("port is already allocated"), (code, err)
    ids = berth("ps", "-aq", "--no-trunc").stdout.split()
    assert ids == [won[0][1].strip()], "a losing run left its container behind"


@pytest.mark.slow
def test_run_and_tag_racing_rmi_give_true_errors(engine, busybox_tar, berth) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    for i in range(6):
        ref = f"{REPO}:r{i}"
        _import(engine, busybox_tar, ref)
        procs = [_spawn("run", "--rm", "--network", "none", ref, "true"),
                 _spawn("tag", ref, f"{REPO}:t{i}"),
                 _spawn("rmi", "-f", ref)]
        for p in procs:
            p.wait(120)
            seen += p.communicate()[1].splitlines()
        _import(engine, busybox_tar, f"{REPO}:p{i}")
        racers = [_spawn("image", "prune", "-af"),
                  _spawn("create", "--network", "none", f"{REPO}:p{i}", "true")]
        for p in racers:
            p.wait(120)
            seen += p.communicate()[1].splitlines()
    for line in seen:
        assert not any(bad in line for bad in FALSE_ERRORS), seen
        assert line.startswith(("Unable to find image", "Error: No such image",
                                'Error: Get "http://127.0.0.1:9/', "Error: conflict:")), line
    r = berth("system", "check")
    assert r.returncode == 0 and "0 damaged" in r.stdout, r.stdout + r.stderr
