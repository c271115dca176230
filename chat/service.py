"""One chat turn end to end, for every front end: the question saved before the model
starts, its documents fitted into the loaded context (the pages chosen stored with it),
how far the model has read the prompt, the answer streamed and saved as it streams,
usage reported at the end."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from documents.context import ContextReport, Strategy, expand_documents, fit_context
from engine.protocol import Engine, check_messages
from engine.types import Final, Message, PromptProgress, SamplingParams, TextDelta
from sessions import Store
from sessions.library import DocumentLibrary

from .stops import StopScanner


@dataclass(frozen=True)
class Prepared:
    """Before the first token: what goes in (the context report), and the question
    with the pages chosen for it."""

    report: ContextReport
    question: Message


@dataclass(frozen=True)
class Answered:
    """The one event that ends a turn: how the stream ended, with its usage, and the
    stored answer's id (None when nothing is saved)."""

    final: Final
    answer_id: int | None
    report: ContextReport


TurnEvent = Prepared | PromptProgress | TextDelta | Answered


@dataclass(frozen=True)
class SavedQuestion:
    session_id: str
    message_id: int


class ChatService:
    """Turns over one store and its document library. Thread-safe as the store is;
    generation itself is serialised by the caller (one model, one answer at a time)."""

    def __init__(self, store: Store, library: DocumentLibrary):
        self.store = store
        self.library = library

    def save_question(
        self,
        question: Message,
        *,
        session_id: str | None = None,
        parent_id: int | None = None,
        owner: str | None = "",
        model: str = "",
        settings: dict[str, Any] | None = None,
    ) -> SavedQuestion:
        """Write-ahead: the question is committed before any model work, in `session_id`
        (which `owner` must own; None: the command line, which may continue any chat)
        or a new session of theirs."""
        if session_id:
            if owner is not None:
                self.store.owned_session(session_id, owner)
            self.store.update_session(session_id, model=model or None, settings=settings)
        else:
            session_id = self.store.create_session(model=model, settings=settings, owner=owner or "")
        return SavedQuestion(session_id, self.store.add_user_message(session_id, parent_id, question))

    def answer(
        self,
        engine: Engine,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        *,
        saved: SavedQuestion | None = None,
        strategy: Strategy = "relevant",
        page_range: str = "",
        stop: Sequence[str] = (),
        cache_scope: str = "",
    ) -> Iterator[TurnEvent]:
        """Prepared, PromptProgress... (the model reading the prompt), TextDelta..., then
        Answered. `messages` end with the question (its documents still as
        DocumentParts). Input the model cannot take raises EngineInputError before
        anything streams or an answer row exists. The answer ends before the first of
        the `stop` strings (finish reason "stop"). Leaving early (closing this iterator)
        stores the answer as cancelled. `cache_scope` is the asking user (their login):
        the engine reuses only their own work."""
        fitted, report = fit_context(
            engine, list(messages), self.library, strategy, page_range, params.max_tokens
        )
        question = fitted[-1]
        if saved is not None and question != messages[-1]:
            self.store.update_user_parts(saved.message_id, question)  # later turns send the same pages
        prompt = expand_documents(fitted, self.library)
        check_messages(engine, prompt)
        yield Prepared(report, question)
        cancel = cancel or threading.Event()  # a stop string ends the run through it
        scanner = StopScanner(stop)
        # The session id names the chat's KV state: its next turn evaluates only new tokens.
        key = saved.session_id if saved else None
        events = engine.stream(prompt, params, cancel, session_key=key, cache_scope=cache_scope)
        with contextlib.closing(events):
            first = next(events)  # input the model refuses raises here, before anything is stored
            writer = self._writer(saved, engine.name, params, report)
            final = Final("cancelled")
            with writer or contextlib.nullcontext():
                for event in itertools.chain([first], events):
                    if isinstance(event, PromptProgress):
                        yield event
                        continue
                    if isinstance(event, TextDelta):
                        text = scanner.feed(event.text)
                        if scanner.hit:
                            cancel.set()  # the model stops within a token; its usage still comes
                    else:
                        text = scanner.flush()
                        final = replace(event, finish_reason="stop") if scanner.hit else event
                    if text:
                        if writer:
                            writer.append(text)
                        yield TextDelta(text)
                    if isinstance(event, Final) and writer:
                        writer.finish(final)
        yield Answered(final, writer.id if writer else None, report)

    def record_failure(self, saved: SavedQuestion | None, model: str, error: str) -> int | None:
        """A model that could not load still ends the turn: an answer with status
        'error' saying why."""
        if saved is None:
            return None
        with self.store.start_answer(saved.session_id, saved.message_id, model) as writer:
            writer.finish(Final("error", error=error))
        return writer.id

    def _writer(self, saved: SavedQuestion | None, model: str, params, report: ContextReport):
        if saved is None:
            return None
        return self.store.start_answer(saved.session_id, saved.message_id, model, params, report.as_dict())
