"""Typed errors: one place that decides what a failure looks like to a user.

Every layer below the CLI raises these instead of printing. Each carries the one-line
message a user sees (the CLI prefixes ``Error: ``), the exit code Docker would use, and the
HTTP status the API and registry server answer with. Keeping all three together means the
CLI, the API and the registry never have to guess how serious an exception is.
"""

from __future__ import annotations


class BerthError(Exception):
    """Base of every error berth reports to a user.

    ``exit_code`` follows Docker: 1 for a failed command; ``run``/``create`` remap engine
    failures to 125 (see :class:`EngineFailure`), 126 (cannot invoke) and 127 (not found).
    """

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, exit_code: int | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code
        if http_status is not None:
            self.http_status = http_status

    def __str__(self) -> str:
        return self.message


class InvalidArgument(BerthError):
    """The caller asked for something malformed (flag value, filter, option)."""

    http_status = 400


class InvalidReference(InvalidArgument):
    """An image reference that does not parse: Docker's ``invalid reference format``."""


class NotFound(BerthError):
    """A named image, container, volume, network or blob does not exist."""

    http_status = 404


class Conflict(BerthError):
    """The request clashes with the current state (name in use, image in use, ...)."""

    http_status = 409


class PortAllocated(Conflict):
    """A host port another container (or any process) holds: Docker's ``port is already
    allocated``. Its own type so ``run`` can tell it from other start failures and remove
    the container it made, as when ``create`` catches the clash itself."""


class DigestMismatch(InvalidArgument):
    """Bytes did not hash to the digest (or size) they were announced with."""


class InvalidDigest(InvalidArgument):
    """A string that is not a well-formed ``algorithm:hex`` digest or ID."""


class UnsafeLayer(InvalidArgument):
    """A layer tar tried to escape its root or is otherwise malicious or malformed."""


class InvalidArchive(InvalidArgument):
    """An image archive (docker-archive, oci-archive, rootfs tar) that cannot be read."""


class InvalidManifest(InvalidArgument):
    """A manifest, index or config that violates the OCI/Docker image spec."""


class RuntimeFailure(BerthError):
    """The OCI runtime (crun/runc) or the monitor failed before the container ran."""

    exit_code = 125


class CannotInvoke(BerthError):
    """The container command exists but cannot be executed (Docker's 126)."""

    exit_code = 126


class CommandNotFound(BerthError):
    """The container command does not exist (Docker's 127)."""

    exit_code = 127


class RegistryError(BerthError):
    """A registry answered with an error or could not be reached."""


class Unauthorized(RegistryError):
    """The registry refused our credentials."""

    http_status = 401


class ArchiveDigestMismatch(InvalidArchive, DigestMismatch):
    """A blob inside an image archive does not hash to the digest its name or descriptor claims.

    Both an archive problem and a digest problem, so callers catching either see it.
    """


class RegistryUnreachable(RegistryError):
    """The registry could not be reached at all (DNS, refused connection, TLS handshake)."""

    http_status = 502


class ManifestUnknown(RegistryError):
    """The registry has no manifest for the tag or digest asked for."""

    http_status = 404


class DockerfileError(InvalidArgument):
    """A Dockerfile that does not parse or violates an instruction's rules.

    The message names the file and line (``Dockerfile:7: unknown instruction: RUNN``) so the
    user can jump straight to the culprit; build planning errors reuse it for the same reason.
    """


class NoSpace(BerthError):
    """The filesystem holding the store (or the user's quota on it) is full.

    Raised by :func:`translate` for ``ENOSPC``/``EDQUOT`` and for SQLite's full-disk errors,
    so every layer can let those escape and the user still reads one line.
    """

    http_status = 507
    MESSAGE = "no space left on device"


_NO_SPACE_ERRNOS = (28, 122)  # ENOSPC, EDQUOT
# What SQLite says when the WAL or its shared-memory index cannot grow on a full disk.
_NO_SPACE_SQLITE = ("database or disk is full", "disk i/o error")


def is_no_space(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) means the disk or quota is full."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 8:
        if isinstance(cur, NoSpace):
            return True
        if isinstance(cur, OSError) and cur.errno in _NO_SPACE_ERRNOS:
            return True
        if type(cur).__module__ == "sqlite3" and \
                any(m in str(cur).lower() for m in _NO_SPACE_SQLITE):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def translate(e: BaseException) -> BaseException:
    """``e`` as the typed error a user should see when it is a known environmental failure.

    The one place that turns a full disk (``OSError`` ENOSPC/EDQUOT, SQLite's "database or
    disk is full"/"disk I/O error") into ``no space left on device``; the CLI, the API and
    the multi-container commands all call it, so no traceback escapes from any of them.
    Anything else is returned unchanged.
    """
    if is_no_space(e):
        return e if isinstance(e, NoSpace) else NoSpace(NoSpace.MESSAGE)
    if isinstance(e, BerthError):
        return e
    if isinstance(e, OSError) and e.errno == 30:  # EROFS
        return BerthError(f"{e.filename}: read-only file system" if e.filename
                          else "read-only file system")
    return e
