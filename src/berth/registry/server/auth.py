"""HTTP Basic authentication against an htpasswd file of bcrypt hashes.

Docker's own registry uses the same file format (``htpasswd -B``), so an existing file
works unchanged. bcrypt is slow on purpose (tens of milliseconds), and a single ``podman
push`` sends dozens of requests each carrying the same credentials, so verified pairs are
remembered (as a salted hash, never the password) and checks run off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os

import bcrypt

from berth.errors import InvalidArgument

REALM = "berth-registry"
CHALLENGE = f'Basic realm="{REALM}"'


class Htpasswd:
    """Users and bcrypt hashes from one htpasswd file."""

    def __init__(self, path: str) -> None:
        self.users: dict[str, bytes] = {}
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise InvalidArgument(f"cannot read htpasswd file {path}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise InvalidArgument(
                    f"{path}:{n}: only bcrypt entries are supported (create with 'htpasswd -B')")
            self.users[user] = hashed.encode()
        self._salt = os.urandom(16)
        self._verified: set[bytes] = set()

    def _key(self, user: str, password: bytes) -> bytes:
        return hashlib.sha256(self._salt + user.encode() + b"\0" + password).digest()

    async def check(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries a valid user and password."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user_b, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
            user = user_b.decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return False
        key = self._key(user, password)
        if key in self._verified:
            return True
        ok = await asyncio.get_running_loop().run_in_executor(
            None, bcrypt.checkpw, password, hashed)
        if ok:
            self._verified.add(key)
        return ok
