"""What a build reports while it runs: events for a renderer the caller owns.

Nothing under ``engine.py`` prints, yet a user wants to watch a build step by step and see
a RUN's output as it comes. So the executor calls a :class:`BuildProgress` object; the CLI
passes one that renders Docker's classic ``Step 2/5 : ...`` / ``---> Using cache`` text or
BuildKit's ``#3 [2/5] ...`` / ``#3 CACHED`` plain text, a test passes a recorder, and the
Python API defaults to :class:`NullProgress`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


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


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class ClassicProgress(BuildProgress):
    """Docker's classic builder text, written to ``out`` (the CLI's stdout, or the API's
    ``{"stream": ...}`` messages)."""

    _cid: str | None  # set by running(); absent until the first RUN step

    def __init__(self, out: Any = None) -> None:
        self.out = out if out is not None else sys.stdout
        self._line_open = False

    def _w(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _close_line(self) -> None:
        if self._line_open:
            self._w("\n")
            self._line_open = False

    def step(self, ref: StepRef) -> None:
        self._w(f"Step {ref.number}/{ref.total} : {ref.text}\n")

    def base(self, ref: StepRef, image_id: str | None) -> None:
        if image_id:
            self._w(f" ---> {short_id(image_id)}\n")

    def cached(self, ref: StepRef, image_id: str) -> None:
        self._w(f" ---> Using cache\n ---> {short_id(image_id)}\n")

    def running(self, ref: StepRef, container_id: str) -> None:
        self._w(f" ---> Running in {container_id}\n")
        self._cid = container_id

    def output(self, ref: StepRef, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        self._w(text)
        self._line_open = not text.endswith("\n")

    def done(self, ref: StepRef, image_id: str, seconds: float) -> None:
        self._close_line()
        cid = getattr(self, "_cid", None)
        if cid:
            self._w(f"Removing intermediate container {cid}\n")
            self._cid = None
        if image_id:
            self._w(f" ---> {short_id(image_id)}\n")

    def warning(self, message: str) -> None:
        self._w(message + "\n")

    def built(self, image_id: str, tags: list[str]) -> None:
        self._w(f"Successfully built {short_id(image_id)}\n")
        for t in tags:
            self._w(f"Successfully tagged {t}\n")
