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
  comes back through the host;
* loopback: ``127.0.0.1:<port>`` is DNAT'ed in output like any local address, as dockerd
  does with ``--userland-proxy=false``: the bridge gets ``route_localnet`` (the kernel
  otherwise drops 127/8 sources leaving a non-loopback device) and a per-network
  ``saddr 127.0.0.0/8 oifname <bridge>`` masquerade gives the container a source it can
  answer. So a published container costs no process; only IPv6 host IPs need the
  userland proxy (:mod:`.proxy`): containers have no IPv6 addresses to DNAT to;
* isolation (filter, forward hook): traffic routed from one berth bridge to another is
  dropped, as Docker's ``DOCKER-ISOLATION`` chains do. Every berth bridge of every root
  is ``berth0`` or ``brt-*``, so one rule per network also isolates it from other roots'
  networks. Connections DNAT'ed to a published port stay allowed: publishing is the
  explicit way in.

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


BRIDGE_PATTERNS = ("berth0", "brt-")  # every berth bridge name (bridge.py), any root


@dataclass(frozen=True)
class _Rule:
    chain: str            # "pre" | "out" | "post" | "fwd"
    tag: str
    kind: str             # "masq" | "dnat" | "hairpin" | "isolate"
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
    if not is_ipv4(host_ip):
        return []  # IPv6 host IP: only the proxy can serve it
    loopback = IPv4Address(host_ip).is_loopback
    daddr = "" if host_ip == "0.0.0.0" else host_ip
    to = f"{fwd.container_ip}:{fwd.container_port}"
    base = f"{owner}|{fwd.proto}/{host_ip}/{fwd.host_port}"
    # "out" with no daddr matches every local address, loopback included ("pre" never
    # sees loopback: the kernel drops 127/8 arriving from outside)
    rules = [_Rule("out", base + "/out", "dnat", fwd.proto, daddr=daddr or "local",
                   dport=fwd.host_port, to=to),
             _Rule("post", base + "/hairpin", "hairpin", fwd.proto, saddr=fwd.container_ip,
                   daddr=fwd.container_ip, dport=fwd.container_port)]
    if not loopback:
        rules.insert(0, _Rule("pre", base + "/pre", "dnat", fwd.proto, daddr=daddr,
                              dport=fwd.host_port, to=to))
    return rules


def _network_rules(owner: str, subnet: str, bridge: str, internal: bool) -> list[_Rule]:
    """Masquerade (outbound and loopback-to-container) and isolation of one bridge."""
    rules = [_Rule("fwd", f"{owner}|isolate/{bridge}/self", "isolate-self", saddr=bridge)]
    rules += [_Rule("fwd", f"{owner}|isolate/{bridge}/{other}", "isolate", saddr=bridge,
                    not_oif=other) for other in BRIDGE_PATTERNS]
    if not internal:
        net = str(IPv4Network(subnet, strict=False))
        rules += [_Rule("post", f"{owner}|masq/{net}", "masq", saddr=net, not_oif=bridge),
                  _Rule("post", f"{owner}|masq-lo/{bridge}", "masq-lo", not_oif=bridge)]
    return rules


def published_ports(tags: Iterable[str]) -> list[tuple[str, int, str]]:
    """``(host_ip, port, proto)`` of every DNAT rule in the table: all roots' ports."""
    out = set()
    for tag in tags:
        owner, _, detail = tag.partition("|")
        parts = detail.split("/")
        if owner.startswith("ctr:") and len(parts) == 4 and parts[3] == "out":
            host_ip = "" if parts[1] == "0.0.0.0" else parts[1]
            out.add((host_ip, int(parts[2]), parts[0]))
    return sorted(out)


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

    def ensure_network(self, owner: str, subnet: str, bridge: str, *,
                       internal: bool = False) -> None:
        """All of a bridge network's rules (module doc) in one batch (idempotent)."""
        _check_owner(owner)
        self._add(_network_rules(owner, subnet, bridge, internal))

    def add_port_forwards(self, owner: str, forwards: Iterable[PortForward], *,
                          network: tuple[str, str, str] | None = None,
                          have: Iterable[str] | None = None) -> None:
        """DNAT each published port to its container (idempotent).

        ``network`` = (owner, subnet, bridge) re-ensures that network's rules in the same
        batch (bridges made by older versions lack the loopback masquerade); ``have`` is
        a listing the caller already made, saving one ``nft list``.
        """
        _check_owner(owner)
        rules = [r for f in forwards for r in _forward_rules(owner, f)]
        if network is not None:
            _check_owner(network[0])
            rules = _network_rules(*network, internal=False) + rules
        self._add(rules, have)

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

    def _add(self, rules: Sequence[_Rule], have: Iterable[str] | None = None) -> None:
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
    _HOOKS = {"pre": ("prerouting", "prerouting", "dstnat", "nat"),
              "out": ("output", "output", "-100", "nat"),
              "post": ("postrouting", "postrouting", "srcnat", "nat"),
              "fwd": ("forward", "forward", "filter", "filter")}

    def _skeleton(self) -> str:
        lines = [f"add table ip {self.table}"]
        for name, hook, prio, kind in self._HOOKS.values():
            lines.append(f"add chain ip {self.table} {name} "
                         f"{{ type {kind} hook {hook} priority {prio}; policy accept; }}")
        return "\n".join(lines) + "\n"

    def _render(self, r: _Rule) -> str:
        chain = self._HOOKS[r.chain][0]
        if r.kind == "masq":
            match = f'ip saddr {r.saddr} oifname != "{r.not_oif}" masquerade'
        elif r.kind == "masq-lo":
            match = f'ip saddr 127.0.0.0/8 oifname "{r.not_oif}" masquerade'
        elif r.kind == "isolate-self":  # iptables needs it (one -o per rule); nft: a no-op
            match = f'iifname "{r.saddr}" oifname "{r.saddr}" accept'
        elif r.kind == "isolate":
            out = f'oifname "{r.not_oif}*"' if r.not_oif.endswith("-") else \
                f'oifname "{r.not_oif}"'
            match = f'iifname "{r.saddr}" {out} oifname != "{r.saddr}" ' \
                "ct status & dnat == 0 drop"
        elif r.kind == "dnat":
            dst = "fib daddr type local" if r.daddr == "local" else \
                f"ip daddr {r.daddr}" if r.daddr else \
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

    def _add(self, rules: Sequence[_Rule], have: Iterable[str] | None = None) -> None:
        present = set(self._tags() if have is None else have)
        new = [self._render(r) for r in rules if r.tag not in present]
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
    """berth's own chains in the ``nat`` and ``filter`` tables, each reached by one jump."""

    backend = "iptables"

    def _chains(self) -> dict[str, tuple[str, str, list[str]]]:
        """rule chain -> (iptables table, berth's chain, [parent chain, *jump match])."""
        p = self.table.upper()
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return {"pre": ("nat", f"{p}-PRE", ["PREROUTING", *local]),
                "out": ("nat", f"{p}-OUT", ["OUTPUT", *local]),
                "post": ("nat", f"{p}-POST", ["POSTROUTING"]),
                "fwd": ("filter", f"{p}-FWD", ["FORWARD"])}

    def _ipt(self, table: str, *args: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        return self._run(["iptables", "-w", "-t", table, *args], check=check)

    def _jump(self, chain: str, match: list[str]) -> list[str]:
        return [*match, "-m", "comment", "--comment", f"{self.table}|jump", "-j", chain]

    def _ensure_chains(self) -> None:
        for table, chain, hookspec in self._chains().values():
            parent, match = hookspec[0], hookspec[1:]
            if self._ipt(table, "-S", chain, check=False).returncode != 0:
                self._ipt(table, "-N", chain, check=False)
            jump = self._jump(chain, match)
            if self._ipt(table, "-C", parent, *jump, check=False).returncode != 0:
                self._ipt(table, "-I", parent, "1", *jump)

    def _argv(self, r: _Rule) -> list[str]:
        chain = self._chains()[r.chain][1]
        if r.kind == "masq":
            m = ["-s", r.saddr, "!", "-o", r.not_oif, "-j", "MASQUERADE"]
        elif r.kind == "masq-lo":
            m = ["-s", "127.0.0.0/8", "-o", r.not_oif, "-j", "MASQUERADE"]
        elif r.kind == "isolate-self":
            m = ["-i", r.saddr, "-o", r.saddr, "-j", "RETURN"]
        elif r.kind == "isolate":
            out = r.not_oif + "+" if r.not_oif.endswith("-") else r.not_oif
            m = ["-i", r.saddr, "-o", out, "-m", "conntrack", "!", "--ctstate", "DNAT",
                 "-j", "DROP"]
        elif r.kind == "dnat":
            dst = [] if r.daddr == "local" else ["-d", r.daddr] if r.daddr else \
                ["!", "-d", "127.0.0.0/8"]
            m = [*dst, "-p", r.proto, "--dport", str(r.dport), "-j", "DNAT",
                 "--to-destination", r.to]
        else:
            m = ["-s", r.saddr, "-d", r.daddr, "-p", r.proto, "--dport", str(r.dport),
                 "-j", "MASQUERADE"]
        return [chain, "-m", "comment", "--comment", r.tag, *m]

    def _lines(self) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = []
        for table, chain, _ in self._chains().values():
            proc = self._ipt(table, "-S", chain, check=False)
            if proc.returncode == 0:
                out += [(table, shlex.split(ln)) for ln in proc.stdout.splitlines()
                        if ln.startswith("-A")]
        return out

    @staticmethod
    def _comment(words: list[str]) -> str:
        return words[words.index("--comment") + 1] if "--comment" in words else ""

    def _tags(self) -> list[str]:
        return [c for c in (self._comment(w) for _, w in self._lines()) if c]

    def _add(self, rules: Sequence[_Rule], have: Iterable[str] | None = None) -> None:
        self._ensure_chains()
        present = set(self._tags())  # chains may just have been made: always list
        for r in rules:
            if r.tag not in present:
                self._ipt(self._chains()[r.chain][0], "-A", *self._argv(r))

    def _delete(self, owner: str) -> int:
        n = 0
        for table, words in self._lines():
            if self._comment(words).split("|", 1)[0] == owner:
                self._ipt(table, "-D", *words[1:])
                n += 1
        return n

    def destroy(self) -> None:
        for table, chain, hookspec in self._chains().values():
            parent, match = hookspec[0], hookspec[1:]
            while self._ipt(table, "-D", parent, *self._jump(chain, match),
                            check=False).returncode == 0:
                pass
            self._ipt(table, "-F", chain, check=False)
            self._ipt(table, "-X", chain, check=False)


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
