"""Progress of a pull: bytes, speed and time left, as a line redrawn on stderr (CLI)
or as a fraction and a phrase (the page's gr.Progress)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

REDRAW_S = 0.25


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def human_seconds(s: float) -> str:
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Counts bytes of one pull (those already on disk included) and says how far it
    is; `report(fraction, line)` is called at most every REDRAW_S seconds."""

    def __init__(self, total: int, done: int, report: Callable[[float, str], None]):
        self.total, self.done, self._report = total, done, report
        self._started, self._start_bytes = time.monotonic(), done
        self._last = 0.0
        self._lock = threading.Lock()
        self.current = ""

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last < REDRAW_S:
                return
            self._last = now
        self._report(self.fraction, self.line())

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def speed(self) -> float:
        elapsed = time.monotonic() - self._started
        return (self.done - self._start_bytes) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        speed = self.speed()
        eta = human_seconds((self.total - self.done) / speed) if speed > 0 else "?"
        return (
            f"{human_bytes(self.done)} / {human_bytes(self.total)} {self.fraction:4.0%} "
            f"{human_bytes(speed)}/s ETA {eta} {self.current}"
        )


def stderr_bar(fraction: float, line: str) -> None:
    width = 24
    filled = int(width * min(fraction, 1.0))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}\033[K")
    sys.stderr.flush()
