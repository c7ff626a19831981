"""An export's progress on a terminal: how far through the period, how many readings."""

from __future__ import annotations

import time
from typing import IO

from coldchain.core.times import from_millis

PROGRESS_EVERY = 16_384


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, stream: IO[str], start_ms: int, end_ms: int, enabled: bool | None = None) -> None:
        self.stream = stream
        self.start = start_ms
        self.span = max(1, end_ms - start_ms)
        self.enabled = stream.isatty() if enabled is None else enabled
        self.began = time.monotonic()
        self._drawn = False

    def update(self, t_ms: int, readings: int) -> None:
        if not self.enabled:
            return
        share = min(1.0, max(0.0, (t_ms - self.start) / self.span))
        filled = int(share * 30)
        elapsed = time.monotonic() - self.began
        eta = f" ~{elapsed / share - elapsed:.0f}s left" if share > 0.02 else ""
        day = from_millis(t_ms).strftime("%Y-%m-%d")
        line = f"\rexport [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} {day} {readings:,} readings{eta}   "
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r{text:<90}")
            self.stream.flush()
            self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()
            self._drawn = False
