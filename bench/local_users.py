"""The local case of bench/concurrency.py: many users at once on one local GGUF model.

Our /v1 (the playground, its local model in a llama-server child with 8 slots) against a raw llama-server
started by hand with the same binary and flags on the same tiny Llama 4 GGUF: 1 user,
then 8 at once, each asking for 64 greedy tokens; the two interleaved, best of two.
The ratio T8/T1 says whether the model batches users (1x-2x) or takes them in turn
(~8x plus the waiting); ours/raw at 8 users is what our stack costs on top."""

from __future__ import annotations

import concurrent.futures
import itertools
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.page_client import start_playground

USERS = (1, 8)
TOKENS = 64
SLOTS = 8
THREADS = 2
KEY = "bench-local-key"
_ASKED = itertools.count()


def one_answer(base: str, key: str, model: str, question: str) -> int:
    """Streams one answer; the number of content chunks it got."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
    }
    chunks = 0
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{base}/chat/completions", json=body, headers=headers, timeout=300) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                chunks += 1
    return chunks


def users_at_once(base: str, key: str, model: str, users: int) -> float:
    """Seconds until all `users` have their answers. Every question is new (a count
    of calls in it): a repeated prompt would find what a cache kept of it."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(users) as pool:
        asked = next(_ASKED)
        questions = [f"User {i} asks ({asked}): what is {i} plus {i}?" for i in range(users)]
        got = list(pool.map(lambda q: one_answer(base, key, model, q), questions))
    if min(got) == 0:
        raise SystemExit(f"{base}: an answer came back empty")
    return time.perf_counter() - started


def local_case(repo: Path) -> dict:
    from engine.llama_server import server_args
    from engine.server_process import ServerProcess
    from models.catalogue import user_model
    from tests.fixtures.tiny_llama4 import write_tiny_llama4

    with tempfile.TemporaryDirectory() as scratch:
        model, _ = write_tiny_llama4(Path(scratch) / "tiny")
        spec = user_model(model)
        flags = ["--parallel", str(SLOTS), "--threads", str(THREADS)]
        flags += ["--extra-model", str(model), "--api-key", KEY, "--data-dir", str(Path(scratch) / "data")]
        proc, url = start_playground(flags, repo)
        raw_args = server_args(spec, slots=SLOTS, n_threads=THREADS)
        raw = ServerProcess(raw_args, Path(scratch) / "raw.log", "raw llama-server")
        try:
            raw.start()
            targets = {"ours": (url + "v1", KEY), "raw": (raw.url + "/v1", raw.key)}
            for base, key in targets.values():  # warm up: loads the model, fills caches
                users_at_once(base, key, spec.name, SLOTS)
            times: dict[str, dict[int, float]] = {name: {} for name in targets}
            for _ in range(2):
                for users in USERS:
                    for name, (base, key) in targets.items():
                        seconds = users_at_once(base, key, spec.name, users)
                        times[name][users] = min(times[name].get(users, seconds), seconds)
        finally:
            raw.stop()
            proc.terminate()
            proc.wait(timeout=30)
    for name, by_users in times.items():
        for users, seconds in by_users.items():
            print(f"local {name}: {users} users {seconds:.2f} s", file=sys.stderr)
    return {
        "ours_ratio_8": round(times["ours"][8] / times["ours"][1], 2),
        "raw_ratio_8": round(times["raw"][8] / times["raw"][1], 2),
        "ours_vs_raw_8": round(times["ours"][8] / times["raw"][8], 2),
        "ours_vs_raw_1": round(times["ours"][1] / times["raw"][1], 2),
        "s": {name: {str(u): round(t, 3) for u, t in by_users.items()} for name, by_users in times.items()},
    }
