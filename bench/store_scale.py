"""Session store at scale: 10,000 sessions / 500,000 messages in a temporary data dir,
then the three queries the UI makes all the time, through the Store API. Target: p95
under 50 ms each.

    python bench/store_scale.py [--sessions 10000] [--messages 500000] [--reps 200]

The fill writes rows straight through sqlite-utils bulk inserts (a fixture, not the
code under test; the FTS triggers still run). Progress goes to stderr.
Last line: {"list_p95_ms": ..., "open_p95_ms": ..., "search_p95_ms": ..., ...p50s}"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions import Store

LONG_SESSION = 200  # messages in the sessions the "open" query reads
LONG_SESSIONS = 100
SEARCH_WORDS = ["lighthouse", "astrolabe", "quokka", "harbor", "zeppelin"]


def vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ten", "ra", "vo", "shi", "den", "pe", "tur", "ax", "el"]
    words = {"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(6000)}
    return sorted(words) + SEARCH_WORDS


def sentence(rng: random.Random, words: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(words, weights, k=rng.randint(8, 60)))


def session_sizes(sessions: int, messages: int) -> list[int]:
    """LONG_SESSIONS sessions of LONG_SESSION messages, the rest spread evenly."""
    rest = messages - LONG_SESSIONS * LONG_SESSION
    base, extra = divmod(rest, sessions - LONG_SESSIONS)
    return [LONG_SESSION] * LONG_SESSIONS + [base + (i < extra) for i in range(sessions - LONG_SESSIONS)]


def fill(store: Store, sessions: int, messages: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = vocabulary(rng)
    # Zipf-like: a few words everywhere, most rare, like real text.
    weights = [1 / (rank + 1) for rank in range(len(words))]
    rng.shuffle(weights)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    session_ids = [f"bench{n:07d}" for n in range(sessions)]
    sizes = session_sizes(sessions, messages)
    session_rows = [
        {
            "id": session_id,
            "title": sentence(rng, words, weights)[:60],
            "created": (start + timedelta(minutes=n)).isoformat(timespec="microseconds"),
            "updated": (start + timedelta(minutes=n, seconds=30)).isoformat(timespec="microseconds"),
            "model": "llama-4-scout",
            "settings": "{}",
        }
        for n, session_id in enumerate(session_ids)
    ]
    db = store.db
    with db.atomic():
        db["sessions"].insert_all(session_rows, batch_size=2000)
        rows = message_rows(rng, words, weights, session_ids, sizes, start)
        written = 0
        for batch in batched(rows, 10_000):
            db["messages"].insert_all(batch, batch_size=10_000)
            written += len(batch)
            if written % 100_000 == 0:
                print(f"  {written:,} messages", file=sys.stderr)
    return session_ids[:LONG_SESSIONS]


def message_rows(
    rng: random.Random,
    words: list[str],
    weights: list[float],
    session_ids: list[str],
    sizes: list[int],
    start: datetime,
) -> Iterator[dict]:
    message_id = 0
    for n, (session_id, size) in enumerate(zip(session_ids, sizes, strict=True)):
        created = (start + timedelta(minutes=n)).isoformat(timespec="microseconds")
        parent = None
        for turn in range(size):
            message_id += 1
            text = sentence(rng, words, weights)
            yield {
                "id": message_id,
                "session_id": session_id,
                "parent_id": parent,
                "role": "user" if turn % 2 == 0 else "assistant",
                "text": text,
                "parts": json.dumps([{"text": text}]),
                "created": created,
                "status": "complete",
            }
            parent = message_id


def batched(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def measure(name: str, query: Callable[[int], object], reps: int) -> list[float]:
    query(0)  # warm the page cache, as a running app would have
    timings = []
    for rep in range(reps):
        started = time.perf_counter()
        query(rep)
        timings.append((time.perf_counter() - started) * 1000)
    p50, p95 = percentile(timings, 50), percentile(timings, 95)
    print(f"{name}: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {reps} runs", file=sys.stderr)
    return timings


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="store-scale-") as data_dir, Store(data_dir) as store:
        started = time.perf_counter()
        print(f"filling {args.sessions:,} sessions / {args.messages:,} messages…", file=sys.stderr)
        long_sessions = fill(store, args.sessions, args.messages)
        fill_s = time.perf_counter() - started
        size_mb = (Path(data_dir) / "playground.db").stat().st_size / 1e6
        print(f"filled in {fill_s:.1f} s, database {size_mb:.0f} MB (+WAL)", file=sys.stderr)

        def open_session(rep: int) -> None:
            rows = store.branch(long_sessions[rep % len(long_sessions)])
            assert len(rows) == LONG_SESSION

        def search(rep: int) -> None:
            hits = store.search(SEARCH_WORDS[rep % len(SEARCH_WORDS)])
            assert hits, "every search word occurs"

        timings = {
            "list": measure("list newest 50", lambda rep: store.list_sessions(limit=50), args.reps),
            "open": measure(f"open a {LONG_SESSION}-message session", open_session, args.reps),
            "search": measure("search a word", search, args.reps),
        }
    result: dict[str, float | int] = {}
    for name, values in timings.items():
        result[f"{name}_p95_ms"] = round(percentile(values, 95), 2)
    for name, values in timings.items():
        result[f"{name}_p50_ms"] = round(percentile(values, 50), 2)
    result.update(sessions=args.sessions, messages=args.messages, reps=args.reps, fill_s=round(fill_s, 1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
