"""NAT for bridge networks: masquerade outbound traffic, DNAT published ports.

All of berth's rules live in its own place (one nft table, default ``ip berth``; or, with
iptables, its own chains in the ``nat`` table reached by one jump each), never in anyone
else's chains, so a bug here cannot break Docker's or Podman's rules. Every rule carries a
comment ``<owner>|<detail>``: the owner (``net:<id>`` or ``ctr:<id>``) lets stop remove
exactly one container's rules, and the full comment makes adding idempotent (a rule whose
comment is present is not added twice).

What the rules do (IPv4 only; containers have no IPv6 addresses yet):
* masquerade: ``saddr <subnet>, oif != <bridge>`` -> masquerade, so replies find the host;
* DNAT: to a local, non-loopback address (or the chosen host IP) and ``dport <host port>``
  -> ``<container ip>:<port>``, in prerouting (from outside) and output (from the host);
* hairpin: a container reaching its own published port is masqueraded so the reply
  comes back through the host.
Loopback (``127.0.0.1:<port>``) cannot be DNAT'ed without ``route_localnet``; the userland
proxy (:mod:`.proxy`) serves it, as docker-proxy does.

``netns`` runs the tools inside a namespace, which gives tests a firewall of their own.
Callers hold the network lock: check-then-add is not atomic across processes.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ..errors import BerthError, InvalidArgument
from .ipam import is_ipv4

_PROTOS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortForward:
    """One published port after allocation: host side -> container side."""

    proto: str
    host_ip: str          # "" or "0.0.0.0" = every local address
    host_port: int
    container_ip: str
    container_port: int


@dataclass(frozen=True)
class _Rule:
    chain: str            # "pre" | "out" | "post"
    tag: str
    kind: str             # "masq" | "dnat" | "hairpin"
    proto: str = ""
    saddr: str = ""
    daddr: str = ""
    not_oif: str = ""
    dport: int = 0
    to: str = ""


def _check_owner(owner: str) -> None:
    if not owner or any(c in owner for c in ' |"\'\\') or len(owner) > 90:
        raise InvalidArgument(f"invalid firewall owner tag: {owner!r}")


def _forward_rules(owner: str, fwd: PortForward) -> list[_Rule]:
    if fwd.proto not in _PROTOS:
        raise InvalidArgument(f"invalid proto: {fwd.proto}")
    host_ip = fwd.host_ip or "0.0.0.0"
    if not is_ipv4(host_ip) or IPv4Address(host_ip).is_loopback:
        return []  # IPv6 or loopback host IP: only the proxy can serve it
    daddr = "" if host_ip == "0.0.0.0" else host_ip
    to = f"{fwd.container_ip}:{fwd.container_port}"
    base = f"{owner}|{fwd.proto}/{host_ip}/{fwd.host_port}"
    return [
        _Rule("pre", base + "/pre", "dnat", fwd.proto, daddr=daddr, dport=fwd.host_port, to=to),
        _Rule("out", base + "/out", "dnat", fwd.proto, daddr=daddr, dport=fwd.host_port, to=to),
        _Rule("post", base + "/hairpin", "hairpin", fwd.proto, saddr=fwd.container_ip,
              daddr=fwd.container_ip, dport=fwd.container_port),
    ]


class Firewall:
    """Backend-neutral operations; subclasses render and run rules for one tool."""

    backend = ""

    def __init__(self, table: str = "berth", netns: str | None = None) -> None:
        if not table.replace("-", "").replace("_", "").isalnum() or len(table) > 20:
            raise InvalidArgument(f"invalid firewall table name: {table!r}")
        self.table = table
        self.prefix = ["nsenter", f"--net={netns}", "--"] if netns else []

    # -- public API -------------------------------------------------------------------

    def ensure_masquerade(self, owner: str, subnet: str, bridge: str) -> None:
        """Masquerade traffic from ``subnet`` leaving through anything but ``bridge``."""
        _check_owner(owner)
        net = str(IPv4Network(subnet, strict=False))
        self._add([_Rule("post", f"{owner}|masq/{net}", "masq", saddr=net, not_oif=bridge)])

    def add_port_forwards(self, owner: str, forwards: Iterable[PortForward]) -> None:
        """DNAT each published port to its container (idempotent)."""
        _check_owner(owner)
        rules = [r for f in forwards for r in _forward_rules(owner, f)]
        self._add(rules)

    def remove_owner(self, owner: str) -> int:
        """Delete every rule tagged with ``owner``; return how many went."""
        _check_owner(owner)
        return self._delete(owner)

    def tags(self, owner: str | None = None) -> list[str]:
        """Comments of the rules present (optionally only ``owner``'s), for checks."""
        return [t for t in self._tags() if owner is None or t.split("|", 1)[0] == owner]

    def destroy(self) -> None:
        """Remove berth's table/chains entirely (``system reset``, test teardown)."""
        raise NotImplementedError

    # -- backend hooks ----------------------------------------------------------------

    def _add(self, rules: Sequence[_Rule]) -> None:
        raise NotImplementedError

    def _delete(self, owner: str) -> int:
        raise NotImplementedError

    def _tags(self) -> list[str]:
        raise NotImplementedError

    def _run(self, argv: list[str], stdin: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.prefix + argv, input=stdin, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise BerthError(f"{argv[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc


class NftFirewall(Firewall):
    """One ``table ip <name>`` with three NAT base chains; rules found by comment."""

    backend = "nftables"
    _HOOKS = {"pre": ("prerouting", "prerouting", "dstnat"),
              "out": ("output", "output", "-100"),
              "post": ("postrouting", "postrouting", "srcnat")}

    def _skeleton(self) -> str:
        lines = [f"add table ip {self.table}"]
        for name, hook, prio in self._HOOKS.values():
            lines.append(f"add chain ip {self.table} {name} "
                         f"{{ type nat hook {hook} priority {prio}; policy accept; }}")
        return "\n".join(lines) + "\n"

    def _render(self, r: _Rule) -> str:
        chain = self._HOOKS[r.chain][0]
        if r.kind == "masq":
            match = f'ip saddr {r.saddr} oifname != "{r.not_oif}" masquerade'
        elif r.kind == "dnat":
            dst = f"ip daddr {r.daddr}" if r.daddr else \
                "ip daddr != 127.0.0.0/8 fib daddr type local"
            match = f"{dst} {r.proto} dport {r.dport} dnat to {r.to}"
        else:
            match = f"ip saddr {r.saddr} ip daddr {r.daddr} {r.proto} dport {r.dport} masquerade"
        return f'add rule ip {self.table} {chain} {match} comment "{r.tag}"'

    def _listing(self) -> list[dict]:
        proc = self._run(["nft", "-j", "-a", "list", "table", "ip", self.table], check=False)
        if proc.returncode != 0:
            return []  # no table yet: nothing of ours exists
        return [o["rule"] for o in json.loads(proc.stdout)["nftables"] if "rule" in o]

    def _tags(self) -> list[str]:
        return [r["comment"] for r in self._listing() if "comment" in r]

    def _add(self, rules: Sequence[_Rule]) -> None:
        have = set(self._tags())
        new = [self._render(r) for r in rules if r.tag not in have]
        self._run(["nft", "-f", "-"], stdin=self._skeleton() + "\n".join(new) + "\n")

    def _delete(self, owner: str) -> int:
        doomed = [r for r in self._listing()
                  if r.get("comment", "").split("|", 1)[0] == owner]
        if doomed:
            script = "".join(f"delete rule ip {self.table} {r['chain']} handle {r['handle']}\n"
                             for r in doomed)
            self._run(["nft", "-f", "-"], stdin=script)
        return len(doomed)

    def destroy(self) -> None:
        self._run(["nft", "delete", "table", "ip", self.table], check=False)


class IptablesFirewall(Firewall):
    """berth's own chains in the ``nat`` table, each reached by one tagged jump."""

    backend = "iptables"

    def _chains(self) -> dict[str, tuple[str, list[str]]]:
        p = self.table.upper()
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return {"pre": (f"{p}-PRE", ["PREROUTING", *local]),
                "out": (f"{p}-OUT", ["OUTPUT", *local]),
                "post": (f"{p}-POST", ["POSTROUTING"])}

    def _ipt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(["iptables", "-w", "-t", "nat", *args], check=check)

    def _ensure_chains(self) -> None:
        for chain, hookspec in self._chains().values():
            parent, match = hookspec[0], hookspec[1:]
            if self._ipt("-S", chain, check=False).returncode != 0:
                self._ipt("-N", chain, check=False)
            jump = [*match, "-m", "comment", "--comment", f"{self.table}|jump", "-j", chain]
            if self._ipt("-C", parent, *jump, check=False).returncode != 0:
                self._ipt("-I", parent, "1", *jump)

    def _argv(self, r: _Rule) -> list[str]:
        chain = self._chains()[r.chain][0]
        if r.kind == "masq":
            m = ["-s", r.saddr, "!", "-o", r.not_oif, "-j", "MASQUERADE"]
        elif r.kind == "dnat":
            dst = ["-d", r.daddr] if r.daddr else ["!", "-d", "127.0.0.0/8"]
            m = [*dst, "-p", r.proto, "--dport", str(r.dport), "-j", "DNAT",
                 "--to-destination", r.to]
        else:
            m = ["-s", r.saddr, "-d", r.daddr, "-p", r.proto, "--dport", str(r.dport),
                 "-j", "MASQUERADE"]
        return [chain, "-m", "comment", "--comment", r.tag, *m]

    def _lines(self) -> list[list[str]]:
        out: list[list[str]] = []
        for chain, _ in self._chains().values():
            proc = self._ipt("-S", chain, check=False)
            if proc.returncode == 0:
                out += [shlex.split(ln) for ln in proc.stdout.splitlines() if ln.startswith("-A")]
        return out

    @staticmethod
    def _comment(words: list[str]) -> str:
        return words[words.index("--comment") + 1] if "--comment" in words else ""

    def _tags(self) -> list[str]:
        return [c for c in (self._comment(w) for w in self._lines()) if c]

    def _add(self, rules: Sequence[_Rule]) -> None:
        self._ensure_chains()
        have = set(self._tags())
        for r in rules:
            if r.tag not in have:
                self._ipt("-A", *self._argv(r))

    def _delete(self, owner: str) -> int:
        n = 0
        for words in self._lines():
            if self._comment(words).split("|", 1)[0] == owner:
                self._ipt("-D", *words[1:])
                n += 1
        return n

    def destroy(self) -> None:
        for chain, hookspec in self._chains().values():
            parent, match = hookspec[0], hookspec[1:]
            jump = [*match, "-m", "comment", "--comment", f"{self.table}|jump", "-j", chain]
            while self._ipt("-D", parent, *jump, check=False).returncode == 0:
                pass
            self._ipt("-F", chain, check=False)
            self._ipt("-X", chain, check=False)


def open_firewall(table: str = "berth", *, netns: str | None = None,
                  backend: str | None = None) -> Firewall:
    """The nft backend when ``nft`` exists, else iptables; ``backend`` forces one."""
    choice = backend or ("nftables" if shutil.which("nft") else
                         "iptables" if shutil.which("iptables") else "")
    if choice == "nftables":
        return NftFirewall(table, netns)
    if choice == "iptables":
        return IptablesFirewall(table, netns)
    raise BerthError("neither nft nor iptables is installed: cannot publish ports or NAT")
