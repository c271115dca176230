"""What llama-server says it did, from its log: after each request it prints

    slot print_timing: id  0 | task 40 | prompt eval time =  85.44 ms /  38 tokens (...)
    slot print_timing: id  0 | task 40 |        eval time =  73.42 ms /   8 tokens (...)
    slot print_timing: id  0 | task 40 |       total time = 158.86 ms /  46 tokens

The server's own counts and times, apart from what a client is sent: the benchmarks
use them to tell the server's work (slowed alike by a busy host) from what the
client side adds, and how many prompt tokens it really evaluated."""

from __future__ import annotations

import re
import time
from pathlib import Path

TIMING = re.compile(rb"\|\s+(prompt eval|eval|total) time =\s*([0-9.]+) ms /\s*(\d+) tokens")
WAIT_S = 5.0  # the lines follow the response by a moment


class ServerLog:
    """A server's log, read on from where the last look ended."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def requests(self, expected: int = 1) -> list[dict[str, tuple[float, int]]]:
        """The requests finished since the last look, each {"prompt eval": (ms, tokens),
        "eval": ..., "total": ...}; waits a moment for `expected` of them."""
        found: list[dict[str, tuple[float, int]]] = []
        current: dict[str, tuple[float, int]] = {}
        deadline = time.monotonic() + WAIT_S
        while True:
            for what, ms, tokens in TIMING.findall(self._new()):
                current[what.decode()] = (float(ms), int(tokens))
                if what == b"total":
                    found.append(current)
                    current = {}
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def _new(self) -> bytes:
        """Whole lines written since the last look (a line being written waits)."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            new = log.read()
        whole = new[: new.rfind(b"\n") + 1]
        self.offset += len(whole)
        return whole
