"""Which of llama-server's slots each request takes (engine/llama_server.py).

A slot's KV cache holds the prompt it last read. Reusing it is what makes a follow-up
turn cheap, and it must never hand one login's text to another's request, so the
table keeps reuse within one login (`cache_scope`), as the server's own choice would
not: a request takes a free slot its own scope used last (the same chat's first),
else the least recently used free one, and then asks the server not to reuse what
another login left there. Lanes admit at most as many requests as there are slots,
so a slot is free but for the few milliseconds a finished turn's save takes, which a
request waits out; past that the server picks, nothing is reused, and the table
forgets what each slot holds (the server may have put that request anywhere)."""

from __future__ import annotations

import threading
import time

SAVE_WAIT_S = 10.0  # a turn waits this long at most for its chat's slot being saved


class SlotTable:
    def __init__(self, slots: int):
        self._owner: list[tuple[str, str | None] | None] = [None] * slots
        self._busy = [False] * slots
        self._saving = [False] * slots
        self._used = [0] * slots
        self._clock = 0
        self._changed = threading.Condition()

    def take(
        self, scope: str, session_key: str | None, wait_s: float = SAVE_WAIT_S
    ) -> tuple[int, bool, bool]:
        """(slot id, may the server reuse its cache, does it hold this chat's last turn).

        A chat whose slot is still being saved (a few milliseconds after its turn; a
        quick follow-up, or a script) waits for that slot rather than reading its whole
        prompt again elsewhere. Other requests never wait for a save, the same login's
        other chats included: with one API key, many chats answer at once."""
        deadline = time.monotonic() + wait_s
        with self._changed:
            while self._must_wait(scope, session_key):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._take(scope, session_key)

    def _must_wait(self, scope: str, session_key: str | None) -> bool:
        if all(self._busy):
            return True
        return session_key is not None and any(
            saving and owner == (scope, session_key)
            for saving, owner in zip(self._saving, self._owner, strict=True)
        )

    def _take(self, scope: str, session_key: str | None) -> tuple[int, bool, bool]:
        free = [i for i in range(len(self._busy)) if not self._busy[i]]
        if not free:
            self._owner = [None] * len(self._owner)
            return -1, False, False
        mine = [i for i in free if self._owner[i] is not None and self._owner[i][0] == scope]
        same_chat = [i for i in mine if session_key is not None and self._owner[i][1] == session_key]
        slot = (
            max(same_chat or mine, key=self._used.__getitem__)
            if mine
            else min(free, key=self._used.__getitem__)
        )
        reuse, warm = bool(mine), slot in same_chat
        self._clock += 1
        self._busy[slot], self._used[slot], self._owner[slot] = True, self._clock, (scope, session_key)
        return slot, reuse, warm

    def saving(self, slot: int) -> None:
        """The answer in `slot` is complete and its KV state is being written."""
        if slot >= 0:
            with self._changed:
                self._saving[slot] = True

    def give_back(self, slot: int) -> None:
        if slot >= 0:
            with self._changed:
                self._busy[slot] = self._saving[slot] = False
                self._changed.notify_all()

    def busy(self) -> bool:
        with self._changed:
            return any(self._busy)

    def forget(self) -> None:
        """A restarted child holds nothing: no slot's cache is anyone's."""
        with self._changed:
            self._owner = [None] * len(self._owner)
