"""Follow-up turns without re-prefill, on the embedded model: a ~3,000-token document
and a question (turn 1, cold), then a follow-up (turn 2) answered in the same process
(KV prefix reused) and in a new process that restores the chat's saved KV state.
Rounds are interleaved on the one host, so noise hits all three alike. Targets: turn
2 / turn 1 time to first token <= 0.10 in process, <= 0.25 after a restart; the same
greedy answer as a cold prefill.

    python bench/prefix_reuse.py [--rounds 3] [--max-tokens 32]

Last line: {"in_process_ratio": ..., "restart_ratio": ..., "same_answer": true, ...}"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import Settings
from engine import Final, Message, SamplingParams, TextDelta
from models.catalogue import load_registry
from models.engines import engine_for

QUESTION = "Which town does station 17 serve, and how many boats does it have?"
FOLLOW_UP = "And what does station 42 carry?"
CARGO = ("salt", "timber", "wool")


def document(target_tokens: int, count_tokens) -> str:
    lines, i = [], 0
    while True:
        i += 1
        lines.append(
            f"Station {i} of the coastal railway serves Port {i}, a town of {i * 37 % 900 + 100} "
            f"people with {i * 7 % 60 + 3} fishing boats; its trains carry {CARGO[i % 3]}."
        )
        if i % 10 == 0 and count_tokens("\n".join(lines)) >= target_tokens:
            return "\n".join(lines)


def turn(engine, messages, params, session_key=None) -> tuple[str, Final]:
    events = list(engine.stream(messages, params, session_key=session_key))
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


def then(messages: list[Message], answer: str, question: str) -> list[Message]:
    return [*messages, Message.text("assistant", answer), Message.text("user", question)]


def loaded_engine(data_dir: Path):
    settings = Settings(data_dir=data_dir)
    registry = load_registry(settings)
    engine = engine_for(registry.get(registry.default), settings)
    engine.load()
    return engine


def child(args) -> int:
    """The restarted process: a fresh engine answers turn 2 of the saved chat."""
    engine = loaded_engine(args.data_dir)
    messages = [Message.text(m["role"], m["text"]) for m in json.loads(args.messages.read_text())]
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    text, final = turn(engine, messages, params, args.session)
    engine.unload()
    print(json.dumps({"text": text, "ttft_s": final.usage.ttft_s, "cached": final.usage.cached_tokens}))
    return 0


def restarted_turn(args, data_dir: Path, messages: list[Message], session: str) -> dict:
    spec = data_dir / "turn2.json"
    spec.write_text(json.dumps([{"role": m.role, "text": m.plain_text} for m in messages]))
    command = [sys.executable, __file__, "--child", "--data-dir", str(data_dir), "--messages", str(spec)]
    command += ["--session", session, "--max-tokens", str(args.max_tokens)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=3000, help="document size")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    data_dir = Path(tempfile.mkdtemp(prefix="l4p-bench-prefix-"))  # never the user's data
    engine = loaded_engine(data_dir)
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    doc = document(args.tokens, lambda text: engine.count_tokens([Message.text("user", text)]))
    first = [
        Message.text("system", "Answer from the document."),
        Message.text("user", f"{doc}\n\n{QUESTION}"),
    ]
    cold1, warm2, restart2, same, cached = [], [], [], True, []
    for rnd in range(args.rounds):
        session = f"bench-{rnd}"
        engine.drop_context()
        text1, final1 = turn(engine, first, params, session)
        engine.wait_saved()
        second = then(first, text1, FOLLOW_UP)
        restarted = restarted_turn(args, data_dir, second, session)
        text2, final2 = turn(engine, second, params, session)
        engine.drop_context()
        cold_text, _ = turn(engine, second, params)
        same = same and text2 == cold_text == restarted["text"]
        cold1.append(final1.usage.ttft_s)
        warm2.append(final2.usage.ttft_s)
        restart2.append(restarted["ttft_s"])
        cached.append((final2.usage.cached_tokens, restarted["cached"], final2.usage.prompt_tokens))
        print(
            f"round {rnd}: turn 1 {cold1[-1]:.3f} s ({final1.usage.prompt_tokens} tokens), "
            f"turn 2 {warm2[-1]:.3f} s, after restart {restart2[-1]:.3f} s, cached {cached[-1]}",
            file=sys.stderr,
        )
    engine.unload()
    turn1 = statistics.median(cold1)
    print(
        json.dumps(
            {
                "in_process_ratio": round(statistics.median(warm2) / turn1, 4),
                "restart_ratio": round(statistics.median(restart2) / turn1, 4),
                "same_answer": same,
                "turn1_ttft_s": round(turn1, 3),
                "turn2_ttft_s": round(statistics.median(warm2), 3),
                "restart_ttft_s": round(statistics.median(restart2), 3),
                "prompt_tokens": cached[-1][2],
                "cached_tokens": cached[-1][0],
                "rounds": args.rounds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
