"""Teardown of one test's store, and the list of what it left behind (conftest uses it).

A test fails if any mount, process, veth, bridge, network namespace or firewall rule it made
is still there after its containers and networks were removed, or if that removal itself
raised. Everything found is cleaned up too, so one leak does not cascade into the next test.

Host-global objects (links, rules, cgroups) are attributed by the IDs in the test's own
store, never by "new since the test started": tests run in parallel (``-n 2``), and a
neighbour's bridge must not fail this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
                out.append(target)
    return out


def _proc_text(pid: str, name: str) -> str:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def procs_of(path_text: str, ids: set[str]) -> list[tuple[int, str]]:
    """Processes whose command line mentions ``path_text`` (conmon, runc, berth) or whose
    cgroup names one of the container ``ids`` (a container's own processes mention
    nothing of the test's directories)."""
    found = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            cmd = _proc_text(pid, "cmdline")
            cg = _proc_text(pid, "cgroup") if ids else ""
        except OSError:
            continue
        if path_text in cmd or any(i in cg for i in ids):
            found.append((int(pid), cmd))
    return found


def netns_names() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


def _links() -> set[str]:
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


def _firewall_text() -> str:
    """The host's rules as text: berth tags each rule with its owner's full ID."""
    out = []
    for cmd in (["nft", "list", "ruleset"], ["iptables-save", "-t", "nat"]):
        try:
            out.append(subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                                      check=False).stdout)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return "\n".join(out)


class StoreObjects:
    """The IDs of what one store made, read before its containers and networks go."""

    def __init__(self) -> None:
        self.containers: set[str] = set()
        self.networks: set[str] = set()
        self.bridges: set[str] = set()

    def read_runroot(self, runroot: Path) -> None:
        """Containers whose state directory is left though the database forgot them."""
        try:
            self.containers |= {d for d in os.listdir(runroot / "containers") if len(d) == 64}
        except OSError:
            pass

    def read(self, eng) -> None:  # type: ignore[no-untyped-def]
        db = eng.store.db
        self.containers |= {r["id"] for r in db.query("SELECT id FROM containers")}
        for r in db.query("SELECT id, options FROM networks"):
            self.networks.add(r["id"])
            if bridge := json.loads(r["options"] or "{}").get("bridge"):
                self.bridges.add(bridge)

    def veths(self) -> set[str]:
        from berth.network.veth import veth_name

        return {veth_name(c, n) for c in self.containers for n in self.networks}

    def owners(self) -> set[str]:
        return {f"ctr:{c}" for c in self.containers} | {f"net:{n}" for n in self.networks}


def _with_engine(root: Path, runroot: Path, what: str, fn, leaks: list[str]) -> None:  # type: ignore[no-untyped-def]
    if not root.exists():
        return
    try:
        from berth.engine import Engine

        with Engine(root=str(root), runroot=str(runroot)) as eng:
            fn(eng)
    except Exception as e:  # noqa: BLE001 - a teardown error fails the test, as a leak
        leaks.append(f"teardown error {what}: {type(e).__name__}: {e}")


def teardown(tmp_path: Path, root: Path, runroot: Path, before_netns: set[str]) -> list[str]:
    """Remove what the test left; return a line per thing that should not have been there."""
    leaks: list[str] = []
    objs = StoreObjects()
    objs.read_runroot(runroot)

    def remove_containers(eng) -> None:  # type: ignore[no-untyped-def]
        objs.read(eng)
        eng.remove_all_containers()

    _with_engine(root, runroot, "removing containers", remove_containers, leaks)
    # conmon exit commands of this store (``berth container cleanup``) may still be running:
    # let them finish before the networks go, or one could bring a bridge back
    procs: list[tuple[int, str]] = []
    for _ in range(30):
        procs = procs_of(str(tmp_path), objs.containers)
        if not procs:
            break
        time.sleep(0.1)
    for pid, cmd in procs:
        leaks.append(f"process {pid}: {cmd[:200]}")
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    _with_engine(root, runroot, "removing networks",
                 lambda eng: eng.remove_all_networks(), leaks)
    for name in sorted((objs.bridges | objs.veths()) & _links()):
        leaks.append(f"link {name}")
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
    rules = _firewall_text()
    left = sorted(o for o in objs.owners() if o + "|" in rules)
    if left:
        leaks += [f"firewall rules of {o}" for o in left]
        from berth.network.firewall import open_firewall

        fw = open_firewall()
        for owner in left:
            fw.remove_owner(owner)
    for m in sorted(mounts_under(str(tmp_path)), key=len, reverse=True):
        leaks.append(f"mount {m}")
        subprocess.run(["umount", "-l", m], check=False)
    # berth pins its namespaces under the runroot (the mount check above); a /run/netns
    # name that carries this test's tmp dir name was made by the test itself
    for ns in sorted(netns_names() - before_netns):
        if tmp_path.name in ns:
            leaks.append(f"netns {ns}")
            subprocess.run(["ip", "netns", "del", ns], check=False)
    return leaks
