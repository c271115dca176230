"""Two models on one prompt: how long until BOTH have streamed their first token when
they answer together (chat.together, as the Compare tab runs them), against one
model's time to first token alone. Repetitions are interleaved, their order
alternating, because the host is noisy. Target: ratio <= 1.5 when both fit in memory.

    python bench/compare.py [--model A --model B] [--extra-model GGUF] [--reps 5]

By default the embedded model answers against a second copy of itself: the hardest
case, as both need the whole CPU for their prompt. Every request gets a fresh prompt
prefix so no run reuses another's KV cache. Figures are medians; `ratio` is
together / the slower model alone (on all its threads, as the chat runs it);
`ratio_unshared` the same with both models using every thread (no core splitting);
`ratio_vs_best_single` divides by the better of "alone on all threads" and "alone on
the half it gets together" (on a busy host fewer threads can be faster).

Last line: {"ratio": ..., "ratio_unshared": ..., "ratio_vs_best_single": ..., "together_s": ..., ...}"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chat.together import CompareJob, stream_together
from config import Settings
from engine import Message, TextDelta
from models.catalogue import load_registry
from models.engines import engine_for

PROMPT = (
    "Read this note and summarise it in one sentence. The lighthouse on the northern cape was "
    "built in 1871 from granite cut on the island itself. Its keeper, a retired sailor, kept a "
    "log of every ship that passed, the weather at dawn and dusk, and the birds that rested on "
    "the gallery rail. When the lamp was automated in 1962 the log books went to the town "
    "museum, where visitors can still read about storms, rescues and quiet winter evenings."
)
_nonce = itertools.count()


def job(spec, tokens: int) -> CompareJob:
    # A new first line each time: the prompt cannot come from a previous run's KV cache.
    system = f"Request {next(_nonce)}. You are a helpful AI assistant."
    messages = [Message.text("system", system), Message.text("user", PROMPT)]
    return CompareJob(spec, messages, spec.sampling_params(max_tokens=tokens, temperature=0.0))


def first_token_alone(engine, spec, tokens: int, threads_share: int = 1) -> float:
    engine.share_cpu(threads_share)
    try:
        return _first_token(engine, spec, tokens)
    finally:
        engine.share_cpu(1)


def _first_token(engine, spec, tokens: int) -> float:
    started = time.perf_counter()
    request = job(spec, tokens)
    for event in engine.stream(request.messages, request.params):
        if isinstance(event, TextDelta):
            first = time.perf_counter() - started
            break
    else:
        raise RuntimeError(f"{spec.name} streamed no text")
    return first


def both_first_tokens(engines, specs, tokens: int, share_cpu: bool) -> float:
    pairs = enumerate(zip(engines, specs, strict=True))
    runs = {i: (lambda engine=engine: engine, job(spec, tokens)) for i, (engine, spec) in pairs}
    firsts: dict[int, float] = {}
    errors = []
    started = time.perf_counter()
    for event in stream_together(runs, threading.Event(), share_cpu=share_cpu):
        if isinstance(event.event, TextDelta) and event.index not in firsts:
            firsts[event.index] = time.perf_counter() - started
        elif not isinstance(event.event, TextDelta) and getattr(event.event, "error", None):
            errors.append(event.event.error)
    if len(firsts) != len(runs):
        raise RuntimeError(f"a model streamed no text: {errors}")
    return max(firsts.values())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--model", action="append", default=[], help="two model names (default: SmolLM2 twice)"
    )
    parser.add_argument("--extra-model", action="append", default=[], help="a GGUF to offer as a model")
    parser.add_argument("--tokens", type=int, default=8, help="tokens each model generates")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    settings = Settings(extra_models=args.extra_model)
    registry = load_registry(settings)
    names = args.model or [registry.default, registry.default]
    if len(names) != 2:
        parser.error("give exactly two --model names")
    specs = [registry.get(name) for name in names]
    if specs[0].name == specs[1].name:
        specs[1] = replace(specs[1], name=f"{specs[1].name}-copy")
    engines = [engine_for(spec, settings) for spec in specs]
    for engine in engines:
        engine.load()
    single: list[list[float]] = [[], []]
    halved: list[list[float]] = [[], []]  # alone, but on the thread share it gets together
    together, unshared = [], []
    for rep in range(args.reps):
        runs = [
            ("single 0", lambda: single[0].append(first_token_alone(engines[0], specs[0], args.tokens))),
            ("single 1", lambda: single[1].append(first_token_alone(engines[1], specs[1], args.tokens))),
            ("halved 0", lambda: halved[0].append(first_token_alone(engines[0], specs[0], args.tokens, 2))),
            ("halved 1", lambda: halved[1].append(first_token_alone(engines[1], specs[1], args.tokens, 2))),
            ("together", lambda: together.append(both_first_tokens(engines, specs, args.tokens, True))),
            ("unshared", lambda: unshared.append(both_first_tokens(engines, specs, args.tokens, False))),
        ]
        for _, run in runs if rep % 2 == 0 else runs[::-1]:
            run()
        print(
            f"rep {rep}: alone {single[0][-1]:.3f} / {single[1][-1]:.3f} s, "
            f"half threads {halved[0][-1]:.3f} / {halved[1][-1]:.3f} s, together {together[-1]:.3f} s, "
            f"unshared {unshared[-1]:.3f} s",
            file=sys.stderr,
        )
    for engine in engines:
        engine.unload()
    single_s = max(statistics.median(single[0]), statistics.median(single[1]))
    halved_s = max(statistics.median(halved[0]), statistics.median(halved[1]))
    best_single_s = min(single_s, halved_s)
    together_s, unshared_s = statistics.median(together), statistics.median(unshared)
    print(
        json.dumps(
            {
                "ratio": round(together_s / single_s, 3),
                "ratio_unshared": round(unshared_s / single_s, 3),
                "ratio_vs_best_single": round(together_s / best_single_s, 3),
                "together_s": round(together_s, 4),
                "unshared_s": round(unshared_s, 4),
                "single_s": round(single_s, 4),
                "single_half_threads_s": round(halved_s, 4),
                "models": [spec.name for spec in specs],
                "reps": args.reps,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
