"""The distribution spec's error codes, as one exception the HTTP layer turns into JSON.

Handlers raise :class:`ApiError` wherever they notice a problem; a single middleware
renders it as ``{"errors": [{"code", "message", "detail"}]}`` with the right status. That
keeps every error body in the spec's shape and makes "never a 500 for bad input" a matter
of raising the right class, not of each handler remembering to format a response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# The spec's codes (code-1 .. code-14) with its one-line descriptions as default messages.
CODES: dict[str, str] = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown to registry",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "the operation is unsupported",
    "TOOMANYREQUESTS": "too many requests",
}


class ApiError(Exception):
    """One failed request: HTTP status, spec error code, message, detail, extra headers."""

    def __init__(self, status: int, code: str, message: str | None = None, *,
                 detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        if code not in CODES:  # a typo here would put a non-spec code on the wire
            raise ValueError(f"not a distribution error code: {code}")
        super().__init__(message or CODES[code])
        self.status = status
        self.code = code
        self.message = message or CODES[code]
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        """The spec's JSON error document for this error."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        return json.dumps({"errors": [err]}).encode()


def digest_invalid(message: str, **kw: Any) -> ApiError:
    """400 DIGEST_INVALID: the shape every malformed or mismatched digest takes."""
    return ApiError(400, "DIGEST_INVALID", message, **kw)


def blob_unknown(digest: str) -> ApiError:
    return ApiError(404, "BLOB_UNKNOWN", detail={"digest": digest})


def upload_unknown(uuid: str) -> ApiError:
    return ApiError(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": uuid})


def manifest_unknown(reference: str) -> ApiError:
    return ApiError(404, "MANIFEST_UNKNOWN", detail={"reference": reference})


def name_unknown(name: str) -> ApiError:
    return ApiError(404, "NAME_UNKNOWN", detail={"name": name})
