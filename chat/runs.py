"""Stop switches, one per run: a chat answer, a comparison, a document being read, an
API request. Stop in a browser tab ends that tab's runs in that place (chat or
compare) and nothing else; a new run never takes over an older one's switch."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Runs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, set[threading.Event]] = {}

    @contextlib.contextmanager
    def run(self, scope: str) -> Iterator[threading.Event]:
        """A fresh cancel token for one run, stoppable through `scope` until it ends."""
        token = threading.Event()
        with self._lock:
            self._live.setdefault(scope, set()).add(token)
        try:
            yield token
        finally:
            with self._lock:
                tokens = self._live.get(scope, set())
                tokens.discard(token)
                if not tokens:
                    self._live.pop(scope, None)

    def cancel(self, scope: str) -> int:
        """Stops every run of `scope`; how many there were."""
        with self._lock:
            tokens = list(self._live.get(scope, ()))
        for token in tokens:
            token.set()
        return len(tokens)

    def live(self, scope: str) -> int:
        with self._lock:
            return len(self._live.get(scope, ()))
