"""Low-level network machinery for bridge networks: the pieces, not the policy.

Each module does one job and keeps no state of its own; the network service above (DB rows,
names, locks) decides *what* should exist and calls these to make the kernel agree:

* :mod:`.ipam` -- pick a subnet that clashes with nothing, hand out and take back IPs;
* :mod:`.bridge` -- the Linux bridge carrying a network's gateway address;
* :mod:`.netns` -- a container's network namespace as a bind-mounted file, so the OCI
  runtime can join it (``linux.namespaces: [{"type": "network", "path": ...}]``);
* :mod:`.veth` -- the cable between bridge and namespace (``eth0``, address, default route);
* :mod:`.rtnl` -- the netlink requests those two send, batched, in-namespace by a thread;
* :mod:`.firewall` -- masquerade for a subnet and DNAT for published ports (nft, or iptables);
* :mod:`.ports` -- ``-p``/``-P``/``--expose`` parsing, host-port allocation, Docker's PORTS
  column and ``port`` lines;
* :mod:`.proxy` -- a docker-proxy-like userland forwarder (loopback cannot be DNAT'ed);
* :mod:`.hostsfiles` -- the container's ``/etc/hosts`` and ``resolv.conf``.

Netlink for the start/stop path is :mod:`.rtnl` (a few fixed requests packed with
``struct``), imported inside :mod:`.bridge` and :mod:`.veth` functions: importing pyroute2
costs more than a whole ``--network none`` run (see :mod:`.rtnl`), and ``--network none``
must never load any of this.

Call sequence for one container on one bridge network (the service holds the network lock):

create: ``ports.parse_publish``/``publish_all`` -> store the requests; ``ipam.IPPool`` ->
        store the IP; ``hostsfiles.render_hosts``/``render_resolv_conf`` -> bind-mount files.
start:  ``bridge.ensure_bridge`` + ``firewall.open_firewall().ensure_masquerade`` (network);
        ``netns.create_netns(netns.netns_path(runroot, cid))`` -> put that path in the spec;
        ``veth.attach``; ``ports.allocate``; ``firewall.add_port_forwards``;
        ``proxy.start_proxy`` -> record the pid; then the runtime starts the container.
stop:   ``proxy.stop_proxy(pid)``; ``firewall.remove_owner(cid)``; ``veth.detach``;
        ``netns.delete_netns``.
rm:     nothing network-wide; ``network rm`` does ``remove_owner(net)`` + ``delete_bridge``.
"""
