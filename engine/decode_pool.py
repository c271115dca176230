"""A bounded pool for image decoding that is fair between users: each owner has its
own queue and the workers take one task from each owner in turn (round-robin), so one
user's 100 images wait behind each other, never in front of another user's one.

A thread pool with one shared queue runs tasks in arrival order: the second user's
single photo waited for all 100 of the first user's decodes."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class FairPool:
    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self._ready = threading.Condition()
        self._queues: dict[str, deque[tuple[Future, Callable[[], Any]]]] = {}
        self._turns: deque[str] = deque()  # owners with work waiting, in their turn's order
        self._threads: list[threading.Thread] = []

    def submit(self, owner: str, task: Callable[[], R]) -> Future:
        future: Future = Future()
        with self._ready:
            if owner not in self._queues:
                self._queues[owner] = deque()
                self._turns.append(owner)
            self._queues[owner].append((future, task))
            self._start_workers()
            self._ready.notify()
        return future

    def map(self, owner: str, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """function(item) for each item, in the items' order; the first failure (in that
        order) is raised once the rest of this owner's tasks are cancelled or done."""
        futures = [self.submit(owner, lambda item=item: function(item)) for item in items]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()  # only those not started: a failure or a caller gone

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name="image-decode", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next(self) -> tuple[Future, Callable[[], Any]]:
        with self._ready:
            while not self._turns:
                self._ready.wait()
            owner = self._turns.popleft()
            queue = self._queues[owner]
            item = queue.popleft()
            if queue:
                self._turns.append(owner)  # its next task waits for every other owner's
            else:
                del self._queues[owner]
            return item

    def _work(self) -> None:
        while True:
            future, task = self._next()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(task())
            except BaseException as exc:  # handed to the caller, in its thread
                future.set_exception(exc)


_shared: FairPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> FairPool:
    """The process's one decode pool: as many workers as cores, at most 4 (decoding is
    CPU work; more threads only share the same cores)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FairPool(min(4, os.cpu_count() or 1))
        return _shared


def decode_all(owner: str | None, decode: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """decode(item) for each, through the shared fair pool under `owner` (the login,
    API user or "local"); no pool for a single item."""
    if len(items) <= 1:
        return [decode(item) for item in items]
    return shared_pool().map(owner or "local", decode, items)
