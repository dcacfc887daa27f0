"""A userland port forwarder, berth's docker-proxy.

Why it exists: DNAT cannot rewrite traffic to ``127.0.0.1`` (the kernel drops martians
unless ``route_localnet`` is set host-wide), and holding the host port open is also how
the port stays *allocated* while the container runs -- nobody else can bind it. One
process serves all of a container's published ports, so ``-p 8000-8010:80-90`` costs one
interpreter, not eleven.

Run as ``python -m berth.network.proxy --map tcp,0.0.0.0,8080,10.88.0.2,80 [--map ...]``
(or docker-proxy's single-mapping flags). It reports ``ok`` or ``error <text>`` on
``--ready-fd`` once every listener is bound, then serves until SIGTERM. UDP clients get
one upstream socket each, dropped after 60 s of silence.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BerthError, PortAllocated

_UDP_IDLE = 60.0


@dataclass(frozen=True)
class ProxyMap:
    """One forwarded port; ``host_ip`` "" listens on 0.0.0.0 and :: both."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int

    def arg(self) -> str:
        return f"{self.proto},{self.host_ip},{self.host_port}," \
               f"{self.container_ip},{self.container_port}"

    @classmethod
    def parse(cls, text: str) -> ProxyMap:
        proto, host_ip, hport, cip, cport = text.split(",")
        return cls(proto, host_ip, int(hport), cip, int(cport))


# -- the process side ------------------------------------------------------------------

_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


def _relay(src: socket.socket, dst: socket.socket) -> None:
    """Move bytes ``src`` → ``dst`` inside the kernel (splice through a pipe) until EOF.

    No byte is copied into Python: this is what lets a userland proxy keep up with DNAT.
    """
    r, w = os.pipe()
    try:
        try:
            import fcntl

            fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass
        sfd, dfd = src.fileno(), dst.fileno()
        while n := os.splice(sfd, w, _PIPE_SIZE):
            while n:
                n -= os.splice(r, dfd, n)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        os.close(r)
        os.close(w)


def _tcp_conn(conn: socket.socket, m: ProxyMap) -> None:
    """One client: connect to the container, then relay both ways on two threads."""
    try:
        up = socket.create_connection((m.container_ip, m.container_port), timeout=10)
    except OSError:
        conn.close()
        return
    up.settimeout(None)
    conn.setblocking(True)
    back = threading.Thread(target=_relay, args=(up, conn), daemon=True)
    back.start()
    _relay(conn, up)
    back.join()
    conn.close()
    up.close()


async def _accept_loop(sock: socket.socket, m: ProxyMap) -> None:
    loop = asyncio.get_running_loop()
    while True:
        conn, _ = await loop.sock_accept(sock)
        threading.Thread(target=_tcp_conn, args=(conn, m), daemon=True).start()


class _UdpFront(asyncio.DatagramProtocol):
    """Client-facing UDP socket; one connected upstream socket per client address."""

    def __init__(self, m: ProxyMap) -> None:
        self.m = m
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[tuple, tuple[asyncio.DatagramTransport, list[float]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().call_later(_UDP_IDLE, self._reap)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        up = self.upstreams.get(addr)
        if up is not None:
            up[1][0] = time.monotonic()
            up[0].sendto(data)
            return
        asyncio.ensure_future(self._open(addr, data))

    async def _open(self, addr: tuple, first: bytes) -> None:
        front = self
        seen = [time.monotonic()]

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _src: tuple) -> None:
                seen[0] = time.monotonic()
                if front.transport is not None:
                    front.transport.sendto(data, addr)

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            Back, remote_addr=(self.m.container_ip, self.m.container_port))
        self.upstreams[addr] = (transport, seen)
        transport.sendto(first)

    def _reap(self) -> None:
        now = time.monotonic()
        for addr, (t, seen) in list(self.upstreams.items()):
            if now - seen[0] > _UDP_IDLE:
                t.close()
                del self.upstreams[addr]
        asyncio.get_running_loop().call_later(_UDP_IDLE, self._reap)


def _listen_socket(m: ProxyMap, family: int, addr: str) -> socket.socket:
    kind = socket.SOCK_STREAM if m.proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if kind == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, m.host_port))
    except OSError:
        s.close()
        shown = f"[{addr}]" if ":" in addr else addr
        raise PortAllocated(f"Bind for {shown}:{m.host_port} failed: port is already allocated") from None
    if kind == socket.SOCK_STREAM:
        s.listen(512)
    s.setblocking(False)
    return s


def _addresses(host_ip: str) -> list[tuple[int, str]]:
    if host_ip:
        return [(socket.AF_INET6 if ":" in host_ip else socket.AF_INET, host_ip)]
    out: list[tuple[int, str]] = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
        out.append((socket.AF_INET6, "::"))
    return out


async def _serve(maps: Sequence[ProxyMap], ready_fd: int | None) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def _stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop)
    accepting: list[asyncio.Task[None]] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for m in maps:
            for fam, addr in _addresses(m.host_ip):
                sock = _listen_socket(m, fam, addr)
                if m.proto == "tcp":
                    accepting.append(asyncio.create_task(_accept_loop(sock, m)))
                else:
                    t, _ = await loop.create_datagram_endpoint(
                        functools.partial(_UdpFront, m), sock=sock)
                    transports.append(t)
    except (BerthError, OSError) as e:
        _report(ready_fd, f"error {e}")
        raise SystemExit(1) from None
    _report(ready_fd, "ok")
    await stop
    for task in accepting:
        task.cancel()
    for tr in transports:
        tr.close()


def _report(fd: int | None, text: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the proxy process (not of the berth CLI)."""
    ap = argparse.ArgumentParser(prog="berth.network.proxy")
    ap.add_argument("--map", action="append", default=[], type=ProxyMap.parse)
    ap.add_argument("--proto", default="tcp", choices=("tcp", "udp"))
    ap.add_argument("--host-ip", default="")
    ap.add_argument("--host-port", type=int)
    ap.add_argument("--container-ip")
    ap.add_argument("--container-port", type=int)
    ap.add_argument("--ready-fd", type=int)
    ap.add_argument("--for", dest="owner", default="", help="owner tag, for ps/leak checks")
    args = ap.parse_args(argv)
    maps: list[ProxyMap] = list(args.map)
    if args.host_port is not None:
        maps.append(ProxyMap(args.proto, args.host_ip, args.host_port, args.container_ip,
                             args.container_port))
    if not maps:
        ap.error("no mapping given")
    try:
        asyncio.run(_serve(maps, args.ready_fd))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


# -- the engine side -------------------------------------------------------------------

def start_proxy(maps: Sequence[ProxyMap], *, timeout: float = 10.0,
                log_path: str | None = None, tag: str = "") -> int:
    """Start a detached proxy for ``maps``; return its pid once every port is bound.

    The process runs in its own session so it outlives the CLI, like the container
    monitor; the caller records the pid and passes it to :func:`stop_proxy`. ``tag``
    (e.g. the container ID) is added to the command line so leak checks can find it.
    """
    rfd, wfd = os.pipe()
    argv = [sys.executable, "-m", "berth.network.proxy", "--ready-fd", str(wfd)]
    argv += [a for m in maps for a in ("--map", m.arg())]
    if tag:
        argv += ["--for", tag]
    log = open(log_path or os.devnull, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(wfd,), start_new_session=True,
                                close_fds=True)
    finally:
        os.close(wfd)
        log.close()
    try:
        answer = _read_line(rfd, timeout)
    finally:
        os.close(rfd)
    if answer != "ok":
        _kill(proc.pid)
        proc.wait()
        msg = answer[6:] if answer.startswith("error ") else "port proxy did not start"
        raise PortAllocated(msg) if "already allocated" in msg else BerthError(msg)
    # Detach: nobody will wait() on it from here; the monitor/stop path uses the pid.
    proc.returncode = 0
    return proc.pid


def _read_line(fd: int, timeout: float) -> str:
    import select

    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


def is_proxy(pid: int) -> bool:
    """True if ``pid`` is still one of our proxies (guards against pid reuse)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"berth.network.proxy" in f.read()
    except OSError:
        return False


def _kill(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_proxy(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM the proxy, SIGKILL after ``timeout``; reap it if it is our child."""
    if not is_proxy(pid):
        return
    _kill(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                return
        time.sleep(0.02)
    _kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


if __name__ == "__main__":
    sys.exit(main())
