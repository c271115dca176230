"""Decode speed through our engine vs raw llama-cpp-python, same model, same loaded
weights, same greedy settings. Repetitions are interleaved (and the order alternates)
because the host is noisy. Target: ratio >= 0.97.

    python bench/engine_overhead.py [--model NAME] [--tokens 128] [--reps 7]

Last line: {"ratio": ..., "engine_tps": ..., "raw_tps": ...}"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import Settings
from engine import Final, Message, SamplingParams
from models.catalogue import load_registry
from models.engines import engine_for

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a map in a bottle."


def engine_tps(engine, messages, tokens: int) -> float:
    params = SamplingParams(max_tokens=tokens, temperature=0.0, top_p=1.0, min_p=0.0)
    final = next(e for e in engine.stream(messages, params) if isinstance(e, Final))
    return final.usage.decode_tps


def raw_tps(llm, prompt_tokens: list[int], tokens: int) -> float:
    first = last = None
    count = 0
    for _ in llm.create_completion(
        prompt_tokens, max_tokens=tokens, temperature=0.0, top_p=1.0, min_p=0.0, stream=True
    ):
        last = time.perf_counter()
        first = first or last
        count += 1
    return (count - 1) / (last - first) if count > 1 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="preset name (default: the embedded model)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    settings = Settings()
    registry = load_registry(settings)
    engine = engine_for(registry.get(args.model or registry.default), settings)
    engine.load()
    messages = [Message.text("user", PROMPT)]
    with engine._prompt(messages) as (plan, _):  # the exact tokens the engine sends
        prompt_tokens = plan.tokens
    ours, raw = [], []
    for rep in range(args.reps):
        runs = [
            ("engine", lambda: engine_tps(engine, messages, args.tokens)),
            ("raw", lambda: raw_tps(engine._llm, prompt_tokens, args.tokens)),
        ]
        for name, run in runs if rep % 2 == 0 else runs[::-1]:
            (ours if name == "engine" else raw).append(run())
        print(f"rep {rep}: engine {ours[-1]:.1f} tok/s, raw {raw[-1]:.1f} tok/s", file=sys.stderr)
    engine.unload()
    engine_median, raw_median = statistics.median(ours), statistics.median(raw)
    print(
        json.dumps(
            {
                "ratio": round(engine_median / raw_median, 4),
                "engine_tps": round(engine_median, 2),
                "raw_tps": round(raw_median, 2),
                "model": engine.name,
                "tokens": args.tokens,
                "reps": args.reps,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
