"""Lanes: each model answers at its own pace. A local model takes as many requests at
once as it has slots (llama-server's -np; transformers: one); an OpenAI-compatible
endpoint takes up to its own limit.
Requests wait in their model's lane, first come first served, and can see their place
in it; a request on another model never waits behind them. A comparison holds the
lanes of every model it uses (taken in name order, so two comparisons never deadlock)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

POLL_S = 0.25  # how often a waiting request looks at its place (and its Stop)
HEARTBEAT_S = 2.0


@dataclass(frozen=True)
class LaneLimit:
    at_once: int  # requests the model serves together


class Lane:
    def __init__(self, name: str, limit: LaneLimit):
        self.name = name
        self.limit = limit
        self.running = 0
        self.waiting: deque[object] = deque()


@dataclass
class Seat:
    """A request's claim on some lanes: `places()` while it waits, then it holds them
    until `release()`."""

    lanes: Lanes
    names: list[str]
    cancel: threading.Event
    held: list[str] = field(default_factory=list)
    _ticket: object = field(default_factory=object)

    def places(self) -> Iterator[tuple[str, int]]:
        """(model, place in its line) while this request waits: when it changes, and
        every HEARTBEAT_S (a page whose user left finds out at a yield); ends once it
        holds every lane, or within POLL_S of a cancel (then it holds none)."""
        for name in self.names:
            # In one line at a time: a lane this request does not hold yet is free for others.
            self.lanes._join(name, self._ticket)
            shown, shown_at = 0, 0.0
            while not self.lanes._take(name, self._ticket, self.held):
                if self.cancel.is_set():
                    self.release()
                    return
                place = self.lanes._place(name, self._ticket)
                if place != shown or time.monotonic() - shown_at >= HEARTBEAT_S:
                    shown, shown_at = place, time.monotonic()
                    yield name, place
                self.lanes._wait(POLL_S)

    def wait(self) -> bool:
        """Blocks until admitted (True) or cancelled (False)."""
        for _ in self.places():
            pass
        return self.admitted

    @property
    def admitted(self) -> bool:
        return len(self.held) == len(self.names)

    def release(self) -> None:
        self.lanes._release(self._ticket, self.names, self.held)
        self.held = []

    def __enter__(self) -> Seat:
        return self

    def __exit__(self, *exc) -> None:
        self.release()  # out of every line, and the lanes it held are free


class Lanes:
    def __init__(self, limit_of: Callable[[str], LaneLimit]):
        self._limit_of = limit_of
        self._lanes: dict[str, Lane] = {}
        self._changed = threading.Condition()

    def seat(self, names: Sequence[str], cancel: threading.Event | None = None) -> Seat:
        """A claim on the lanes of `names` (each once, taken in name order); as a
        context manager, released when the block ends."""
        return Seat(self, sorted(set(names)), cancel or threading.Event())

    @contextlib.contextmanager
    def hold(self, names: Sequence[str], cancel: threading.Event | None = None) -> Iterator[bool]:
        """Waits for the lanes, holds them inside the block; yields False (holding none)
        when cancelled while waiting."""
        with self.seat(names, cancel) as seat:
            yield seat.wait()

    def busy(self, name: str) -> int:
        with self._changed:
            lane = self._lanes.get(name)
            return lane.running if lane else 0

    def waiting(self, name: str) -> int:
        with self._changed:
            lane = self._lanes.get(name)
            return len(lane.waiting) if lane else 0

    def _lane(self, name: str) -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = Lane(name, self._limit_of(name))
        return lane

    def _join(self, name: str, ticket: object) -> None:
        with self._changed:
            self._lane(name).waiting.append(ticket)

    def _take(self, name: str, ticket: object, held: list[str]) -> bool:
        with self._changed:
            lane = self._lane(name)
            if not lane.waiting or lane.waiting[0] is not ticket or lane.running >= lane.limit.at_once:
                return False
            lane.waiting.popleft()
            lane.running += 1
            held.append(name)
        return True

    def _place(self, name: str, ticket: object) -> int:
        """1 = next in line."""
        with self._changed:
            lane = self._lane(name)
            return lane.waiting.index(ticket) + 1 if ticket in lane.waiting else 0

    def _wait(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def _release(self, ticket: object, names: list[str], held: list[str]) -> None:
        with self._changed:
            for name in names:
                lane = self._lane(name)
                if name in held:
                    lane.running -= 1
                elif ticket in lane.waiting:
                    lane.waiting.remove(ticket)
            self._changed.notify_all()


def place_line(model: str, place: int) -> str:
    """What a waiting user reads."""
    if place <= 1:
        return f"⏳ waiting for {model}: you are next"
    return f"⏳ waiting for {model}: {place - 1} request{'s' if place > 2 else ''} ahead of you"
