"""NetworkService: berth's networks in the DB, and the container hooks that use them.

Docker's model, daemonless: a network is a row plus a Linux bridge; a container's seat
on a network (an *endpoint*: address, MAC, interface, aliases) is a row held from
``create``/``network connect`` until ``rm``/``network disconnect``; the live kernel state
of a running container (namespace, veths, published ports, proxy) is a *sandbox* row,
made at start and removed at exit. ContainerService calls five hooks:

* :meth:`container_created` -- validate ``--network``/``--ip``/aliases/ports, allocate IPs;
* :meth:`etc_files` / :meth:`spec_network` -- hosts + resolv.conf, the netns path;
* :meth:`container_starting` -- namespace, veths, ports, proxy (undone on failure);
* :meth:`container_stopped` -- all of that torn down (exit, stop, failed start);
* :meth:`container_removed` -- teardown plus giving the endpoints back.

Bridges, the nft table and host ports are host-global, so kernel work and subnet choice
happen under the host-wide :func:`~berth.network.lock.network_lock`. IPs are per store
and allocated inside a DB write transaction.

The default ``bridge`` network is made on first use with ``172.17.0.0/16`` unless that
clashes with a host route. Its device is ``berth0`` for the default store
(``/var/lib/berth``); other stores (``--root``, tests) get ``brt-<id>`` so two stores never
share one bridge with two address plans.

Outbound traffic is masqueraded, but routing it needs the host-wide
``net.ipv4.ip_forward``. berth turns on forwarding for its own bridges always, and
host-wide only when the user explicitly creates a (non-internal) bridge network with
``network create``, as dockerd does when it sets up bridges; ``BERTH_IP_FORWARD=0``
forbids that (the tests set it). Without it, everything on the host and between
containers works; only traffic leaving the host does not.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument, NotFound, PortAllocated
from .lock import network_lock
from .records import DRIVERS, PREDEFINED, EndpointRecord, NetworkRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..container.records import ContainerRecord
    from ..store.store import Store
    from .ports import PortMapping

DEFAULT_ROOT = "/var/lib/berth"
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def uses_network_service(mode: str | None) -> bool:
    """True for modes this service handles (anything but ``none``/``host``)."""
    return (mode or "none") not in ("none", "host", "default-none")


class NetworkService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # -- lookup -----------------------------------------------------------------------
    def _ensure_predefined(self) -> None:
        """``host`` and ``none`` rows (no kernel state); ``bridge`` is made on first use."""
        have = {r["name"] for r in self.db.query(
            "SELECT name FROM networks WHERE name IN ('host','none')")}
        if len(have) == 2:
            return
        with self.db.tx() as tx:
            for name in ("host", "none"):
                if name not in have:
                    tx.execute("INSERT OR IGNORE INTO networks(id, name, driver, created) "
                               "VALUES (?,?,?,?)",
                               (os.urandom(32).hex(), name, DRIVERS[name], time.time()))

    def find(self, key: str) -> NetworkRecord | None:
        """By full ID, name, or unique ID prefix (Docker's order)."""
        if key == "bridge":
            return self.default_network()
        row = self.db.one("SELECT * FROM networks WHERE id=? OR name=? "
                          "ORDER BY id=? DESC LIMIT 1", (key, key, key))
        if row is None and key and all(c in "0123456789abcdef" for c in key):
            rows = self.db.query("SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2",
                                 (key, key + "g"))
            if len(rows) > 1:
                raise NotFound(f"network {key} is ambiguous ({len(rows)} matches found "
                               "on name)")
            row = rows[0] if rows else None
        if row is None and key in PREDEFINED:
            self._ensure_predefined()
            return self.find(key)
        return NetworkRecord.from_row(row) if row is not None else None

    def get(self, key: str) -> NetworkRecord:
        net = self.find(key)
        if net is None:
            raise NotFound(f"network {key} not found")
        return net

    def list(self) -> builtins.list[NetworkRecord]:
        self.default_network()
        self._ensure_predefined()
        return [NetworkRecord.from_row(r) for r in
                self.db.query("SELECT * FROM networks ORDER BY created, name")]

    def endpoints(self, *, container_id: str | None = None,
                  network_id: str | None = None) -> builtins.list[EndpointRecord]:
        where, args = [], []
        if container_id:
            where.append("container_id=?")
            args.append(container_id)
        if network_id:
            where.append("network_id=?")
            args.append(network_id)
        sql = "SELECT * FROM endpoints" + (" WHERE " + " AND ".join(where) if where else "")
        return [EndpointRecord.from_row(r) for r in
                self.db.query(sql + " ORDER BY created, ifname", args)]

    # -- create / remove --------------------------------------------------------------
    def default_network(self) -> NetworkRecord:
        """The ``bridge`` network, made (row + bridge) the first time anyone needs it."""
        row = self.db.one("SELECT * FROM networks WHERE name='bridge'")
        if row is not None:
            return NetworkRecord.from_row(row)
        self._ensure_predefined()
        with network_lock():
            row = self.db.one("SELECT * FROM networks WHERE name='bridge'")
            if row is not None:
                return NetworkRecord.from_row(row)
            from .bridge import DEFAULT_BRIDGE, bridge_name
            from .ipam import choose_subnet, gateway_for

            nid = os.urandom(32).hex()
            subnet = choose_subnet(self._subnets(), default_bridge=True)
            dev = DEFAULT_BRIDGE if os.path.realpath(self.store.root) == DEFAULT_ROOT \
                else bridge_name(nid)
            return self._make(nid, "bridge", str(subnet), str(gateway_for(subnet)),
                              internal=False, labels={}, options={"bridge": dev})

    def _subnets(self) -> builtins.list[str]:
        return [r["subnet"] for r in self.db.query(
            "SELECT subnet FROM networks WHERE subnet IS NOT NULL AND subnet != ''")]

    def _make(self, nid: str, name: str, subnet: str, gateway: str, *, internal: bool,
              labels: dict[str, str], options: dict[str, Any]) -> NetworkRecord:
        """Bridge first, then the row (lock held): a row never names a missing subnet."""
        from .sandbox import bring_up_network, tear_down_network

        net = NetworkRecord(nid, name, "bridge", subnet, gateway, internal, labels,
                            time.time(), options)
        bring_up_network(net)
        try:
            with self.db.tx() as tx:
                tx.execute("INSERT INTO networks(id, name, driver, subnet, gateway, internal,"
                           " labels, created, options) VALUES (?,?,?,?,?,?,?,?,?)",
                           (nid, name, "bridge", subnet, gateway, int(internal),
                            json.dumps(labels), net.created, json.dumps(options)))
        except BaseException as e:
            tear_down_network(net)
            if isinstance(e, sqlite3.IntegrityError):
                raise Conflict(f"network with name {name} already exists") from None
            raise
        return net

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, ip_range: str | None = None,
               internal: bool = False, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> NetworkRecord:
        """``network create``: a bridge network with its own Linux bridge and subnet."""
        from .bridge import bridge_name
        from .ipam import choose_subnet, gateway_for, validate_subnet

        if not _NAME_RE.fullmatch(name):
            raise InvalidArgument(f'invalid network name "{name}": must match '
                                  '[a-zA-Z0-9][a-zA-Z0-9_.-]*')
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Conflict(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f'plugin "{driver}" not found')
        if gateway and not subnet:
            raise InvalidArgument("gateway requires a subnet (--subnet)")
        if ip_range and not subnet:
            raise InvalidArgument("ip-range requires a subnet (--subnet)")
        self._ensure_predefined()
        if self.db.one("SELECT 1 FROM networks WHERE name=?", (name,)) is not None or \
                name in PREDEFINED:
            raise Conflict(f"network with name {name} already exists")
        self.default_network()  # so a user network never takes 172.17.0.0/16 from it
        with network_lock():
            if subnet:
                net, gw = validate_subnet(subnet, gateway=gateway, ip_range=ip_range,
                                          used=self._subnets())
            else:
                net = choose_subnet(self._subnets())
                gw = gateway_for(net)
            nid = os.urandom(32).hex()
            opts: dict[str, Any] = {"bridge": bridge_name(nid)}
            if ip_range:
                opts["ip_range"] = ip_range
            if options:
                opts["driver_opts"] = dict(options)
            rec = self._make(nid, name, str(net), str(gw), internal=internal,
                             labels=dict(labels or {}), options=opts)
        if not internal:
            _host_forwarding()
        return rec

    def remove(self, key: str) -> NetworkRecord:
        """``network rm``: refused while a running container uses it."""
        net = self.get(key)
        if net.predefined:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        busy = self.db.one("SELECT 1 FROM endpoints e JOIN containers c ON c.id=e.container_id"
                           " WHERE e.network_id=? AND c.status IN ('running','paused',"
                           "'restarting') LIMIT 1", (net.id,))
        if busy is not None:
            raise Conflict(f"error while removing network: network {net.name} id {net.id} "
                           "has active endpoints")
        self._drop(net)
        return net

    def _drop(self, net: NetworkRecord) -> None:
        from .sandbox import tear_down_network

        with network_lock():
            if net.driver == "bridge" and net.bridge:
                tear_down_network(net)
            with self.db.tx() as tx:
                tx.execute("DELETE FROM endpoints WHERE network_id=?", (net.id,))
                tx.execute("DELETE FROM networks WHERE id=?", (net.id,))

    def prune(self, *, until: float | None = None, labels: Iterable[str] = ()
              ) -> builtins.list[str]:
        """User networks no container (of any state) is attached to; their names."""
        from ..container.views import label_match

        used = {r["network_id"] for r in self.db.query("SELECT network_id FROM endpoints")}
        gone = []
        for net in self.list():
            if net.predefined or net.id in used:
                continue
            if until is not None and net.created >= until:
                continue
            if not label_match(net.labels, list(labels)):
                continue
            self._drop(net)
            gone.append(net.name)
        return gone

    def remove_all(self) -> None:
        """Every network of this store, the default one too (test teardown, reset).

        Containers should be gone already; their endpoint rows go with the networks.
        The shared nft table is dropped only once no rule of anyone is left in it.
        """
        for row in self.db.query("SELECT * FROM networks"):
            self._drop(NetworkRecord.from_row(row))
        with network_lock():
            from .firewall import open_firewall

            try:
                fw = open_firewall()
                if not fw.tags():
                    fw.destroy()
            except Exception:  # noqa: BLE001 - best effort: no nft/iptables at all
                pass

    # -- inspect --------------------------------------------------------------------------
    def inspect(self, key: str) -> dict[str, Any]:
        from .records import inspect_network

        net = self.get(key)
        rows = self.db.query("SELECT e.*, c.name AS cname FROM endpoints e JOIN containers c "
                             "ON c.id=e.container_id WHERE e.network_id=? AND c.status IN "
                             "('running','paused','restarting')", (net.id,))
        return inspect_network(net, [(EndpointRecord.from_row(r), r["cname"]) for r in rows])

    # -- container hooks ------------------------------------------------------------------
    def container_created(self, rec: ContainerRecord, opts: Any) -> None:
        """Check ``--network`` and friends, then hold an address on the network."""
        host = rec.config["HostConfig"]
        mode = host.get("NetworkMode") or "bridge"
        ip = getattr(opts, "ip", None) or None
        aliases = list(getattr(opts, "network_aliases", None) or [])
        if mode.startswith("container:"):
            if host.get("PortBindings") or host.get("PublishAllPorts"):
                raise InvalidArgument("conflicting options: port publishing and the "
                                      "container type network mode")
            if getattr(opts, "hostname", None):
                raise InvalidArgument("conflicting options: hostname and the network mode")
            if host.get("ExtraHosts"):
                raise InvalidArgument("conflicting options: custom host-to-IP mapping and "
                                      "the network mode")
            if host.get("Dns"):
                raise InvalidArgument("conflicting options: dns and the network mode")
            self._target(mode)
            return
        net = self.get(mode)
        if net.driver != "bridge":
            raise InvalidArgument(f"container cannot be attached to network {net.name} "
                                  f"by ID; use --network {net.name}")
        if net.is_default and aliases:
            raise InvalidArgument("network-scoped alias is supported only for containers "
                                  "in user defined networks")
        if net.is_default and ip:
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only")
        self._check_fixed_ports(rec)
        self._add_endpoint(rec.id, net, ip, aliases)

    def _check_fixed_ports(self, rec: ContainerRecord) -> None:
        """A named host port that is taken fails ``create`` now: no half-made container."""
        from .portbindings import fixed_host_ports, requests_of
        from .ports import check_port_free

        reqs = fixed_host_ports(requests_of(rec.config["HostConfig"],
                                            rec.config.get("ExposedPorts")))
        if not reqs:
            return
        reserved = self._reserved_ports(rec.id)
        for r in reqs:
            for ip, port, proto in reserved:
                if port == r.host_port_first and proto == r.proto and \
                        (not ip or not r.host_ip or ip == r.host_ip):
                    raise PortAllocated(f"Bind for {r.host_ip or '0.0.0.0'}:{port} failed: "
                                   "port is already allocated")
            check_port_free(r.host_ip, r.host_port_first, r.proto)

    def _add_endpoint(self, cid: str, net: NetworkRecord, ip: str | None,
                      aliases: builtins.list[str]) -> EndpointRecord:
        from .ipam import IPPool
        from .veth import mac_for_ip

        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM endpoints WHERE container_id=? AND network_id=?",
                      (cid, net.id)) is not None:
                raise Conflict(f"endpoint with name {cid[:12]} already exists in network "
                               f"{net.name}")
            used = [r["ip"] for r in tx.query("SELECT ip FROM endpoints WHERE network_id=?",
                                              (net.id,))]
            pool = IPPool(net.subnet, used, gateway=net.gateway,
                          ip_range=net.options.get("ip_range"))
            addr = str(pool.allocate(ip))
            names = {r["ifname"] for r in tx.query(
                "SELECT ifname FROM endpoints WHERE container_id=?", (cid,))}
            ifname = next(f"eth{i}" for i in range(len(names) + 1) if f"eth{i}" not in names)
            ep = EndpointRecord(cid, net.id, addr, mac_for_ip(addr), aliases, ifname,
                                time.time())
            tx.execute("INSERT INTO endpoints(container_id, network_id, ip, mac, aliases, "
                       "ifname, created) VALUES (?,?,?,?,?,?,?)",
                       (cid, net.id, ep.ip, ep.mac, json.dumps(aliases), ifname, ep.created))
        return ep

    def _target(self, mode: str) -> Any:
        """The container whose namespace ``container:NAME`` joins (row)."""
        key = mode.split(":", 1)[1]
        row = self.db.one("SELECT * FROM containers WHERE id=? OR name=? LIMIT 1", (key, key))
        if row is None and key and all(c in "0123456789abcdef" for c in key):
            rows = self.db.query("SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                                 (key, key + "g"))
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NotFound(f"No such container: {key}")
        return row

    def etc_files(self, rec: ContainerRecord) -> builtins.list[dict[str, Any]]:
        """hosts/hostname/resolv.conf for the spec (``container:`` shares its target's)."""
        from ..etcbinds import write_in_place
        from .etcfiles import write_etc_files

        mode = rec.config["HostConfig"].get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            target = self._target(mode)
            tdir = os.path.join(self.store.root, "containers", target["id"])
            path = os.path.join(rec.dir, "hostname")
            write_in_place(path, (rec.config.get("Hostname") or "") + "\n")
            return [{"type": "bind", "source": os.path.join(tdir, n),
                     "destination": f"/etc/{n}"} for n in ("hosts", "resolv.conf")] + \
                [{"type": "bind", "source": path, "destination": "/etc/hostname"}]
        ip, gw, peers = self._hosts_inputs(rec.id)
        return write_etc_files(rec.dir, rec.config, ip, gw, peers,
                               dns_server=self.dns_server(rec))

    def spec_network(self, rec: ContainerRecord) -> str:
        """What the spec's network namespace is: a path the runtime joins."""
        from .netns import netns_path

        mode = rec.config["HostConfig"].get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            return netns_path(self.store.runroot, self._target(mode)["id"])
        return netns_path(self.store.runroot, rec.id)

    def container_starting(self, rec: ContainerRecord) -> None:
        """Bring the sandbox up before the runtime creates the container."""
        from . import sandbox
        from .portbindings import requests_of

        mode = rec.config["HostConfig"].get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            self._join_target(rec, mode)
            return
        seats = self._seats(rec.id)
        reqs = requests_of(rec.config["HostConfig"], rec.config.get("ExposedPorts"))
        with network_lock():
            path, pid, maps = sandbox.start(
                self.store.runroot, rec.id, seats, reqs, self._reserved_ports(rec.id),
                os.path.join(rec.run_dir, "proxy.log"))
            try:
                with self.db.tx() as tx:
                    tx.execute("INSERT OR REPLACE INTO sandboxes(container_id, netns, "
                               "proxy_pid, ports) VALUES (?,?,?,?)",
                               (rec.id, path, pid, json.dumps([m.__dict__ for m in maps])))
                self._refresh({s.network.id for s in seats}, starting=rec.id)
            except BaseException:
                sandbox.stop(self.store.runroot, rec.id, [s.network.id for s in seats], pid,
                             had_ports=bool(reqs))
                raise

    def _join_target(self, rec: ContainerRecord, mode: str) -> None:
        """``container:NAME``: point the bundle at the target's live namespace."""
        from .netns import is_netns, netns_path

        target = self._target(mode)
        if target["status"] not in ("running", "paused") or not target["pid"]:
            raise Conflict(f"cannot join network namespace of a non running container: "
                           f"{target['id']}")
        path = netns_path(self.store.runroot, target["id"])
        if not is_netns(path):
            path = f"/proc/{target['pid']}/ns/net"
        cfg_path = os.path.join(rec.bundle, "config.json")
        with open(cfg_path, encoding="utf-8") as f:
            spec = json.load(f)
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = path
        tmp = cfg_path + ".net.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        os.replace(tmp, cfg_path)

    def _seats(self, cid: str) -> builtins.list[Any]:
        from .sandbox import Seat

        eps = self.endpoints(container_id=cid)
        nets = {n.id: n for n in (NetworkRecord.from_row(r) for r in self.db.query(
            "SELECT * FROM networks WHERE id IN (SELECT network_id FROM endpoints "
            "WHERE container_id=?)", (cid,)))}
        return [Seat(nets[e.network_id], e, i == 0) for i, e in enumerate(eps)
                if e.network_id in nets]

    def _reserved_ports(self, cid: str) -> builtins.list[tuple[str, int, str]]:
        out = []
        for r in self.db.query("SELECT ports FROM sandboxes WHERE container_id != ?", (cid,)):
            out += [(m["host_ip"], m["host_port"], m["proto"]) for m in json.loads(r["ports"])]
        return out

    def container_stopped(self, rec: ContainerRecord, *, removing: bool = False) -> None:
        """Tear the sandbox down (idempotent; also after a failed or killed start)."""
        from . import sandbox
        from .portbindings import requests_of

        host = rec.config.get("HostConfig", {})
        mode = host.get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            return
        row = self.db.one("SELECT * FROM sandboxes WHERE container_id=?", (rec.id,))
        reqs = requests_of(host, rec.config.get("ExposedPorts"))
        nids = [e.network_id for e in self.endpoints(container_id=rec.id)]
        with network_lock():
            sandbox.stop(self.store.runroot, rec.id, nids,
                         row["proxy_pid"] if row is not None else None, had_ports=bool(reqs),
                         dnat=any(sandbox._needs_dnat(r.host_ip) for r in reqs))
            with self.db.tx() as tx:
                tx.execute("DELETE FROM sandboxes WHERE container_id=?", (rec.id,))
                if removing:
                    tx.execute("DELETE FROM endpoints WHERE container_id=?", (rec.id,))
            self._refresh(set(nids), gone=rec.id)

    def container_removed(self, rec: ContainerRecord) -> None:
        self.container_stopped(rec, removing=True)

    # -- connect / disconnect -----------------------------------------------------------------
    def connect(self, key: str, rec: ContainerRecord, *, aliases: Sequence[str] = (),
                ip: str | None = None) -> None:
        """``network connect``: a new endpoint; plugged in now if the container runs."""
        from . import sandbox

        mode = rec.config.get("HostConfig", {}).get("NetworkMode") or "bridge"
        if not uses_network_service(mode) or mode.startswith("container:"):
            raise Conflict("container sharing network namespace with another container or "
                           "host cannot be connected to any other network")
        net = self.get(key)
        if net.driver != "bridge":
            raise Conflict("container cannot be disconnected from host network or connected "
                           "to host network")
        if net.is_default and aliases:
            raise InvalidArgument("network-scoped alias is supported only for containers "
                                  "in user defined networks")
        ep = self._add_endpoint(rec.id, net, ip, list(aliases))
        running = rec.status in ("running", "paused")
        if not running:
            return
        try:
            with network_lock():
                sandbox.bring_up_network(net)
                path = sandbox.netns_path(self.store.runroot, rec.id)
                sandbox.plug(path, rec.id, sandbox.Seat(net, ep, False))
                self._refresh({e.network_id for e in self.endpoints(container_id=rec.id)})
        except BaseException:
            with self.db.tx() as tx:
                tx.execute("DELETE FROM endpoints WHERE container_id=? AND network_id=?",
                           (rec.id, net.id))
            raise

    def disconnect(self, key: str, rec: ContainerRecord) -> None:
        from . import sandbox

        net = self.get(key)
        row = self.db.one("SELECT 1 FROM endpoints WHERE container_id=? AND network_id=?",
                          (rec.id, net.id))
        if row is None:
            raise Conflict(f"container {rec.id} is not connected to network {net.name}")
        with network_lock():
            sandbox.unplug(rec.id, net.id)
            others = {e.network_id for e in self.endpoints(container_id=rec.id)}
            with self.db.tx() as tx:
                tx.execute("DELETE FROM endpoints WHERE container_id=? AND network_id=?",
                           (rec.id, net.id))
            self._refresh(others)

    # -- hosts files ------------------------------------------------------------------------
    def _hosts_inputs(self, cid: str) -> tuple[str | None, str | None,
                                               builtins.list[tuple[str, builtins.list[str]]]]:
        """(own primary IP, its gateway, running peers on its user networks).

        A peer is *running* when it has a sandbox row: that row is written and deleted
        under the network lock, in the same critical section as the refresh, so parallel
        starts always see each other (a container's status turns ``running`` only later,
        outside the lock -- judging by it lost peers that started at the same moment).
        """
        from .etcfiles import peer_names

        eps = self.endpoints(container_id=cid)
        if not eps:
            return None, None, []
        nets = {r["id"]: NetworkRecord.from_row(r) for r in self.db.query(
            "SELECT * FROM networks WHERE id IN (SELECT network_id FROM endpoints "
            "WHERE container_id=?)", (cid,))}
        primary = nets.get(eps[0].network_id)
        peers: list[tuple[str, list[str]]] = []
        for ep in eps:
            net = nets.get(ep.network_id)
            if net is None or net.is_default:
                continue
            for r in self._live_seats(net.id):
                if r["id"] != cid:
                    peers.append((r["ip"], peer_names(r["name"], r["id"], r["aliases"])))
        return eps[0].ip, primary.gateway if primary else None, peers

    def _live_seats(self, network_id: str) -> builtins.list[Any]:
        """Endpoints on a network of containers whose sandbox is up (see above)."""
        return self.db.query(
            "SELECT e.ip, e.aliases, c.id, c.name, c.config FROM endpoints e JOIN "
            "containers c ON c.id=e.container_id JOIN sandboxes s ON "
            "s.container_id=e.container_id WHERE e.network_id=? ORDER BY e.created",
            (network_id,))

    def _refresh(self, network_ids: set[str], *, starting: str | None = None,
                 gone: str | None = None) -> None:
        """Rewrite hosts of every container on these networks (user networks only),
        then bring the DNS server in line. Callers hold the network lock and have
        already added (start) or deleted (stop) the container's sandbox row."""
        from ..etcbinds import write_in_place
        from .etcfiles import hosts_text

        if not network_ids:
            return
        marks = ",".join("?" * len(network_ids))
        user = [r["id"] for r in self.db.query(
            f"SELECT id FROM networks WHERE id IN ({marks}) AND name != 'bridge'",
            list(network_ids))]
        if not user and starting is None:
            return
        ids = {starting} if starting else set()
        if user:
            marks = ",".join("?" * len(user))
            ids |= {r["container_id"] for r in self.db.query(
                f"SELECT DISTINCT container_id FROM endpoints WHERE network_id IN ({marks})",
                user)}
        ids.discard(gone)
        for cid in ids:
            row = self.db.one("SELECT config FROM containers WHERE id=?", (cid,))
            path = os.path.join(self.store.root, "containers", cid, "hosts")
            if row is None or not os.path.exists(path):
                continue
            ip, gw, peers = self._hosts_inputs(cid)
            write_in_place(path, hosts_text(json.loads(row["config"]), ip, gw, peers))
        if user:
            self._sync_dns()

    def _sync_dns(self) -> None:
        """Every user network's running containers to aardvark-dns (see :mod:`.dns`)."""
        from . import dns
        from .etcfiles import peer_names
        from .ipam import is_ipv4

        nets = []
        for row in self.db.query("SELECT * FROM networks WHERE driver='bridge' AND "
                                 "name != 'bridge' AND id IN (SELECT network_id FROM "
                                 "endpoints JOIN sandboxes USING (container_id))"):
            net = NetworkRecord.from_row(row)
            entries = []
            for r in self._live_seats(net.id):
                servers = json.loads(r["config"]).get("HostConfig", {}).get("Dns") or []
                entries.append(dns.DnsEntry(
                    r["id"], r["ip"], peer_names(r["name"], r["id"], r["aliases"]),
                    [s for s in servers if is_ipv4(s)]))
            nets.append(dns.DnsNetwork(net.id, net.gateway, net.internal, entries))
        dns.sync(self.store.runroot, nets)

    def dns_server(self, rec: ContainerRecord) -> str | None:
        """The nameserver for the container's resolv.conf: its user network's gateway,
        where aardvark-dns answers (None on the default bridge or without aardvark-dns)."""
        from .dns import server_binary

        eps = self.endpoints(container_id=rec.id)
        if not eps:
            return None
        row = self.db.one("SELECT * FROM networks WHERE id=?", (eps[0].network_id,))
        if row is None or row["name"] == "bridge" or server_binary() is None:
            return None
        return NetworkRecord.from_row(row).gateway

    # -- ports and inspect views ---------------------------------------------------------------
    def mappings(self, cid: str) -> builtins.list[PortMapping]:
        from .ports import PortMapping

        row = self.db.one("SELECT ports FROM sandboxes WHERE container_id=?", (cid,))
        return [PortMapping(**m) for m in json.loads(row["ports"])] if row else []

    def display_ports(self, rec: ContainerRecord) -> builtins.list[Any]:
        """Engine API ``Ports`` of a running container (none when not running)."""
        from .ports import display_ports

        if rec.status not in ("running", "paused"):
            return []
        return display_ports(self.mappings(rec.id),
                             (rec.config.get("ExposedPorts") or {}).keys(),
                             ipv6=os.path.exists("/proc/net/if_inet6"))

    def settings(self, rec: ContainerRecord) -> dict[str, Any]:
        """``NetworkSettings`` for container inspect."""
        from .netns import netns_path

        running = rec.status in ("running", "paused")
        ports: dict[str, Any] = {}
        if running:
            for k in rec.config.get("ExposedPorts") or {}:
                ports[k] = None
            for p in self.display_ports(rec):
                if p.public_port:
                    key = f"{p.private_port}/{p.type}"
                    ports[key] = (ports.get(key) or []) + [
                        {"HostIp": p.ip, "HostPort": str(p.public_port)}]
        nets: dict[str, Any] = {}
        top = {"Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
               "EndpointID": ""}
        for ep in self.endpoints(container_id=rec.id):
            row = self.db.one("SELECT * FROM networks WHERE id=?", (ep.network_id,))
            if row is None:
                continue
            net = NetworkRecord.from_row(row)
            entry = {"IPAMConfig": None, "Links": None,
                     "Aliases": ep.aliases or None, "NetworkID": net.id,
                     "EndpointID": ep.endpoint_id if running else "",
                     "Gateway": net.gateway, "IPAddress": ep.ip,
                     "IPPrefixLen": net.prefixlen, "IPv6Gateway": "",
                     "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                     "MacAddress": ep.mac, "DriverOpts": None}
            nets[net.name] = entry
            if net.is_default:
                top = {k: entry[k] for k in top}
        mode = rec.config.get("HostConfig", {}).get("NetworkMode") or "none"
        if mode in ("none", "host"):
            nets[mode] = {"NetworkID": self.get(mode).id, "EndpointID": "", "Gateway": "",
                          "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}
        key = netns_path(self.store.runroot, rec.id) if running and nets and \
            uses_network_service(mode) and not mode.startswith("container:") else ""
        return {"Bridge": "", "SandboxID": rec.id if key else "", "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
                "SandboxKey": key, "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, **top, "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "", "Networks": nets}


def _host_forwarding() -> None:
    """Turn on host-wide IPv4 forwarding for a user-made bridge network (module doc)."""
    if os.environ.get("BERTH_IP_FORWARD", "1") == "0":
        return
    path = "/proc/sys/net/ipv4/ip_forward"
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        pass  # not root or read-only /proc: outbound traffic just will not route
