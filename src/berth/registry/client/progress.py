"""How pull and push report what they are doing, without printing anything themselves.

The client runs several layer transfers at once on worker threads; it describes each step
through a :class:`Progress` object the caller hands in. The CLI supplies a renderer (rich
bars on a terminal, Docker-style plain lines otherwise); the Python API and the tests pass
nothing and get :class:`NullProgress`. Renderers must be thread-safe: calls arrive from
the download and upload workers concurrently.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receiver of transfer events. ``layer`` is Docker's 12-hex short ID of a blob."""

    def status(self, message: str, layer: str | None = None) -> None:
        """A line of news: about the whole operation, or (with ``layer``) one blob's state
        such as ``Waiting``, ``Download complete`` or ``Layer already exists``."""

    def layer_start(self, layer: str, action: str, total: int | None) -> None:
        """Bytes of ``layer`` begin to move (``Downloading`` / ``Pushing``); ``total`` in bytes."""

    def advance(self, layer: str, n: int) -> None:
        """``n`` more bytes of ``layer`` have moved."""

    def done(self, layer: str, status: str) -> None:
        """``layer`` is finished, with its final state (``Pull complete``, ``Pushed``, ...)."""


class NullProgress:
    """Ignores everything: what library callers get when they pass no renderer."""

    def status(self, message: str, layer: str | None = None) -> None:
        pass

    def layer_start(self, layer: str, action: str, total: int | None) -> None:
        pass

    def advance(self, layer: str, n: int) -> None:
        pass

    def done(self, layer: str, status: str) -> None:
        pass


def short_id(digest: str) -> str:
    """Docker's per-layer label: the first 12 hex digits of the blob digest."""
    return digest.split(":", 1)[-1][:12]
