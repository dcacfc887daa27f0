"""Tar-split: the bytes of a layer tar that are not file contents, so the tar can be rebuilt.

A layer is kept once, as its unpacked tree. What the tree cannot give back — every header
block (with pax and GNU long-name records), the padding after each file, the end-of-archive
blocks and anything after them — is recorded here as it streams past; each regular file's
contents appear only as a reference (its path in the tree and its length). Reading the
record in order, copying raw bytes and splicing file contents back from the tree, yields the
original tar byte for byte, so the diff ID, and therefore image IDs and manifests, stay the
same for ``save`` and ``push`` (containers/storage's tar-split does the same for Podman).

The record is only made when the tree is sure to hold each referenced file's bytes: a path
written twice, a whiteout of a file of the same layer, a sparse member or a path with
``..`` makes the splitter *inexact*, and the caller then keeps the whole tar instead.

Format (zlib-compressed): frames ``R <len> <bytes>`` (raw) and ``F <len> <size:8> <path>``
(file contents), lengths as unsigned LEB128.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from berth.errors import DigestMismatch, InvalidArchive

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # tarfile reads no data blocks for these
_PAX = (b"x", b"X")
_WHITEOUT = b".wh."
MAGIC = b"BTS1"


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _nts(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def _number(field: bytes) -> int:
    """A tar numeric field as tarfile reads it: base-256 or NUL/space-ended octal."""
    if field[:1] in (b"\x80", b"\xff"):
        n = 0
        for c in field[1:]:
            n = (n << 8) | c
        if field[0] == 0xFF:
            n -= 256 ** (len(field) - 1)
        return n
    text = _nts(field).strip()
    return int(text or b"0", 8)


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            break
        if length <= 0:
            break
        rec = data[sp + 1: pos + length - 1]  # drop the trailing newline
        key, _, value = rec.partition(b"=")
        out[key] = value
        pos += length
    return out


def parts_of(path: bytes) -> tuple[bytes, ...] | None:
    """Path components as the layer applier sees them (``()`` for the root itself); None
    for a name it would refuse."""
    if path.startswith(b"/"):
        return None
    parts = tuple(p for p in path.split(b"/") if p not in (b"", b"."))
    return None if b".." in parts else parts


class TarSplitter:
    """Fed the uncompressed tar bytes in order; builds the record and counts file bytes.

    ``content_size`` (the sum of regular file sizes, what the unpacked layer holds) is
    what berth reports as a layer's size, whether or not the layer is unpacked yet.
    With ``record=False`` only that count is kept (verifying a pulled layer).
    """

    def __init__(self, *, record: bool = True) -> None:
        self._record = record
        self._z = zlib.compressobj(6)
        self._out: list[bytes] = [self._z.compress(MAGIC)] if record else []
        self._raw = bytearray()
        self._hdr = bytearray()
        self._state = "header"  # header | data | meta | pad | trailer
        self._left = 0  # bytes left in the current data/meta/pad run
        self._meta = bytearray()
        self._meta_type = b""
        self._pax: dict[bytes, bytes] = {}
        self._longname: bytes | None = None
        self._seen: set[tuple[bytes, ...]] = set()
        self._files: set[tuple[bytes, ...]] = set()
        self._pad_after = 0
        self.content_size = 0
        self.exact = True

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, data: bytes | memoryview) -> None:
        mv = memoryview(data)
        while len(mv):
            st = self._state
            if st == "header":
                take = min(BLOCK - len(self._hdr), len(mv))
                self._hdr += mv[:take]
                mv = mv[take:]
                if len(self._hdr) == BLOCK:
                    block = bytes(self._hdr)
                    self._hdr.clear()
                    self._header(block)
            elif st == "trailer":
                self._raw_bytes(mv)
                return
            else:
                take = min(self._left, len(mv))
                chunk = mv[:take]
                mv = mv[take:]
                self._left -= take
                if st == "meta":
                    self._raw_bytes(chunk)
                    self._meta += chunk
                elif st == "pad":
                    self._raw_bytes(chunk)
                # "data": file contents, which the tree keeps
                if self._left == 0:
                    self._end_run()

    def _raw_bytes(self, b: bytes | memoryview) -> None:
        if self._record:
            self._raw += b
            if len(self._raw) >= 1 << 16:
                self._flush_raw()

    def _flush_raw(self) -> None:
        if self._raw:
            self._out.append(self._z.compress(b"R" + _leb(len(self._raw)) + bytes(self._raw)))
            self._raw.clear()

    def _file_frame(self, path: bytes, size: int) -> None:
        if self._record:
            self._flush_raw()
            body = size.to_bytes(8, "big") + path
            self._out.append(self._z.compress(b"F" + _leb(len(body)) + body))

    def _run(self, state: str, n: int) -> None:
        self._state, self._left = state, n
        if n == 0:
            self._end_run()

    def _end_run(self) -> None:
        if self._state == "meta":
            self._finish_meta()
        if self._state in ("meta", "data") and self._pad_after:
            pad, self._pad_after = self._pad_after, 0
            self._state, self._left = "pad", pad
            return
        self._state, self._left = "header", 0

    # -- one header block ----------------------------------------------------------------------
    def _header(self, block: bytes) -> None:
        self._raw_bytes(block)
        if block == bytes(BLOCK):
            self._state = "trailer"  # tarfile stops at the first zero block; the rest is raw
            return
        typ = block[156:157]
        try:
            size = _number(block[124:136])
        except ValueError:
            self.exact = False
            self._state = "trailer"
            return
        pad = -size % BLOCK
        if typ in _PAX or typ == b"g" or typ in (b"L", b"K"):
            self._meta_type = typ
            self._meta.clear()
            self._pad_after = pad
            self._run("meta", size)
            return
        name = self._name(block, typ)
        pax, self._pax = self._pax, {}
        self._longname = None
        if b"size" in pax:
            try:
                size = int(pax[b"size"])
            except ValueError:
                self.exact = False
            pad = -size % BLOCK
        if typ == b"\0" and name.endswith(b"/"):
            typ = b"5"  # tarfile: an old-style file named like a directory is one
        parts = parts_of(name)
        if parts is None or (not parts and typ in _REGULAR):
            self.exact = False
        elif parts:
            self._note(parts)
        if typ in _REGULAR:
            if any(k.startswith(b"GNU.sparse") for k in pax):
                self.exact = False
            self.content_size += size
            # a whiteout is no file of the tree (unpacked as a 0/0 device or an xattr):
            # its (empty) body stays in the record as raw bytes
            if parts is not None and self.exact and not parts[-1].startswith(_WHITEOUT):
                self._files.add(parts)
                self._file_frame(b"/".join(parts), size)
                self._pad_after = pad
                self._run("data", size)
            else:  # contents the tree may not give back: keep the run as raw bytes
                self._pad_after = 0
                self._run("pad", size + pad)
        elif typ in _NO_DATA:
            self._state = "header"
        else:  # sparse or unknown types: tarfile skips their data blocks
            self.exact = False
            self._pad_after = 0
            self._run("pad", size + pad)

    def _name(self, block: bytes, typ: bytes) -> bytes:
        if b"path" in self._pax:
            return self._pax[b"path"]
        if self._longname is not None:
            return self._longname
        name = _nts(block[0:100])
        if block[257:265] == b"ustar\x0000":
            prefix = _nts(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        return name

    def _note(self, parts: tuple[bytes, ...]) -> None:
        """A path this layer writes: rewriting (or whiting out) a file breaks exactness."""
        last = parts[-1]
        target = parts[:-1] + (last[len(_WHITEOUT):],) if last.startswith(_WHITEOUT) else parts
        if parts in self._files or target in self._files:
            self.exact = False
        self._seen.add(parts)

    def _finish_meta(self) -> None:
        data = bytes(self._meta)
        if self._meta_type in _PAX:
            self._pax = _pax_records(data)
        elif self._meta_type == b"g":
            if any(k in (b"path", b"size") or k.startswith(b"GNU.sparse")
                   for k in _pax_records(data)):
                self.exact = False
        elif self._meta_type == b"L":
            self._longname = _nts(data)

    # -- result --------------------------------------------------------------------------------
    def finish(self) -> bytes | None:
        """The compressed record, or None when the tree cannot rebuild this tar exactly."""
        if self._state not in ("header", "trailer") or self._hdr:
            self.exact = False  # ended inside a member: a truncated tar
        if not (self._record and self.exact):
            return None
        self._flush_raw()
        self._out.append(self._z.flush())
        return b"".join(self._out)


def frames(record: BinaryIO) -> Iterator[tuple[bytes, bytes | int]]:
    """(``b"R"``, raw bytes) and (path, size) pairs of a stored record, in order."""
    d = zlib.decompressobj()
    buf = bytearray()
    eof = False

    def need(n: int) -> bool:
        nonlocal eof
        while len(buf) < n and not eof:
            chunk = record.read(1 << 16)
            if not chunk:
                buf.extend(d.flush())
                eof = True
            else:
                buf.extend(d.decompress(chunk))
        return len(buf) >= n

    if not need(len(MAGIC)) or bytes(buf[:4]) != MAGIC:
        raise InvalidArchive("layer record: not a tar-split record")
    del buf[:4]
    while need(1):
        tag = bytes(buf[:1])
        n, shift, i = 0, 0, 1
        while True:
            if not need(i + 1):
                raise InvalidArchive("layer record: truncated")
            b = buf[i]
            n |= (b & 0x7F) << shift
            shift += 7
            i += 1
            if not b & 0x80:
                break
        if not need(i + n):
            raise InvalidArchive("layer record: truncated")
        body = bytes(buf[i:i + n])
        del buf[:i + n]
        if tag == b"R":
            yield b"R", body
        elif tag == b"F":
            yield body[8:], int.from_bytes(body[:8], "big")
        else:
            raise InvalidArchive("layer record: unknown frame")


class RebuiltTar:
    """A readable stream of the original tar: record frames with file bytes from the tree.

    ``open_file(path)`` opens a file of the tree (the caller resolves it inside the tree).
    Every byte is hashed; at the end the digest must be ``diff_id``, so a tree changed
    after its record was made can never pass for the layer.
    """

    def __init__(self, record: BinaryIO, open_file: Callable[[bytes], BinaryIO],
                 diff_id: str | None) -> None:
        self._record = record
        self._frames = frames(record)
        self._open = open_file
        self._diff_id = diff_id
        self._h = hashlib.sha256()
        self._buf = b""
        self._file: BinaryIO | None = None
        self._file_left = 0
        self._path = b""
        self._done = False
        self.size = 0

    def _next_chunk(self) -> bytes:
        while True:
            if self._file is not None:
                if self._file_left == 0:
                    self._close_file()
                    continue
                data = self._file.read(min(self._file_left, 1 << 20))
                if not data:
                    self._close_file()
                    raise DigestMismatch(f"layer file {self._path.decode(errors='replace')}"
                                         " is shorter than when the layer was stored")
                self._file_left -= len(data)
                return data
            try:
                what, val = next(self._frames)
            except StopIteration:
                return b""
            if what == b"R":
                assert isinstance(val, bytes)
                return val
            assert isinstance(val, int)
            self._path = what
            self._file = self._open(what)
            self._file_left = val

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, n: int = -1) -> bytes:
        out = [self._buf] if self._buf else []
        have = len(self._buf)
        self._buf = b""
        while (n < 0 or have < n) and not self._done:
            chunk = self._next_chunk()
            if not chunk:
                self._finish()
                break
            self._h.update(chunk)
            self.size += len(chunk)
            out.append(chunk)
            have += len(chunk)
        data = b"".join(out)
        if n >= 0 and len(data) > n:
            data, self._buf = data[:n], data[n:]
        return data

    def _finish(self) -> None:
        self._done = True
        digest = "sha256:" + self._h.hexdigest()
        if self._diff_id is not None and digest != self._diff_id:
            raise DigestMismatch(f"layer {self._diff_id} rebuilt from its files has digest "
                                 f"{digest}: the layer's files were changed")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._close_file()
        self._record.close()

    def __enter__(self) -> RebuiltTar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
