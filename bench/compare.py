"""Two models on one prompt: how long until BOTH have streamed their first token when
they answer together (chat.together, as the Compare tab runs them), against one
model's time to first token alone. Repetitions are interleaved, their order
alternating, because the host is noisy. Target: ratio <= 1.5 when both fit in memory.

    python bench/compare.py [--model A --model B] [--extra-model GGUF] [--reps 5]

By default the embedded model answers against a second copy of itself (two
llama-server children): the hardest case, as both need the whole CPU for their prompt.
Every request is cold: a new first line and a cache scope nobody used, so no run
reuses another's KV cache. Figures are medians; `ratio` is together / the slower model
alone. (Each child has its own threads; the in-process engine's thread sharing, which
the earlier `ratio_unshared` arm measured, is gone with it.)

Last line: {"ratio": ..., "together_s": ..., "single_s": ..., ...}"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
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
    nonce = next(_nonce)
    system = f"Request {nonce}. You are a helpful AI assistant."
    messages = [Message.text("system", system), Message.text("user", PROMPT)]
    params = spec.sampling_params(max_tokens=tokens, temperature=0.0)
    return CompareJob(spec, messages, params, cache_scope=f"cold-{nonce}")


def first_token_alone(engine, spec, tokens: int) -> float:
    started = time.perf_counter()
    request = job(spec, tokens)
    for event in engine.stream(request.messages, request.params, cache_scope=request.cache_scope):
        if isinstance(event, TextDelta):
            first = time.perf_counter() - started
            break
    else:
        raise RuntimeError(f"{spec.name} streamed no text")
    return first


def both_first_tokens(engines, specs, tokens: int) -> float:
    pairs = enumerate(zip(engines, specs, strict=True))
    runs = {i: (lambda engine=engine: engine, job(spec, tokens)) for i, (engine, spec) in pairs}
    firsts: dict[int, float] = {}
    errors = []
    started = time.perf_counter()
    for event in stream_together(runs, threading.Event()):
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

    scratch = Path(tempfile.mkdtemp(prefix="l4p-bench-compare-"))  # never the user's data
    settings = Settings(extra_models=args.extra_model, data_dir=scratch)
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
    together: list[float] = []
    try:
        for rep in range(args.reps):
            runs = [
                lambda: single[0].append(first_token_alone(engines[0], specs[0], args.tokens)),
                lambda: single[1].append(first_token_alone(engines[1], specs[1], args.tokens)),
                lambda: together.append(both_first_tokens(engines, specs, args.tokens)),
            ]
            for run in runs if rep % 2 == 0 else runs[::-1]:
                run()
            print(
                f"rep {rep}: alone {single[0][-1]:.3f} / {single[1][-1]:.3f} s, "
                f"together {together[-1]:.3f} s",
                file=sys.stderr,
            )
    finally:
        for engine in engines:
            engine.unload()
        shutil.rmtree(scratch, ignore_errors=True)
    single_s = max(statistics.median(single[0]), statistics.median(single[1]))
    together_s = statistics.median(together)
    print(
        json.dumps(
            {
                "ratio": round(together_s / single_s, 3),
                "together_s": round(together_s, 4),
                "single_s": round(single_s, 4),
                "single_each_s": [round(statistics.median(times), 4) for times in single],
                "models": [spec.name for spec in specs],
                "reps": args.reps,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
