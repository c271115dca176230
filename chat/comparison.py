"""A comparison's state and one turn of it, without Gradio: the Compare tab and
`launch.py compare` both run turns through here.

Each column is one model with its own conversation, so a follow-up goes to every
model with that model's history. The first question is stored once with the answers
as its siblings; a follow-up is stored under each model's last answer."""

from __future__ import annotations

import contextlib
import random
import string
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chat.together import CompareJob, ModelEvent, Notice, Refused, check_jobs, run_comparison
from documents.context import PageSource, document_preparer
from engine.protocol import ProgressFn
from engine.spec import VISION_HINT
from engine.types import EngineInputError, Final, PromptProgress, TextDelta
from models.catalogue import Registry
from models.manager import ModelManager
from sessions import Store
from sessions.figures import format_metrics

from .metrics import live_speed, reading_line
from .turns import Turn, answer_status, assistant_turn, conversation_of

MIN_MODELS, MAX_MODELS = 2, 4
LETTERS = string.ascii_uppercase


@dataclass
class Column:
    model: str
    label: str
    n_ctx: int
    turns: list[Turn] = field(default_factory=list)  # this model's own conversation
    text: str = ""  # the answer streaming now
    reading: PromptProgress | None = None  # how far the model has read the prompt
    final: Final | None = None
    refused: str = ""  # why this model gave no answer this turn
    prompt_id: int | None = None  # the stored question this turn answers
    # Live speed while the answer streams (monotonic seconds; pieces ~ tokens).
    asked_at: float | None = None
    first_at: float | None = None
    pieces: int = 0

    @property
    def streaming(self) -> bool:
        return self.final is None and not self.refused


@dataclass
class Comparison:
    columns: list[Column]  # in the order shown (shuffled when blind)
    blind: bool = False
    session_id: str = ""
    comparison_id: int | None = None  # the latest turn's
    voted: bool = False  # the latest turn has a vote
    revealed: bool = True  # names shown (blind: after the first vote)
    notice: str = ""
    pending: Turn | None = None  # the question being answered now
    owner: str = ""  # the login the saved comparison belongs to ('' without logins)

    def title(self, index: int) -> str:
        letter = f"Model {LETTERS[index]}"
        return f"{letter}: {self.columns[index].label}" if self.revealed else letter

    @property
    def started(self) -> bool:
        return any(column.turns for column in self.columns)


def new_comparison(registry: Registry, names: Sequence[str], blind: bool, rng=random) -> Comparison:
    """Raises EngineInputError unless 2-4 different known models are chosen."""
    names = list(names or [])
    if not MIN_MODELS <= len(names) <= MAX_MODELS:
        raise EngineInputError(f"choose {MIN_MODELS} to {MAX_MODELS} models to compare, not {len(names)}")
    if len(set(names)) != len(names):
        raise EngineInputError("choose different models: each one once")
    specs = [registry.get(name) for name in names]
    if blind:
        rng.shuffle(specs)  # the order must not give the names away
    columns = [Column(spec.name, spec.label, spec.n_ctx) for spec in specs]
    return Comparison(columns, blind=blind, revealed=not blind)


def run_turn(
    comparison: Comparison,
    question: Turn,
    registry: Registry,
    manager: ModelManager,
    store: Store | None,
    cancel: threading.Event,
    max_tokens: int | None = None,
    progress: ProgressFn | None = None,
    library: PageSource | None = None,
    vision_hint: str = VISION_HINT,
) -> Iterator[Comparison]:
    """Send `question` to every column; yields the comparison as answers stream.
    Input a model cannot take raises EngineInputError (with `vision_hint` for images)
    before anything is stored."""
    owner = comparison.owner
    jobs = [_job(registry, column, question, max_tokens, library, owner) for column in comparison.columns]
    check_jobs(jobs, vision_hint)
    for column in comparison.columns:
        column.text, column.final, column.refused, column.reading = "", None, "", None
        column.asked_at, column.first_at, column.pieces = time.monotonic(), None, 0
    writers = _start_storing(comparison, question, jobs, store) if store is not None else []
    comparison.voted, comparison.notice, comparison.pending = False, "", question
    with contextlib.ExitStack() as stack:
        for writer in writers:
            stack.enter_context(writer)  # leaving early stores the answers as cancelled
        yield comparison  # stored, not yet answered
        events = stack.enter_context(contextlib.closing(run_comparison(manager, jobs, cancel, progress)))
        for event in events:
            if isinstance(event, Notice):
                comparison.notice = event.text
            else:
                _apply(comparison.columns[event.index], event, writers[event.index] if writers else None)
            yield comparison
    for column, writer in zip(comparison.columns, writers or [None] * len(jobs), strict=True):
        _close_turn(column, question, writer.id if writer else None)
    comparison.pending = None
    yield comparison


def _job(
    registry: Registry,
    column: Column,
    question: Turn,
    max_tokens: int | None,
    library: PageSource | None,
    owner: str,
) -> CompareJob:
    spec = registry.get(column.model).at_context(column.n_ctx)
    messages = conversation_of([*column.turns, question], spec.system_prompt)
    params = spec.sampling_params(max_tokens=max_tokens)
    with_documents = library is not None and any(m.documents for m in messages)
    prepare = document_preparer(library, params.max_tokens) if with_documents else None
    return CompareJob(spec, messages, params, prepare, cache_scope=owner)


def _start_storing(comparison: Comparison, question: Turn, jobs: list[CompareJob], store: Store) -> list:
    columns = comparison.columns
    if not comparison.session_id:
        settings = {"compare": [c.model for c in columns], "blind": comparison.blind}
        # Shown in the chat list: a blind comparison must not name its models there.
        label = "compare (blind)" if comparison.blind else "compare: " + ", ".join(c.model for c in columns)
        comparison.session_id = store.create_session(model=label, settings=settings, owner=comparison.owner)
    if comparison.started:
        parents = [c.turns[-1].id for c in columns]
        prompt_ids = [store.add_user_message(comparison.session_id, p, question.message) for p in parents]
    else:  # the first question once: the answers become its siblings
        prompt_ids = [store.add_user_message(comparison.session_id, None, question.message)] * len(columns)
    started = store.comparisons.start(
        comparison.session_id,
        prompt_ids,
        [c.model for c in columns],
        [job.params for job in jobs],
        blind=not comparison.revealed,
    )
    comparison.comparison_id = started.id
    for column, prompt_id in zip(columns, prompt_ids, strict=True):
        column.prompt_id = prompt_id
    return started.writers


def _apply(column: Column, event: ModelEvent, writer) -> None:
    happened = event.event
    if isinstance(happened, PromptProgress):
        column.reading = happened
    elif isinstance(happened, TextDelta):
        column.text += happened.text
        column.first_at = column.first_at or time.monotonic()
        column.pieces += 1
        if writer:
            writer.append(happened.text)
    elif isinstance(happened, Refused):
        column.refused = happened.message
        if writer:
            writer.finish(Final("error", error=happened.message))
    else:
        column.final = happened
        if writer:
            writer.finish(happened)


def _close_turn(column: Column, question: Turn, answer_id: int | None) -> None:
    """The question and answer join this model's history."""
    asked = Turn(question.message, files=list(question.files), id=column.prompt_id)
    if column.refused:
        answer = assistant_turn("", "error", f"error: {column.refused}")
    else:
        final = column.final or Final("cancelled")
        answer = assistant_turn(column.text, answer_status(final), metrics_line(column))
    answer.id = answer_id
    column.turns = [*column.turns, asked, answer]


def metrics_line(column: Column, now: float | None = None) -> str:
    """TTFT, prompt and decode speed, tokens, context used, finish reason; while the
    answer streams, the time to its first token and its pace so far."""
    if column.refused:
        return f"error: {column.refused}"
    if column.final is None:
        now = time.monotonic() if now is None else now
        if column.text and column.asked_at is not None and column.first_at is not None:
            return live_speed(column.first_at - column.asked_at, column.pieces, now - column.first_at)
        if column.text:
            return "streaming…"
        return reading_line(column.reading) if column.reading else "waiting…"
    u = column.final.usage
    line = format_metrics(
        u.ttft_s, u.prompt_tps, u.decode_tps, u.prompt_tokens, u.completion_tokens, column.final.finish_reason
    )
    used = u.prompt_tokens + u.completion_tokens
    line += f" · context {used:,}/{column.n_ctx:,} ({used / column.n_ctx:.0%})"
    return f"error: {column.final.error} · {line}" if column.final.error else line
