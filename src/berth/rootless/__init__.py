"""Rootless berth: an ordinary user runs containers whose root is that user, not host root.

The model is Podman's. A non-root CLI (euid != 0) first *enters* the store's user namespace
(:func:`enter`): one long-lived "pause" process (``catatonit -P``) per run root holds a user
namespace, made with the distribution's setuid ``newuidmap``/``newgidmap`` from the user's
``/etc/subuid`` and ``/etc/subgid`` ranges, plus a mount namespace; every berth command joins
both with ``setns`` (no re-exec, so it costs a few syscalls). Inside, berth is uid 0 with
capabilities over the namespace only: overlay mounts, ``chown`` while unpacking layers, and
runc work as they do for root, while every file and process stays the user's on the host.

Nothing here is imported on root's path: callers ask :func:`berth.procs.rootless` (euid,
then one small procfs file) and import :mod:`berth.rootless` only when it says yes.
"""

from __future__ import annotations

import os

__all__ = ["active", "enter", "in_userns"]


# Children berth starts inside the namespace (conmon's exit command, ``container cleanup``)
# have euid 0 there, so in_userns(), not euid, tells them they are rootless.
from ..procs import in_userns


def active() -> bool:
    """Whether this process is a rootless berth: a non-root user, or inside its namespace."""
    from ..procs import rootless

    return rootless()


def enter(root: str | None, runroot: str | None) -> tuple[str, str]:
    """Resolve the user's store paths, make them (0700) and join the store's namespaces.

    Returns ``(root, runroot)`` as absolute paths; after it returns the process is uid 0 in
    the store's user namespace and in its mount namespace. A no-op join when already inside.
    """
    from . import paths, userns

    root, runroot = paths.resolve(root, runroot)
    if os.geteuid() != 0:
        userns.join(runroot, root)
    return root, runroot

