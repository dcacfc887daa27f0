"""Docker's detach keys: ``--detach-keys`` parsing and the escape filter on a tty's input.

Docker's format is a comma-separated key list, each ``ctrl-X`` (X one of ``a-z @ [ \\ ] ^ _``)
or a single character; the default is ``ctrl-p,ctrl-q``. As Docker's escape proxy does,
the filter holds back input that could be the start of the sequence and forwards it only
once the sequence is broken, so the container never sees half of a detach.
"""

from __future__ import annotations

from ..errors import InvalidArgument

DEFAULT = b"\x10\x11"  # ctrl-p ctrl-q
MESSAGE = "read escape sequence"  # what Docker's CLI says when the user detached
_CTRL = "abcdefghijklmnopqrstuvwxyz@[\\]^_"


def parse(text: str | None) -> bytes:
    """``"ctrl-p,ctrl-q"`` -> ``b"\\x10\\x11"``; None or ``""`` -> Docker's default."""
    if not text:
        return DEFAULT
    out = bytearray()
    for key in text.split(","):
        k = key.strip()
        if len(k) == 1:
            out.append(ord(k))
        elif k.lower().startswith("ctrl-") and len(k) == 6 and k[5].lower() in _CTRL:
            c = k[5].lower()
            out.append(ord(c) - ord("a") + 1 if c.isalpha() else ord(c) & 0x1F)
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class EscapeFilter:
    """Feed it input chunks; it returns what to forward and whether the user detached."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for b in data:
            self.held += bytes([b])
            if self.keys.startswith(self.held):
                if self.held == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            # broken: forward the held bytes, keeping any suffix that restarts the sequence
            while self.held and not self.keys.startswith(self.held):
                out.append(self.held[0])
                self.held = self.held[1:]
        return bytes(out), False
