"""Restart policies without a daemon: what to do when a container's process exits.

Nothing of berth stays resident. conmon runs ``berth container cleanup ID`` as its
``--exit-command`` when the container exits; that short-lived process records the exit
and asks :func:`decide` whether to start the container again, sleeping Docker's backoff
(:func:`delay`) first. A container the user stopped (``stop``/``kill``) is never brought
back, which is Docker's behaviour for ``always`` and ``unless-stopped`` alike while the
engine is up (they differ only across a daemon restart, which berth does not have).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgument

POLICIES = ("no", "on-failure", "always", "unless-stopped")
BASE_DELAY = 0.1      # Docker's restart manager: 100 ms, doubled per restart ...
MAX_DELAY = 60.0      # ... capped at one minute ...
RESET_AFTER = 10.0    # ... and reset when the container ran at least 10 s.


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    def to_docker(self) -> dict[str, object]:
        """HostConfig.RestartPolicy; Docker shows ``""`` for an unset policy as ``no``."""
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}


def parse(text: str | None) -> RestartPolicy:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]`` (Docker's syntax)."""
    if not text:
        return RestartPolicy()
    name, sep, count = text.partition(":")
    if name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if sep:
        if name != "on-failure":
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy "
                                  f"'{name}'")
        try:
            n = int(count)
        except ValueError:
            raise InvalidArgument(f"invalid restart policy format: maximum retry count must "
                                  f"be an integer: {count!r}") from None
        if n < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be "
                                  "negative")
        return RestartPolicy(name, n)
    return RestartPolicy(name, 0)


def from_dict(d: dict | None) -> RestartPolicy:
    d = d or {}
    return RestartPolicy(d.get("Name") or "no", int(d.get("MaximumRetryCount") or 0))


def decide(policy: RestartPolicy, exit_code: int, restart_count: int,
           manually_stopped: bool) -> bool:
    """Whether a container that just exited with ``exit_code`` is started again."""
    if manually_stopped or policy.name == "no":
        return False
    if policy.name == "on-failure":
        if exit_code == 0:
            return False
        return policy.maximum_retry_count == 0 or restart_count < policy.maximum_retry_count
    return True


def delay(previous: float, ran_for: float) -> float:
    """Seconds to wait before the next start, given the wait before the last one (0: none).

    Docker's restart manager keeps its timeout across restarts: 100 ms, doubled each time,
    and back to 100 ms (then doubling again) after a run of 10 s or more. Deriving it from
    the restart count instead would jump straight back to the long waits after a reset.
    """
    if previous <= 0 or ran_for >= RESET_AFTER:
        return BASE_DELAY
    return min(MAX_DELAY, previous * 2)
