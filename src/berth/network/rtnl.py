"""A minimal synchronous rtnetlink client for the container start/stop path.

Why not pyroute2 here: with pyroute2 0.9, importing *any* of its submodules first runs
the package ``__init__``, which imports the whole library (asyncio, NDB, IPDB, conntrack,
...): 110-160 ms on this kind of machine, more than half of a ``run --rm IMAGE true``.
Bypassing that ``__init__`` still costs ~55 ms for its message classes (logging,
multiprocessing) and leans on its internals. The start path needs six fixed requests, so
they are encoded here with :mod:`struct` in well under a millisecond, imports included.
This stays deliberately small (no dumps, no attribute parsing): anything richer, off the
run path, should bring in pyroute2 rather than grow this module.

Requests are batched: every message of one :meth:`Rtnl.request` goes out in a single
``send`` and the kernel answers each with an ACK (or error), matched by sequence number.
Work inside a container's namespace goes through :func:`run_in_netns`: a netlink socket
belongs to the namespace it was *created* in, so a throwaway thread ``setns()``es into
the container's namespace, opens its socket there, sends one batch and exits. ``setns``
only moves the calling thread, so the rest of the process never changes namespace, and
no helper process is forked or left behind (unlike pyroute2's ``NetNS``).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Interface
from typing import TypeVar

T = TypeVar("T")

NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000

NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400

IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HDR = struct.Struct("=IHHII")        # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")    # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")     # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src len, tos, table, proto, ...
_ATTR = struct.Struct("=HH")

_libc = ctypes.CDLL(None, use_errno=True)


class NetlinkError(OSError):
    """The kernel refused one request of a batch (``errno`` is the kernel's code)."""


# -- encoding ---------------------------------------------------------------------------

def attr(kind: int, payload: bytes) -> bytes:
    """One ``rtattr``, padded to 4 bytes (nested attributes are just concatenated ones)."""
    size = _ATTR.size + len(payload)
    return _ATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def _ifinfo(index: int = 0, *, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Message:
    """One request: type, extra flags and the body (family header + attributes)."""

    __slots__ = ("kind", "flags", "body")

    def __init__(self, kind: int, flags: int, body: bytes) -> None:
        self.kind, self.flags, self.body = kind, flags, body


def new_bridge(name: str, *, mtu: int | None = None, mac: str | None = None) -> Message:
    """``ip link add NAME [mtu M] [address MAC] up type bridge``; EEXIST if it is there."""
    attrs = _str(IFLA_IFNAME, name) + (_u32(IFLA_MTU, mtu) if mtu else b"") + \
        (attr(IFLA_ADDRESS, _mac(mac)) if mac else b"") + \
        attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "bridge"))
    return Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo(up=True) + attrs)


def set_up(name: str) -> Message:
    """``ip link set NAME up`` (the kernel finds the device by name when index is 0)."""
    return Message(RTM_NEWLINK, 0, _ifinfo(up=True) + _str(IFLA_IFNAME, name))


def new_veth(name: str, master: int, peer: str, peer_netns_fd: int, peer_mac: str, *,
             mtu: int | None = None) -> Message:
    """Both ends in one request: ``name`` up on the host, enslaved to ``master``; ``peer``
    inside the namespace ``peer_netns_fd`` with ``peer_mac``. Being one request it is
    atomic: no moment with a stray peer on the host, no half-plugged pair. The peer stays
    down (the kernel refuses to open it from here, ENOTCONN): set it up from inside.
    """
    mtu_attr = _u32(IFLA_MTU, mtu) if mtu else b""
    peer_msg = _ifinfo() + _str(IFLA_IFNAME, peer) + \
        _u32(IFLA_NET_NS_FD, peer_netns_fd) + attr(IFLA_ADDRESS, _mac(peer_mac)) + mtu_attr
    info = _str(IFLA_INFO_KIND, "veth") + \
        attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg))
    attrs = _str(IFLA_IFNAME, name) + _u32(IFLA_MASTER, master) + mtu_attr + \
        attr(IFLA_LINKINFO, info)
    return Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo(up=True) + attrs)


def del_link(name: str) -> Message:
    """``ip link del NAME`` (a veth takes its peer along); ENODEV when it is gone."""
    return Message(RTM_DELLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name))


def new_addr(index: int, address: str, prefixlen: int) -> Message:
    """``ip addr add ADDRESS/PREFIXLEN brd + dev INDEX``; EEXIST when already there."""
    iface = IPv4Interface(f"{address}/{prefixlen}")
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + \
        attr(IFA_LOCAL, iface.ip.packed) + attr(IFA_ADDRESS, iface.ip.packed)
    if prefixlen < 31:
        body += attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
    return Message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)


def new_default_route(gateway: str) -> Message:
    """``ip route add default via GATEWAY`` in the main table."""
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                       RT_SCOPE_UNIVERSE, RTN_UNICAST, 0) + \
        attr(RTA_GATEWAY, socket.inet_aton(gateway))
    return Message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)


# -- the socket -------------------------------------------------------------------------

def _open() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def run_in_netns(netns_path: str, work: Callable[[], T]) -> T:
    """``work()`` run by a short-lived thread inside the namespace at ``netns_path``.

    Sockets it opens (netlink, or glibc's for ``if_nametoindex``) belong to that
    namespace. The thread dies right after (module doc), so nothing of the process stays
    in the container's namespace even if a step fails half-way. Its result or exception
    is handed back to the caller.
    """
    out: list[T] = []
    err: list[BaseException] = []

    def enter_and_work() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns {netns_path}: {os.strerror(e)}")
            finally:
                os.close(fd)
            out.append(work())
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            err.append(e)

    t = threading.Thread(target=enter_and_work, name="berth-netns", daemon=True)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


class Rtnl:
    """One NETLINK_ROUTE socket, in the namespace of the thread that makes it."""

    def __init__(self) -> None:
        self.sock = _open()
        self._seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, messages: Sequence[Message], *,
                ok: Iterable[int] = ()) -> list[int]:
        """Send all ``messages`` at once; the errno of each (0 = done), in order.

        The kernel runs them in order and goes on after a failure, so the caller decides
        which codes are fine: codes in ``ok`` are returned, any other raises
        :class:`NetlinkError` for the first failing message (after reading every ACK, so
        the socket stays usable).
        """
        first = self._seq + 1
        buf = bytearray()
        for m in messages:
            self._seq += 1
            buf += _HDR.pack(_HDR.size + len(m.body), m.kind,
                             NLM_F_REQUEST | NLM_F_ACK | m.flags, self._seq, 0) + m.body
        self.sock.send(bytes(buf))
        codes: dict[int, int] = {}
        while len(codes) < len(messages):
            data = self.sock.recv(65536)
            off = 0
            while off + _HDR.size <= len(data):
                size, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
                if size < _HDR.size:
                    break
                if kind == NLMSG_ERROR and first <= seq <= self._seq:
                    codes[seq] = -struct.unpack_from("=i", data, off + _HDR.size)[0]
                off += (size + 3) & ~3
        result = [codes[first + i] for i in range(len(messages))]
        allowed = set(ok) | {0}
        for code in result:
            if code not in allowed:
                raise NetlinkError(code, os.strerror(code))
        return result

