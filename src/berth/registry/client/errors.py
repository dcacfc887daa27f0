"""Turning a registry's error responses into the one-line messages Docker users know.

The distribution spec puts ``{"errors": [{"code": "MANIFEST_UNKNOWN", "message": ...}]}``
in error bodies; Docker prints each as ``manifest unknown: <message>``. Reading the body is
best-effort: proxies answer with HTML, and a HEAD has no body at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import httpx

_MAX_ERROR_BODY = 64 * 1024


def error_text(resp: httpx.Response) -> str:
    """``code: message`` pairs from an error body, joined by ``; `` (empty if none)."""
    try:
        raw = resp.read()[:_MAX_ERROR_BODY]
        doc = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RuntimeError):
        return ""
    parts = []
    items = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(items, list):
        for e in items:
            if not isinstance(e, dict):
                continue
            code = str(e.get("code") or "").lower().replace("_", " ")
            msg = str(e.get("message") or "")
            parts.append(f"{code}: {msg}" if code and msg else code or msg)
    elif isinstance(doc, dict) and isinstance(doc.get("details") or doc.get("error"), str):
        parts.append(str(doc.get("details") or doc.get("error")))
    return "; ".join(p for p in parts if p)


def describe_status(resp: httpx.Response) -> str:
    """What went wrong, from the body when it says, else from the status line."""
    return error_text(resp) or f"{resp.status_code} {resp.reason_phrase}".strip()
