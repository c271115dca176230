"""A follow-up about images already in the chat, on the tiny Llama 4 fixture + its
projector: turn 1 sends 3 images (cold: every tile through the vision encoder), turn
2 asks again about them. Counts vision-encoder runs in turn 2 (target 0) and the
time-to-first-token ratio turn 2 / turn 1. Rounds are interleaved, each starting cold.

    python bench/image_reuse.py [--rounds 5] [--size 336]

Last line: {"encodes_turn2": ..., "ratio": ..., ...}"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import Settings
from engine import ImagePart, Message, SamplingParams, TextDelta, TextPart
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


def turn(engine, messages, params, session_key):
    events = list(engine.stream(messages, params, session_key=session_key))
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=336, help="image side in pixels (tiles grow with it)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="l4p-bench-images-"))  # never the user's data
    model, mmproj = write_tiny_llama4(work)
    engine = engine_for(user_model(model, mmproj), Settings(data_dir=work / "data"))
    engine.load()
    params = SamplingParams(temperature=0, max_tokens=8)
    images = [photo(args.size, colour) for colour in COLOURS]
    first = [Message("user", (*images, TextPart("What differs between these three pictures?")))]
    ttft1, ttft2, encodes1, encodes2 = [], [], [], []
    for rnd in range(args.rounds):
        engine.drop_context()  # KV cache and image embeddings: turn 1 is cold
        start = engine.image_encodes
        text, final1 = turn(engine, first, params, f"bench-{rnd}")
        middle = engine.image_encodes
        second = [*first, Message.text("assistant", text), Message.text("user", "Which one is brightest?")]
        _, final2 = turn(engine, second, params, f"bench-{rnd}")
        encodes1.append(middle - start)
        encodes2.append(engine.image_encodes - middle)
        ttft1.append(final1.usage.ttft_s)
        ttft2.append(final2.usage.ttft_s)
        print(
            f"round {rnd}: turn 1 {ttft1[-1] * 1000:.1f} ms ({encodes1[-1]} encodes, "
            f"{final1.usage.prompt_tokens} tokens), turn 2 {ttft2[-1] * 1000:.1f} ms "
            f"({encodes2[-1]} encodes, {final2.usage.cached_tokens} cached)",
            file=sys.stderr,
        )
    engine.unload()
    print(
        json.dumps(
            {
                "encodes_turn2": max(encodes2),
                "ratio": round(statistics.median(ttft2) / statistics.median(ttft1), 4),
                "encodes_turn1": encodes1[-1],
                "turn1_ttft_ms": round(statistics.median(ttft1) * 1000, 2),
                "turn2_ttft_ms": round(statistics.median(ttft2) * 1000, 2),
                "rounds": args.rounds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
