"""Back-off after failed logins and wrong API keys, per user and per address.

Guessing passwords ran at hundreds of attempts a second. Here, after `attempts`
failures in a row a user name is paused for `backoff_s`, doubling with each further
failure (up to MAX_PAUSE_S); an address gets ADDRESS_FACTOR times as many tries (a team
behind one NAT or proxy shares it). While paused even the right password is refused;
once the pause is over it works again and clears the user's count. State is bounded: idle
entries are forgotten, and at most MAX_ENTRIES are kept."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ADDRESS_FACTOR = 4
MAX_PAUSE_S = 900.0
MAX_ENTRIES = 10_000
FORGET_AFTER_S = 3600.0
RESET_AFTER_S = 600.0  # failures this far apart (and no pause on) start the count over


@dataclass
class _Count:
    failures: int = 0
    until: float = 0.0  # paused until (clock time)
    last: float = 0.0


class LoginThrottle:
    def __init__(self, attempts: int, backoff_s: float, clock: Callable[[], float] = time.monotonic):
        self.attempts, self.backoff_s, self.clock = attempts, backoff_s, clock
        self._counts: dict[tuple[str, str], _Count] = {}
        self._lock = threading.Lock()

    def wait_s(self, user: str | None, address: str) -> int:
        """Whole seconds until this user and address may try again; 0 = now."""
        now = self.clock()
        with self._lock:
            found = [self._counts.get(key) for key in _keys(user, address)]
        remaining = max((count.until - now for count in found if count), default=0.0)
        return math.ceil(remaining) if remaining > 0 else 0

    def failed(self, user: str | None, address: str, what: str = "login") -> None:
        now = self.clock()
        _log(f"{what}: failed for {(user or '')[:64]!r} from {address}")
        with self._lock:
            for key in _keys(user, address):
                count = self._counts.setdefault(key, _Count())
                if count.until < now and now - count.last > RESET_AFTER_S:
                    count.failures = 0
                count.failures, count.last = count.failures + 1, now
                over = count.failures - self._threshold(key)
                if over >= 0:
                    pause = min(self.backoff_s * 2**over, MAX_PAUSE_S)
                    count.until = now + pause
                    _log(f"{what}: {count.failures} failed by {key[0]} {key[1][:64]!r}; paused {pause:g} s")
            self._prune(now)

    def succeeded(self, user: str | None) -> None:
        """The user's count starts over; the address's does not (one account of a
        guesser's own must not reset the guessing of others')."""
        if user:
            with self._lock:
                self._counts.pop(("user", user), None)

    def _threshold(self, key: tuple[str, str]) -> int:
        return self.attempts * (ADDRESS_FACTOR if key[0] == "address" else 1)

    def _prune(self, now: float) -> None:
        if len(self._counts) <= MAX_ENTRIES:
            return
        idle = [
            key
            for key, count in self._counts.items()
            if count.until < now and now - count.last > FORGET_AFTER_S
        ]
        for key in idle:
            del self._counts[key]
        # Still full (a flood of names): the least recently tried go first.
        for key, _ in sorted(self._counts.items(), key=lambda item: item[1].last)[
            : len(self._counts) - MAX_ENTRIES
        ]:
            del self._counts[key]


def too_many(wait_s: int) -> str:
    return f"too many failed attempts; try again in {wait_s} s"


def _keys(user: str | None, address: str) -> list[tuple[str, str]]:
    keys = [("address", address)]
    if user:
        keys.append(("user", user))
    return keys


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
