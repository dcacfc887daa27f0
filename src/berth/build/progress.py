"""What a build reports while it runs: events for a renderer the caller owns.

Nothing under ``engine.py`` prints, yet a user wants to watch a build step by step and see
a RUN's output as it comes. So the executor calls a :class:`BuildProgress` object; the CLI
passes one that renders Docker's classic ``Step 2/5 : ...`` / ``---> Using cache`` text or
BuildKit's ``#3 [2/5] ...`` / ``#3 CACHED`` plain text, a test passes a recorder, and the
Python API defaults to :class:`NullProgress`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepRef:
    """Where a step sits: its number in the whole build and in its stage."""

    number: int          # 1-based over every step of every built stage (FROM included)
    total: int
    stage: str           # stage name, or its index as text
    index: int           # 1-based inside the stage (FROM is 1)
    stage_total: int
    text: str            # the instruction as the user wrote it (expanded where Docker does)
    line: int = 0


class BuildProgress:
    """Callbacks the executor makes, in order, for each step. All optional to override."""

    def step(self, ref: StepRef) -> None:
        """A step starts."""

    def base(self, ref: StepRef, image_id: str | None) -> None:
        """A FROM resolved to ``image_id`` (None: scratch)."""

    def cached(self, ref: StepRef, image_id: str) -> None:
        """The step was found in the build cache; no work is done."""

    def running(self, ref: StepRef, container_id: str) -> None:
        """A RUN step's container starts."""

    def output(self, ref: StepRef, data: bytes) -> None:
        """A chunk of a RUN step's stdout/stderr (whole lines when possible)."""

    def done(self, ref: StepRef, image_id: str, seconds: float) -> None:
        """The step made ``image_id``."""

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the build."""

    def built(self, image_id: str, tags: list[str]) -> None:
        """The build finished; ``tags`` (familiar names) now point at ``image_id``."""


class NullProgress(BuildProgress):
    """Reports nothing (the Python API default)."""
