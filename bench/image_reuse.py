"""A follow-up about images already in the chat, through the server engine (the tiny
Llama 4 fixture + its projector in a llama-server child): turn 1 sends 3 images (cold:
a login that never asked, every tile through the vision encoder), turn 2 asks again
about them in the same chat. The images all sit in turn 1's prompt, so when the slot's
prefix is reused (target: turn 2's cached tokens >= turn 1's prompt tokens, every
round) no image is encoded again: the server's log says it evaluated only the tokens
after them (`evaluated_turn2`, its own count). The anchor, in the same rounds: turn 2's
prompt sent cold (another cache scope), which reads everything. Times to first text
are this script's clock around engine.stream. Rounds are interleaved. On this tiny
model the encoder is cheap, so the TTFT ratio says little; the token counts say it.

    python bench/image_reuse.py [--rounds 5] [--size 336]

Last line: {"prefix_reused": true, "evaluated_turn2": ..., "ratio": ..., ...}"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server_log import ServerLog
from bench.turns import timed_turn as turn
from config import Settings
from engine import ImagePart, Message, SamplingParams, TextPart
from models.catalogue import user_model
from models.engines import engine_for
from tests.fixtures.tiny_llama4 import write_tiny_llama4

COLOURS = ("red", "green", "blue")


def photo(size: int, colour: str) -> ImagePart:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), colour)
    ImageDraw.Draw(img).ellipse((size // 4, size // 4, size * 3 // 4, size * 3 // 4), fill="white")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return ImagePart(buf.getvalue(), "image/png", f"{colour}.png", size, size)


def evaluated(log: ServerLog) -> int:
    """Prompt tokens the server evaluated in the request that just finished (its own
    count, apart from the usage we are sent)."""
    return sum(request["prompt eval"][1] for request in log.requests() if "prompt eval" in request)


@dataclass
class Round:
    ttft1: float  # seconds to the first text: turn 1, turn 2, turn 2 sent cold
    ttft2: float
    ttft_cold: float
    evaluated1: int  # prompt tokens the server's log says it evaluated in each
    evaluated2: int
    evaluated_cold: int
    prompt1: int  # turn 1's prompt tokens, and of turn 2's how many the slot held
    cached2: int
    prompt2: int


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=336, help="image side in pixels (tiles grow with it)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="l4p-bench-images-"))  # never the user's data
    model, mmproj = write_tiny_llama4(work)
    engine = engine_for(user_model(model, mmproj), Settings(data_dir=work / "data"))
    engine.load()
    log = ServerLog(engine.process.log_path)
    params = SamplingParams(temperature=0, max_tokens=8)
    images = [photo(args.size, colour) for colour in COLOURS]
    first = [Message("user", (*images, TextPart("What differs between these three pictures?")))]
    rounds = []
    try:
        turn(engine, first, params, None, "warm-up")  # the server's first request pays its set-up
        evaluated(log)
        for rnd in range(args.rounds):
            scope, session = f"login-{rnd}", f"chat-{rnd}"  # a login that never asked: cold
            text, ttft1, final1 = turn(engine, first, params, session, scope)
            evaluated1 = evaluated(log)
            second = [
                *first,
                Message.text("assistant", text),
                Message.text("user", "Which one is brightest?"),
            ]
            _, ttft2, final2 = turn(engine, second, params, session, scope)
            evaluated2 = evaluated(log)
            _, ttft_cold, _ = turn(engine, second, params, None, f"cold-{rnd}")
            one = Round(
                *(ttft1, ttft2, ttft_cold, evaluated1, evaluated2, evaluated(log)),
                *(final1.usage.prompt_tokens, final2.usage.cached_tokens, final2.usage.prompt_tokens),
            )
            rounds.append(one)
            print(
                f"round {rnd}: turn 1 {ttft1 * 1000:.1f} ms ({evaluated1} of {one.prompt1} evaluated), "
                f"turn 2 {ttft2 * 1000:.1f} ms ({evaluated2} of {one.prompt2} read, {one.cached2} cached), "
                f"cold turn 2 {ttft_cold * 1000:.1f} ms ({one.evaluated_cold} evaluated)",
                file=sys.stderr,
            )
    finally:
        engine.unload()
        shutil.rmtree(work, ignore_errors=True)
    turn1_ms = statistics.median(r.ttft1 for r in rounds) * 1000
    turn2_ms = statistics.median(r.ttft2 for r in rounds) * 1000
    cold_ms = statistics.median(r.ttft_cold for r in rounds) * 1000
    print(
        json.dumps(
            {
                "prefix_reused": all(r.cached2 >= r.prompt1 for r in rounds),
                "evaluated_turn2": max(r.evaluated2 for r in rounds),
                "ratio": round(turn2_ms / turn1_ms, 4),
                "vs_cold_turn2_ratio": round(turn2_ms / cold_ms, 4),
                "evaluated_turn1": rounds[-1].evaluated1,
                "evaluated_cold_turn2": rounds[-1].evaluated_cold,
                "turn1_prompt_tokens": rounds[-1].prompt1,
                "turn2_cached_tokens": min(r.cached2 for r in rounds),
                "turn2_prompt_tokens": rounds[-1].prompt2,
                "turn1_ttft_ms": round(turn1_ms, 2),
                "turn2_ttft_ms": round(turn2_ms, 2),
                "cold_turn2_ttft_ms": round(cold_ms, 2),
                "rounds": args.rounds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
