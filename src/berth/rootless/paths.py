"""Where a non-root user's store lives: XDG dirs, as Podman's rootless storage.

* store:    ``$XDG_DATA_HOME/berth`` (default ``~/.local/share/berth``)
* run root: ``$XDG_RUNTIME_DIR/berth`` (fallback ``/tmp/berth-UID``, which must be ours)
* config:   ``$XDG_CONFIG_HOME/berth`` (default ``~/.config/berth``)

Explicit ``--root``/``--runroot`` (or ``BERTH_ROOT``/``BERTH_RUNROOT``) win, as for root.
Inside the namespace the process is uid 0, so the *host* uid comes from the uid map.
"""

from __future__ import annotations

import os
import pwd

from ..errors import InvalidArgument


def host_uid() -> int:
    """The user's uid on the host: euid outside the namespace, the map of 0 inside it."""
    from . import in_userns

    if not in_userns():
        return os.geteuid()
    with open("/proc/self/uid_map", encoding="ascii") as f:
        for line in f:
            inside, outside, _count = (int(x) for x in line.split())
            if inside == 0:
                return outside
    return os.geteuid()


def _home() -> str:
    home = os.environ.get("HOME")
    if home and home.startswith("/"):
        return home
    return pwd.getpwuid(host_uid()).pw_dir


def _xdg(var: str, fallback: str) -> str:
    v = os.environ.get(var, "")
    return v if v.startswith("/") else os.path.join(_home(), fallback)


def default_root() -> str:
    return os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), "berth")


def config_dir() -> str:
    return os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "berth")


def default_runroot() -> str:
    """``$XDG_RUNTIME_DIR/berth``, else ``/tmp/berth-UID`` (refused unless it is ours, 0700).

    ``/tmp`` is shared: another user could make ``/tmp/berth-1000`` first and watch or
    swap our sockets, so an existing directory is accepted only when it is ours alone.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/") and os.path.isdir(xdg) and os.access(xdg, os.W_OK | os.X_OK):
        return os.path.join(xdg, "berth")
    uid = host_uid()
    path = f"/tmp/berth-{uid}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    import stat

    if not stat.S_ISDIR(st.st_mode) or (os.geteuid() != 0 and st.st_uid != uid) \
            or st.st_mode & 0o077:
        raise InvalidArgument(f"run root {path} is not a directory owned by uid {uid} with "
                              "mode 0700: remove it or set XDG_RUNTIME_DIR", exit_code=125)
    return path


def resolve(root: str | None, runroot: str | None) -> tuple[str, str]:
    """Absolute (root, runroot), defaults filled in, both created 0700 (store is private)."""
    root = os.path.abspath(root or os.environ.get("BERTH_ROOT") or default_root())
    runroot = os.path.abspath(runroot or os.environ.get("BERTH_RUNROOT") or default_runroot())
    for d in (root, runroot):
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
        except OSError as e:
            raise InvalidArgument(f'cannot create "{d}": {(e.strerror or str(e)).lower()}',
                                  exit_code=125) from None
    try:
        if os.stat(root).st_mode & 0o077:
            os.chmod(root, 0o700)  # private to its user, even if made by hand before
    except OSError:
        pass
    return root, runroot
