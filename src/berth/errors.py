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
