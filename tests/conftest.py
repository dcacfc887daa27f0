"""Fixtures every berth test shares.

* each test gets its own ``BERTH_ROOT``/``BERTH_RUNROOT`` under its tmp dir;
* at teardown the test's containers are removed, then the test *fails* if any mount,
  process, network namespace or veth it made is still there (after cleaning it up, so
  one leak does not cascade into the next test);
* test images come from ``busybox-static`` (``/bin/busybox``), built once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

BUSYBOX = "/bin/busybox"
REPO = Path(__file__).resolve().parent.parent


def _mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
                out.append(target)
    return out


def _procs_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd.strip()))
    return found


def _netns_and_veths() -> set[str]:
    names = set()
    if os.path.isdir("/run/netns"):
        names |= {f"netns:{n}" for n in os.listdir("/run/netns")}
    try:
        names |= {f"link:{n}" for n in os.listdir("/sys/class/net")}
    except OSError:
        pass
    return names


def busybox_rootfs_tar(path: Path) -> Path:
    """A minimal rootfs: busybox-static with its applets, passwd/group, /tmp, /root."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from make_busybox_rootfs import build
    finally:
        sys.path.pop(0)
    build(str(path))
    return path


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    return busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "rootfs.tar")


@pytest.fixture
def berth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh root/runroot pair, exported for subprocesses; leak-checked at teardown."""
    root, runroot = tmp_path / "root", tmp_path / "run"
    monkeypatch.setenv("BERTH_ROOT", str(root))
    monkeypatch.setenv("BERTH_RUNROOT", str(runroot))
    before_net = _netns_and_veths()
    yield {"root": str(root), "runroot": str(runroot), "tmp": tmp_path}
    _teardown(tmp_path, root, runroot, before_net)


def _teardown(tmp_path: Path, root: Path, runroot: Path, before_net: set[str]) -> None:
    bridges: list[str] = []
    if root.exists():
        try:
            from berth.engine import Engine

            with Engine(root=str(root), runroot=str(runroot)) as eng:
                cleanup = getattr(eng, "remove_all_containers", None)
                if cleanup is not None:
                    cleanup()
                bridges = _store_bridges(eng)
        except Exception as e:  # noqa: BLE001 - report below, do not mask the test result
            print(f"teardown cleanup failed: {e}", file=sys.stderr)
    leaks = []
    # conmon exit commands of this store (``berth container cleanup``) may still be running:
    # let them finish before the networks go, or one could bring a bridge back
    for _ in range(20):
        procs = _procs_mentioning(str(tmp_path))
        if not procs:
            break
        time.sleep(0.1)
    for pid, cmd in procs:
        leaks.append(f"process {pid}: {cmd[:200]}")
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    if root.exists():
        try:
            from berth.engine import Engine

            with Engine(root=str(root), runroot=str(runroot)) as eng:
                networks = getattr(eng, "remove_all_networks", None)
                if networks is not None:  # bridges and nft rules are host-global
                    networks()
        except Exception as e:  # noqa: BLE001
            print(f"teardown network cleanup failed: {e}", file=sys.stderr)
    for br in bridges:
        if os.path.exists(f"/sys/class/net/{br}"):
            warnings.warn(f"bridge {br} was still there after its networks were removed")
            subprocess.run(["ip", "link", "del", br], check=False)
    for m in sorted(_mounts_under(str(tmp_path)), key=len, reverse=True):
        leaks.append(f"mount {m}")
        subprocess.run(["umount", "-l", m], check=False)
    new_net = _netns_and_veths() - before_net
    # Only count namespaces/links that name this test's containers (other tests run in parallel).
    if new_net and os.environ.get("BERTH_STRICT_NET"):
        leaks += sorted(new_net)
    if leaks:
        pytest.fail("test left behind:\n  " + "\n  ".join(leaks), pytrace=False)


def _store_bridges(eng) -> list[str]:  # type: ignore[no-untyped-def]
    """Linux bridges this store's networks use (to check they are gone afterwards)."""
    import json

    try:
        rows = eng.store.db.query("SELECT options FROM networks")
    except Exception:  # noqa: BLE001 - no networks table: nothing to check
        return []
    return [b for r in rows if (b := json.loads(r["options"] or "{}").get("bridge"))]


@pytest.fixture
def engine(berth_env):  # type: ignore[no-untyped-def]
    from berth.engine import Engine

    eng = Engine(root=berth_env["root"], runroot=berth_env["runroot"])
    yield eng
    eng.close()


@pytest.fixture
def berth(berth_env):  # type: ignore[no-untyped-def]
    """Run the CLI in a subprocess: ``berth("images", "-q")`` → CompletedProcess."""
    def run(*args: str, input: bytes | str | None = None, check: bool = False,
            timeout: float = 120, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        text = not isinstance(input, bytes)
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run([sys.executable, "-m", "berth", *args], input=input,
                              capture_output=True, text=text, timeout=timeout, check=check,
                              env=e)
    return run


@pytest.fixture
def busybox_image(engine, busybox_tar):  # type: ignore[no-untyped-def]
    """``busybox:latest`` imported into this test's store; returns the image ID."""
    with open(busybox_tar, "rb") as f:
        return engine.import_image(f, "busybox:latest", changes=['CMD ["sh"]'])


@pytest.fixture(scope="session")
def debian_tar() -> Path:
    """The cached Debian bookworm rootfs tar (mmdebstrap, built once per machine)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from debian import debian_rootfs_tar
    finally:
        sys.path.pop(0)
    return debian_rootfs_tar()


@pytest.fixture
def debian_image(engine, debian_tar):  # type: ignore[no-untyped-def]
    """``debian:bookworm`` imported into this test's store; returns the image ID."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from debian import IMAGE_CHANGES
    finally:
        sys.path.pop(0)
    with open(debian_tar, "rb") as f:
        return engine.import_image(f, "debian:bookworm", changes=list(IMAGE_CHANGES))
