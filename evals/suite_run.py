"""Run a multi-turn instruction suite on models, save each finished conversation, and
report accuracy per turn, overall and per check type, with the tokens each turn cost.

A conversation is the unit of work: its turns run in order, each answer becomes part
of the next prompt, and all its turns are saved together once it ends, so a run
stopped half-way resumes at the first conversation it does not have. Accuracy is the
share of checks passed (instruction-level, as Multi-IF reports it): a turn with one
passable and one impossible check scores 0.5."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from engine.types import Final, Message, SamplingParams, TextDelta
from evals.checks import run_check
from evals.suite_file import Conversation
from sessions.evals import EvalResult

ProgressFn = Callable[[float, str], None]
# Greedy by default: a suite compares models, and sampling noise would blur that.
SUITE_SAMPLING = SamplingParams(temperature=0.0, max_tokens=512)


@dataclass(frozen=True)
class SuiteReport:
    model: str
    conversations: int
    turns: tuple[float, ...]  # accuracy at turn 1, 2, ...
    accuracy: float
    by_check: dict[str, float]
    tokens_per_turn: tuple[float, ...]

    def summary(self) -> dict:
        """The `--json` object."""
        return {
            "model": self.model,
            "conversations": self.conversations,
            "turns": list(self.turns),
            "accuracy": self.accuracy,
            "by_check": self.by_check,
            "tokens_per_turn": list(self.tokens_per_turn),
        }


def run_conversation(engine, conversation: Conversation, params: SamplingParams, system: str, cancel):
    """Every turn's EvalResult (model filled in by the caller), or None if stopped."""
    history = [Message.text("system", system)] if system else []
    results = []
    for number, turn in enumerate(conversation.turns, start=1):
        history.append(Message.text("user", turn.prompt))
        text, final = _answer(engine, history, params, cancel)
        if final.finish_reason == "cancelled":
            return None
        history.append(Message.text("assistant", text))
        checks = [run_check(text, check) for check in turn.checks]
        detail = {
            "checks": [{"type": c.type, "passed": c.passed, "detail": c.detail} for c in checks],
            "finish_reason": final.finish_reason,
            "error": final.error,
        }
        passed = sum(c.passed for c in checks)
        tokens = final.usage.completion_tokens
        results.append(EvalResult("", conversation.id, number, passed, len(checks), tokens, text, detail))
    return results


def _answer(engine, history: Sequence[Message], params: SamplingParams, cancel) -> tuple[str, Final]:
    parts: list[str] = []
    final = Final("error", error="no answer")
    for event in engine.stream(history, params, cancel):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Final):
            final = event
    return "".join(parts), final


def run_suite(
    store,
    run_id: int,
    engine,
    model: str,
    conversations: Sequence[Conversation],
    params: SamplingParams = SUITE_SAMPLING,
    system: str = "",
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> int:
    """Runs the conversations this run does not have yet for `model`; returns how many
    it ran. A conversation stopped mid-way is not saved (it runs again on resume)."""
    report = progress or (lambda fraction, what: None)
    cancel = cancel or threading.Event()
    done = store.evals.done_items(run_id, model)
    todo = [c for c in conversations if c.id not in done]
    for number, conversation in enumerate(todo):
        if cancel.is_set():
            break
        report(number / max(len(todo), 1), f"{model}: {conversation.id} ({number + 1} of {len(todo)})")
        results = run_conversation(engine, conversation, params, system, cancel)
        if results is None:
            break
        store.evals.record_all(run_id, [_named(r, model) for r in results])
    report(1.0, f"{model}: done")
    return len(todo)


def _named(result: EvalResult, model: str) -> EvalResult:
    return replace(result, model=model)


def summarize(results: Iterable[EvalResult], models: Sequence[str]) -> list[SuiteReport]:
    """One report per model, from whatever the store holds (a resumed run included)."""
    by_model: dict[str, list[EvalResult]] = defaultdict(list)
    for result in results:
        by_model[result.model].append(result)
    return [_report(model, by_model.get(model, [])) for model in models]


def _report(model: str, results: list[EvalResult]) -> SuiteReport:
    turns: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # passed, total, tokens, answers
    checks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        for slot, value in enumerate((r.passed, r.total, r.completion_tokens, 1)):
            turns[r.turn][slot] += value
        for check in r.detail.get("checks", []):
            checks[check["type"]][0] += bool(check["passed"])
            checks[check["type"]][1] += 1
    numbers = sorted(turns)
    passed, total = sum(turns[n][0] for n in numbers), sum(turns[n][1] for n in numbers)
    return SuiteReport(
        model=model,
        conversations=len({r.item for r in results}),
        turns=tuple(_share(turns[n][0], turns[n][1]) for n in numbers),
        accuracy=_share(passed, total),
        by_check={kind: _share(p, t) for kind, (p, t) in sorted(checks.items())},
        tokens_per_turn=tuple(round(turns[n][2] / turns[n][3], 1) for n in numbers),
    )


def _share(passed: int, total: int) -> float:
    return round(passed / total, 4) if total else 0.0
