"""An assistant answer written while it streams, so a crash keeps what was generated."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import TracebackType

from engine.types import Final

from .connection import Connection
from .ids import now
from .rows import STATUS_BY_FINISH
from .session_table import touch_session

FLUSH_EVERY_S = 0.5
FLUSH_EVERY_APPENDS = 32


class AnswerWriter:
    """Collects deltas and writes the text so far to the row in short transactions:
    at most every FLUSH_EVERY_S seconds or FLUSH_EVERY_APPENDS appends, whichever comes
    first. The row stays status 'streaming' until `finish`.

    As a context manager, leaving without `finish` records the answer as 'error'
    (an exception escaped) or 'cancelled' (the caller stopped early)."""

    def __init__(
        self,
        conn: Connection,
        message_id: int,
        session_id: str,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.id = message_id
        self.session_id = session_id
        self._conn = conn
        self._clock = clock
        self._chunks: list[str] = []
        self._unflushed = 0
        self._last_flush = clock()
        self.finished = False

    @property
    def text(self) -> str:
        return "".join(self._chunks)

    def append(self, text: str) -> None:
        if self.finished:
            raise RuntimeError(f"answer {self.id} is already finished")
        if not text:
            return
        self._chunks.append(text)
        self._unflushed += 1
        due = self._clock() - self._last_flush >= FLUSH_EVERY_S
        if due or self._unflushed >= FLUSH_EVERY_APPENDS:
            self.flush()

    def flush(self) -> None:
        if self._unflushed == 0:
            return
        text = self._compact()

        def write() -> None:
            self._conn.execute(
                "UPDATE messages SET text = ?, parts = ? WHERE id = ? AND status = 'streaming'",
                (text, _parts_json(text), self.id),
            )

        self._conn.write(write)
        self._unflushed = 0
        self._last_flush = self._clock()

    def finish(self, final: Final) -> None:
        if self.finished:
            raise RuntimeError(f"answer {self.id} is already finished")
        text = self._compact()
        usage = final.usage
        fields = {
            "text": text,
            "parts": _parts_json(text),
            "status": STATUS_BY_FINISH[final.finish_reason],
            "finish_reason": final.finish_reason,
            "error": final.error,
            "prompt_tokens": usage.prompt_tokens,
            "cached_tokens": usage.cached_tokens,
            "completion_tokens": usage.completion_tokens,
            "ttft_s": usage.ttft_s,
            "prompt_tps": usage.prompt_tps,
            "decode_tps": usage.decode_tps,
            "total_s": usage.total_s,
            "id": self.id,
        }
        assignments = ", ".join(f"{name} = :{name}" for name in fields if name != "id")

        def write() -> None:
            self._conn.execute(f"UPDATE messages SET {assignments}, writer = NULL WHERE id = :id", fields)
            touch_session(self._conn, self.session_id, now())

        self._conn.write(write)
        self.finished = True
        self._unflushed = 0

    def __enter__(self) -> AnswerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.finished:
            return
        if isinstance(exc, Exception):
            message = " ".join(str(exc).split()) or type(exc).__name__
            self.finish(Final("error", error=message))
        else:
            self.finish(Final("cancelled"))

    def _compact(self) -> str:
        # Keep one string instead of thousands of small chunks after each write.
        text = self.text
        self._chunks = [text] if text else []
        return text


def _parts_json(text: str) -> str:
    return json.dumps([{"text": text}] if text else [], ensure_ascii=False)
