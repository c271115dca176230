"""What our engine costs on top of llama-server: the same greedy request through our
engine (its managed llama-server child, over HTTP via engine/openai_compat.py) and
straight to a raw llama-server started here with the same binary and the same flags
(`engine.args`, its own port) on the same GGUF (the embedded SmolLM2 by default).

Both servers stay loaded (a small model); repetitions are interleaved and the order
alternates, since the host is noisy. Every request reads its whole prompt (ours: a
cache scope nobody used; raw: the same body, `cache_prompt` false). Both are timed by
this script's clock alike: time to the first text, decode tokens/s after it (the
server's completion count), and the whole request. Target: ours <= 1.03x raw time.

On a busy host the server's own time for the same request varies more than that
(`server_ratio`), so each request is also split into the time the server's log says
it spent and the rest: `added_ms` is what the rest costs ours beyond raw (medians),
`stack_ratio` = (raw time + added) / raw time, the target read without that noise.

    python bench/engine_overhead.py [--model NAME] [--tokens 128] [--reps 7]

Last line: {"ratio": ours/raw time, "stack_ratio": ..., "added_ms": ..., ...}"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server_log import ServerLog
from config import Settings
from engine import Final, Message, SamplingParams, TextDelta
from engine.server_process import free_port, server_binary
from models.catalogue import load_registry
from models.engines import engine_for

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a map in a bottle."
LOAD_TIMEOUT_S = 300


class Timing:
    """One request: (start, first text, end) on this script's clock and the tokens;
    `server` is the time the server's log says it spent on the request, `client` the
    rest (HTTP, our stack, waiting for a busy CPU)."""

    def __init__(self, start: float, first: float, end: float, tokens: int):
        self.ttft = first - start
        self.total = end - start
        self.tps = (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0
        self.tokens = tokens
        self.server = self.client = 0.0

    def served(self, log: ServerLog) -> Timing:
        finished = log.requests()
        if not finished or "total" not in finished[-1]:
            raise SystemExit(f"no timing in {log.path} for a request")
        self.server = finished[-1]["total"][0] / 1000
        self.client = self.total - self.server
        return self


def ours(engine, messages, params, rep: int) -> Timing:
    start = time.perf_counter()
    first = None
    for event in engine.stream(messages, params, session_key=None, cache_scope=f"cold-{rep}"):
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter()
        if isinstance(event, Final):
            if event.error:
                raise SystemExit(f"our engine failed: {event.error}")
            return Timing(
                start, first or time.perf_counter(), time.perf_counter(), event.usage.completion_tokens
            )
    raise SystemExit("our engine ended without a Final event")


def raw(client: httpx.Client, body: dict) -> Timing:
    """The request straight to the raw server. llama-server closes a connection idle
    for a few seconds (while ours answered), so one dropped before any reply is asked
    again on a new one, as our engine's client does; the time counts."""
    start = time.perf_counter()
    try:
        return _raw(client, body, start)
    except httpx.RemoteProtocolError:
        return _raw(client, body, start)


def _raw(client: httpx.Client, body: dict, start: float) -> Timing:
    first = None
    tokens = 0
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if first is None and (choice.get("delta") or {}).get("content"):
                    first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return Timing(start, first or end, end, tokens)


def raw_body(request: dict) -> dict:
    """Our engine's last request as plain JSON: its sampling fields, minus the slot our
    slot table picked (the raw server picks its own)."""
    body = {key: value for key, value in request.items() if key != "extra_body"}
    body.update({k: v for k, v in request["extra_body"].items() if k != "id_slot"})
    body["cache_prompt"] = False
    return body


def start_raw(args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    binary = server_binary()
    if binary is None:
        raise SystemExit("llama-server is not installed next to llama-cpp-python (make setup)")
    port = free_port()
    argv = [str(binary), *args, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"raw llama-server exited while loading (log: {log})")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return child, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    child.kill()
    raise SystemExit(f"raw llama-server did not load within {LOAD_TIMEOUT_S} s (log: {log})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="preset name (default: the embedded model)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="l4p-bench-overhead-"))  # never the user's data
    settings = Settings(data_dir=scratch / "data")
    registry = load_registry(settings)
    engine = engine_for(registry.get(args.model or registry.default), settings)
    engine.load()
    child, url = start_raw(engine.args, scratch / "raw.log")
    try:
        messages = [Message.text("user", PROMPT)]
        params = SamplingParams(max_tokens=args.tokens, temperature=0.0, top_p=1.0, min_p=0.0)
        ours(engine, messages, params, -1)  # warm up, and the exact request it sends
        body = raw_body(engine.last_request)
        client = httpx.Client(base_url=url, timeout=600)  # one connection kept, as our engine's client
        raw(client, body)
        our_log, raw_log = ServerLog(engine.process.log_path), ServerLog(scratch / "raw.log")
        times: dict[str, list[Timing]] = {"ours": [], "raw": []}
        for rep in range(args.reps):
            runs = [
                ("ours", lambda rep=rep: ours(engine, messages, params, rep).served(our_log)),
                ("raw", lambda: raw(client, body).served(raw_log)),
            ]
            for name, run in runs if rep % 2 == 0 else runs[::-1]:
                times[name].append(run())
            o, r = times["ours"][-1], times["raw"][-1]
            print(
                f"rep {rep}: ours {o.total:.3f} s (server {o.server:.3f} s, ttft {o.ttft * 1000:.0f} ms, "
                f"{o.tps:.1f} tok/s, {o.tokens} tokens), raw {r.total:.3f} s (server {r.server:.3f} s, "
                f"ttft {r.ttft * 1000:.0f} ms, {r.tps:.1f} tok/s, {r.tokens} tokens)",
                file=sys.stderr,
            )
    finally:
        child.terminate()
        child.wait(30)
        engine.unload()
        shutil.rmtree(scratch, ignore_errors=True)

    def median(name: str, what: str) -> float:
        return statistics.median(getattr(t, what) for t in times[name])

    # Our stack's cost apart from the server's own time, which a busy host varies.
    added_s = median("ours", "client") - median("raw", "client")
    print(
        json.dumps(
            {
                "ratio": round(median("ours", "total") / median("raw", "total"), 4),
                "stack_ratio": round((median("raw", "total") + added_s) / median("raw", "total"), 4),
                "added_ms": round(added_s * 1000, 1),
                "server_ratio": round(median("ours", "server") / median("raw", "server"), 4),
                "ttft_ratio": round(median("ours", "ttft") / median("raw", "ttft"), 4),
                "tps_ratio": round(median("ours", "tps") / median("raw", "tps"), 4),
                "ours_s": round(median("ours", "total"), 3),
                "raw_s": round(median("raw", "total"), 3),
                "ours_ttft_ms": round(median("ours", "ttft") * 1000, 1),
                "raw_ttft_ms": round(median("raw", "ttft") * 1000, 1),
                "ours_tps": round(median("ours", "tps"), 2),
                "raw_tps": round(median("raw", "tps"), 2),
                "same_tokens": len({t.tokens for ts in times.values() for t in ts}) == 1,
                "model": engine.name,
                "tokens": args.tokens,
                "reps": args.reps,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
