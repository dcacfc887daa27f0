"""Docker credential helpers: ``docker-credential-NAME get|store|erase``.

When ``config.json`` names a helper — ``credHelpers`` per registry, or ``credsStore`` for all —
Docker never writes the password into the file: it hands it to the helper (the OS keychain,
``pass``, the Secret Service), and asks the helper for it again when needed. berth speaks the
same protocol, so a password stored by ``docker login`` is found by ``berth pull`` and the
other way round:

* ``get``: stdin is the server URL, stdout is ``{"ServerURL", "Username", "Secret"}``; a
  helper that knows nothing prints ``credentials not found in native keychain`` and exits 1.
* ``store``: stdin is ``{"ServerURL", "Username", "Secret"}``.
* ``erase``: stdin is the server URL.

A helper that is missing, hangs or fails is a one-line error naming it; the password is
never logged and never falls back into the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from berth.errors import RegistryError

HELPER_PREFIX = "docker-credential-"
TIMEOUT_S = 30
_NOT_FOUND = "credentials not found"


def _run(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(HELPER_PREFIX + helper)
    if exe is None:
        raise RegistryError(f"credential helper {HELPER_PREFIX}{helper} not found in PATH "
                            "(configured in config.json)")
    try:
        return subprocess.run([exe, action], input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"credential helper {HELPER_PREFIX}{helper} {action} timed out "
                            f"after {TIMEOUT_S}s") from None
    except OSError as e:
        raise RegistryError(f"credential helper {HELPER_PREFIX}{helper}: {e.strerror}") from None


def _failure(helper: str, action: str, proc: subprocess.CompletedProcess[str]) -> RegistryError:
    text = (proc.stdout.strip() or proc.stderr.strip() or f"exit status {proc.returncode}")
    return RegistryError(f"error {'getting' if action == 'get' else action + 'ing'} "
                         f"credentials from {HELPER_PREFIX}{helper}: {text.splitlines()[0]}")


def get(helper: str, server_url: str) -> tuple[str, str] | None:
    """``(username, secret)`` the helper holds for ``server_url``, or None if it has none."""
    proc = _run(helper, "get", server_url)
    if proc.returncode != 0:
        if _NOT_FOUND in (proc.stdout + proc.stderr).lower():
            return None
        raise _failure(helper, "get", proc)
    try:
        doc = json.loads(proc.stdout)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"credential helper {HELPER_PREFIX}{helper} returned malformed "
                            "output for get") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise RegistryError(f"credential helper {HELPER_PREFIX}{helper} returned malformed "
                            "output for get")
    return (user, secret) if secret else None


def store(helper: str, server_url: str, username: str, secret: str) -> None:
    """Hand the credentials to the helper."""
    payload = json.dumps({"ServerURL": server_url, "Username": username, "Secret": secret})
    proc = _run(helper, "store", payload)
    if proc.returncode != 0:
        raise _failure(helper, "store", proc)


def erase(helper: str, server_url: str) -> bool:
    """Ask the helper to forget ``server_url``; False when it held nothing."""
    proc = _run(helper, "erase", server_url)
    if proc.returncode != 0:
        if _NOT_FOUND in (proc.stdout + proc.stderr).lower():
            return False
        raise _failure(helper, "erase", proc)
    return True
