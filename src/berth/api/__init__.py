"""The Docker Engine API v1.41 service (``berth system service``): a thin aiohttp adapter
over :class:`~berth.engine.Engine`. Imported only by that command, never on the ``run`` path.
"""

from berth.api.server import ServiceOptions, make_app, serve

__all__ = ["ServiceOptions", "make_app", "serve"]
