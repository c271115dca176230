"""Follow-up turns without re-prefill, through the server engine (the embedded model's
llama-server child): a ~3,000-token document and a question (turn 1, cold: a chat
nobody asked before), then a follow-up (turn 2) answered by the same engine (its slot
still holds the prefix) and by a new engine in a new process, which restores the
chat's saved slot file. The anchor, in the same rounds: turn 2's prompt read cold (a
cache scope that never asked). Rounds are interleaved on the one host, so noise hits
all alike. Times to first text are this script's clock around engine.stream (a
restore included). Targets: turn 2 / turn 1 <= 0.03 in process, and after a restart;
the same greedy answer as a cold prefill.

    python bench/prefix_reuse.py [--rounds 3] [--max-tokens 32]

Last line: {"in_process_ratio": ..., "restart_ratio": ..., "same_answer": true, ...}"""

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.turns import timed_turn
from config import Settings
from engine import Final, Message, SamplingParams
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


SAVE_WAIT_S = 60.0


class Turn:
    """One answer: its text, the time to its first text on this script's clock, and
    the engine's usage (prompt and cached tokens)."""

    def __init__(self, text: str, ttft_s: float, final: Final):
        self.text, self.ttft_s, self.final = text, ttft_s, final

    def as_dict(self) -> dict:
        usage = self.final.usage
        return {
            "text": self.text,
            "ttft_s": self.ttft_s,
            "cached": usage.cached_tokens,
            "prompt": usage.prompt_tokens,
        }


def turn(engine, messages, params, session_key: str | None, scope: str) -> Turn:
    return Turn(*timed_turn(engine, messages, params, session_key, scope))


def then(messages: list[Message], answer: str, question: str) -> list[Message]:
    return [*messages, Message.text("assistant", answer), Message.text("user", question)]


def loaded_engine(data_dir: Path):
    settings = Settings(data_dir=data_dir)
    registry = load_registry(settings)
    engine = engine_for(registry.get(registry.default), settings)
    engine.load()
    return engine


def wait_saved(engine, scope: str, session: str) -> None:
    """Until the chat's slot file is on disk (the engine saves it on a thread)."""
    deadline = time.monotonic() + SAVE_WAIT_S
    while engine.slot_states.restorable(scope, session) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"the slot file of {session} was not saved within {SAVE_WAIT_S:.0f} s")
        time.sleep(0.05)


def child(args) -> int:
    """The restarted process: a fresh engine (a new llama-server) answers turn 2."""
    engine = loaded_engine(args.data_dir)
    messages = [Message.text(m["role"], m["text"]) for m in json.loads(args.messages.read_text())]
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    answer = turn(engine, messages, params, args.session, args.scope)
    engine.unload()
    print(json.dumps(answer.as_dict()))
    return 0


def restarted_turn(args, data_dir: Path, messages: list[Message], session: str, scope: str) -> dict:
    spec = data_dir / "turn2.json"
    spec.write_text(json.dumps([{"role": m.role, "text": m.plain_text} for m in messages]))
    command = [sys.executable, __file__, "--child", "--data-dir", str(data_dir), "--messages", str(spec)]
    command += ["--session", session, "--scope", scope, "--max-tokens", str(args.max_tokens)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the restarted process failed: {result.stderr.strip()[-500:]}")
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
    parser.add_argument("--scope", help=argparse.SUPPRESS)
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
    turn1, warm2, restart2, cold2 = [], [], [], []
    same_as_cold, same_as_restart = [], []  # per round: turn 2's answer against the anchors
    try:
        for rnd in range(args.rounds):
            scope, session = f"login-{rnd}", f"chat-{rnd}"  # a login that never asked: cold
            one = turn(engine, first, params, session, scope)
            wait_saved(engine, scope, session)
            second = then(first, one.text, FOLLOW_UP)
            restarted = restarted_turn(args, data_dir, second, session, scope)
            two = turn(engine, second, params, session, scope)
            cold = turn(engine, second, params, None, f"cold-{rnd}")
            same_as_cold.append(two.text == cold.text)
            same_as_restart.append(two.text == restarted["text"])
            if not two.text == cold.text == restarted["text"]:
                print(
                    f"answers differ: {two.text!r} / cold {cold.text!r} / restart {restarted['text']!r}",
                    file=sys.stderr,
                )
            turn1.append(one)
            warm2.append(two)
            restart2.append(restarted)
            cold2.append(cold)
            print(
                f"round {rnd}: turn 1 {one.ttft_s:.3f} s ({one.final.usage.prompt_tokens} tokens), "
                f"turn 2 {two.ttft_s:.3f} s ({two.final.usage.cached_tokens} of "
                f"{two.final.usage.prompt_tokens} cached), after restart {restarted['ttft_s']:.3f} s "
                f"({restarted['cached']} cached), cold turn 2 {cold.ttft_s:.3f} s "
                f"({cold.final.usage.cached_tokens} cached)",
                file=sys.stderr,
            )
    finally:
        engine.unload()
        shutil.rmtree(data_dir, ignore_errors=True)  # slot files: tens of MB a round
    first_s = statistics.median(t.ttft_s for t in turn1)
    warm_s = statistics.median(t.ttft_s for t in warm2)
    restart_s = statistics.median(t["ttft_s"] for t in restart2)
    cold_s = statistics.median(t.ttft_s for t in cold2)
    print(
        json.dumps(
            {
                "in_process_ratio": round(warm_s / first_s, 4),
                "restart_ratio": round(restart_s / first_s, 4),
                "vs_cold_turn2_ratio": round(warm_s / cold_s, 4),
                "same_answer": all(same_as_cold) and all(same_as_restart),
                "same_as_cold": all(same_as_cold),
                "same_as_restart": all(same_as_restart),
                "turn1_ttft_s": round(first_s, 3),
                "turn2_ttft_s": round(warm_s, 3),
                "restart_ttft_s": round(restart_s, 3),
                "cold_turn2_ttft_s": round(cold_s, 3),
                "prompt_tokens": warm2[-1].final.usage.prompt_tokens,
                "cached_tokens": warm2[-1].final.usage.cached_tokens,
                "restart_cached_tokens": restart2[-1]["cached"],
                "cold_cached_tokens": cold2[-1].final.usage.cached_tokens,
                "rounds": args.rounds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
