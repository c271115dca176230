"""Fidelity on image prompts costs about one forward pass per model: a fidelity run
(reference + variant over the image prompts, models already loaded) against one plain
forward pass of the same prompts (images, question and answer) through each model,
image embeddings recomputed in both. Both through the scoring engine (llama.cpp in
this process, models.engines.scoring_engine_for): llama-server hands out no logits.
Repetitions interleaved, order alternating, medians. Target: ratio <= 1.5 (scoring
every answer position adds log-softmax and a top-k per row, nothing like a second pass).

Also: how long refusing two models with different tokenizers takes, from the headers,
on synthetic GGUFs with a Llama 4-sized vocabulary (202,048 tokens, 450,000 merges),
against gguf-py's reader parsing the same header (what the app's header facts use).
Target: refusal < 2 s.

    python bench/fidelity_images.py [--reps 3] [--prompts 5]

Last line: {"ratio": ..., "fidelity_s": ..., "forward_s": ..., "refusal_s": ..., ...}"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import Settings
from engine.types import Message, TextPart
from evals.fidelity_images import FidelityError, check_comparable, run_image_fidelity
from evals.image_suite import load_image_prompts
from models.catalogue import user_model
from models.engines import scoring_engine_for

VOCAB, MERGES = 202_048, 450_000


def fresh(engine) -> None:
    engine.drop_context()  # no KV prefix, no cached image embeddings: both arms start cold


def forward_pass(engines, prompts) -> float:
    """One evaluation of every prompt with its answer through each model."""
    started = time.perf_counter()
    for engine in engines:
        fresh(engine)
        for prompt in prompts:
            (asked,) = prompt.messages()
            engine.next_token_logits([asked, Message("assistant", (TextPart(prompt.answer),))])
            engine.drop_context()
    return time.perf_counter() - started


def fidelity_run(engines, prompts) -> float:
    for engine in engines:
        fresh(engine)
    by_name = dict(zip(("reference", "variant"), engines, strict=True))
    started = time.perf_counter()
    run_image_fidelity(by_name.__getitem__, lambda engine: None, "reference", ["variant"], prompts)
    return time.perf_counter() - started


def synthetic_tokenizer(path: Path, shift: int) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama4")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(VOCAB)])
    writer.add_token_merges([f"m{i} n{(i + shift) % MERGES}" for i in range(MERGES)])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


def refusal_seconds(folder: Path) -> dict:
    from gguf import GGUFReader

    one, two = synthetic_tokenizer(folder / "a.gguf", 0), synthetic_tokenizer(folder / "b.gguf", 1)
    started = time.perf_counter()  # as `eval fidelity` does: the specs, then the check
    specs = {name: user_model(path) for name, path in (("a", one), ("b", two))}
    try:
        check_comparable(specs, with_images=False)
        refused = False
    except FidelityError:
        refused = True
    refusal = time.perf_counter() - started
    started = time.perf_counter()
    GGUFReader(str(one), "r")
    return {
        "refused": refused,
        "refusal_s": round(refusal, 3),
        "gguf_reader_s": round(time.perf_counter() - started, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=5, help="image prompts (with their text twins)")
    args = parser.parse_args()
    from tests.fixtures.tiny_llama4 import write_tiny_llama4

    with tempfile.TemporaryDirectory(prefix="l4p-bench-") as folder:
        folder = Path(folder)
        pairs = [write_tiny_llama4(folder / "ref"), write_tiny_llama4(folder / "var", seed=1)]
        settings = Settings(data_dir=folder / "data")  # never the user's data
        # Fidelity needs logits: llama.cpp in this process, as `eval fidelity` scores.
        engines = [scoring_engine_for(user_model(*pair), settings) for pair in pairs]
        for engine in engines:
            engine.load()
        prompts = load_image_prompts()[: 2 * args.prompts]
        fidelity_run(engines, prompts)  # warm-up: page in weights, build the projector graphs
        forward_pass(engines, prompts)
        fidelity, forward = [], []
        for rep in range(args.reps):
            order = (fidelity_run, forward_pass) if rep % 2 == 0 else (forward_pass, fidelity_run)
            for arm in order:
                (fidelity if arm is fidelity_run else forward).append(arm(engines, prompts))
            print(
                f"rep {rep + 1}: fidelity {fidelity[-1]:.3f} s, forward {forward[-1]:.3f} s", file=sys.stderr
            )
        for engine in engines:
            engine.unload()
        header = refusal_seconds(folder)
    fidelity_s, forward_s = statistics.median(fidelity), statistics.median(forward)
    result = {
        "ratio": round(fidelity_s / forward_s, 3),
        "fidelity_s": round(fidelity_s, 3),
        "forward_s": round(forward_s, 3),
        "prompts": len(prompts),
        "models": 2,
        "reps": args.reps,
        **header,
        "target_ratio": 1.5,
        "target_refusal_s": 2.0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
