"""One timed turn through an engine, as the KV-reuse benchmarks take it."""

from __future__ import annotations

import time

from engine import Final, TextDelta


def timed_turn(engine, messages, params, session_key: str | None, scope: str) -> tuple[str, float, Final]:
    """(answer, seconds to its first token, the Final event); exits on an engine error."""
    start = time.perf_counter()
    first, parts = None, []
    for event in engine.stream(messages, params, session_key=session_key, cache_scope=scope):
        if isinstance(event, TextDelta):
            first = first or time.perf_counter()
            parts.append(event.text)
        elif isinstance(event, Final):
            if event.error:
                raise SystemExit(f"the engine failed: {event.error}")
            return "".join(parts), (first or time.perf_counter()) - start, event
    raise SystemExit("the engine ended without a Final event")
