"""Build-cache keys: when may a step reuse a layer from an earlier build?

A step is reused when *everything that could change its result* is the same:

* the parent — the image ID (or the previous step's key) it runs on;
* the instruction text after variable expansion (so ``COPY . $DIR`` with a new ``DIR``
  misses, and a changed here-doc body misses);
* the build args that step actually sees — the ARGs declared in scope for a RUN (they are
  its environment); undeclared predefined proxy args are left out on purpose, so moving to
  another proxy does not throw the cache away (Docker's documented behaviour);
* for COPY/ADD, the content hash of the sources (:meth:`BuildContext.content_hash`), which
  covers bytes, modes and owners but not mtimes;
* anything else the executor knows matters (``extra``: platform, ``--chown`` resolution,
  a remote URL's digest ...).

The key is the sha256 of a canonical JSON document, so it is stable across runs, Python
versions and dict orderings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["step_cache_key", "CACHE_KEY_VERSION"]

# Bump when the meaning of a key changes, so old cache rows simply stop matching.
CACHE_KEY_VERSION = 1


def step_cache_key(parent_chain_or_image_id: str, instruction_text_after_expansion: str,
                   used_build_args: Mapping[str, str] | None = None,
                   sources_hash: str | None = None,
                   extra: Mapping[str, Any] | None = None) -> str:
    """``sha256:<hex>`` identifying one step's inputs (see the module docstring)."""
    doc = {
        "version": CACHE_KEY_VERSION,
        "parent": parent_chain_or_image_id,
        "instruction": instruction_text_after_expansion,
        "build_args": dict(sorted((used_build_args or {}).items())),
        "sources": sources_hash,
        "extra": extra or {},
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()
