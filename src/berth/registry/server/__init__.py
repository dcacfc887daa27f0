"""``berth registry serve``: an OCI distribution v1.1 registry over a plain directory.

Public surface: :func:`make_app` (an aiohttp application, for embedding and tests),
:func:`serve` (run in the foreground) and :func:`collect_garbage` (``registry gc``).
"""

from berth.registry.server.app import make_app
from berth.registry.server.gc import collect_garbage
from berth.registry.server.serve import serve

__all__ = ["make_app", "serve", "collect_garbage"]
