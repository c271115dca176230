"""Stop sequences over a stream of text pieces: text is let through as soon as it can
no longer be the start of a stop string, and the answer ends just before the first one."""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self._held = ""  # text that might still begin a stop string
        self.hit = False

    def feed(self, text: str) -> str:
        """The part of `text` (with what was held back) that is certainly answer."""
        if self.hit:
            return ""
        held = self._held + text
        found = [i for i in (held.find(stop) for stop in self.stops) if i >= 0]
        if found:
            self.hit, self._held = True, ""
            return held[: min(found)]
        keep = self._longest_prefix_at_end(held)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        """What was held back, once the stream ended without a stop string."""
        held, self._held = self._held, ""
        return "" if self.hit else held

    def _longest_prefix_at_end(self, text: str) -> int:
        best = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
