"""berth: a container engine with Docker's workflow and formats, daemonless, on crun/runc.

The public Python API is :class:`berth.Engine`. It is imported lazily so that
``import berth`` (and the CLI's start-up) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Engine", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from berth.engine import Engine


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from berth.engine import Engine

        return Engine
    raise AttributeError(name)
