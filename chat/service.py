"""One chat turn end to end, for every front end (page, API, CLI): the turn waits in its
model's lane, leases the model, reads its history from the store (or the client), fits
its documents into the loaded context, streams how far the model has read the prompt
and then the answer, and stores the question only once the model has accepted it (the
answer is saved as it streams; usage comes at the end). A refusal or a failure to
connect or load leaves nothing behind."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from documents.context import ContextReport, Strategy, expand_documents, fit_context
from documents.parts import ChatMessage
from engine.protocol import Engine, ProgressFn, check_messages
from engine.types import Final, PromptProgress, SamplingParams, TextDelta
from models.manager import ModelManager
from sessions import Store
from sessions.ids import new_session_id
from sessions.library import DocumentLibrary

from .conversation import TurnRequest, Waiting, model_messages, system_prompt
from .lanes import LaneLimit, Lanes
from .stops import StopScanner


@dataclass(frozen=True)
class SavedQuestion:
    session_id: str
    message_id: int


@dataclass(frozen=True)
class Prepared:
    """Before the first token: what goes in (the context report), and the question
    with the pages chosen for it."""

    report: ContextReport
    question: ChatMessage


@dataclass(frozen=True)
class Answered:
    """The one event that ends a turn: how the stream ended, with its usage, and the
    stored answer's id (None when nothing is saved)."""

    final: Final
    answer_id: int | None
    report: ContextReport
    question: SavedQuestion | None = None  # where the question is stored (None: not saved)


TurnEvent = Waiting | Prepared | PromptProgress | TextDelta | Answered


class ChatService:
    """Turns over one store, its document library and the loaded models. Thread-safe:
    requests wait in their model's lane (a local model answers one at a time, an
    endpoint up to its limit) and answer with a leased (pinned) model."""

    def __init__(
        self,
        store: Store,
        library: DocumentLibrary,
        models: ModelManager | None = None,
        endpoint_concurrency: int = 16,
    ):
        self.store = store
        self.library = library
        self.models = models
        self._endpoint_concurrency = endpoint_concurrency
        self.lanes = Lanes(self._lane_limit)

    # One turn, as every front end runs it

    def respond(
        self, request: TurnRequest, cancel: threading.Event, progress: ProgressFn | None = None
    ) -> Iterator[TurnEvent]:
        """Waiting... while others hold the model, then `answer`'s events. Input the
        model cannot take raises EngineInputError, a model that cannot load
        EngineLoadError, both before anything is stored. Stop (`cancel`) works while
        waiting too: the turn then ends with no event and nothing stored."""
        spec = self.models.registry.get(request.model)
        history, question, system = self._history(request, spec.system_prompt)
        with self.seated([request.model], cancel) as seat:
            for name, place in seat.places():
                yield Waiting(self._label(name), place)
            if not seat.admitted:
                return
            with self.models.leased_name(request.model, request.n_ctx, progress) as (engine,):
                used = {**request.settings, "system": system}
                yield from self.answer(
                    engine,
                    model_messages(history, system, question),
                    request.params,
                    cancel,
                    save=self._saver(request, history, used) if request.save else None,
                    strategy=request.strategy,
                    page_range=request.page_range,
                    stop=request.stop,
                    cache_scope=request.owner or "",
                    # A turn that is not saved neither reads nor writes the chat's KV state.
                    session_key=(request.session_id or new_session_id())
                    if request.save and request.save_kv
                    else None,
                )

    def seated(self, names: Sequence[str], cancel: threading.Event):
        """A claim on the lanes of `names` (a comparison's, a measurement's): a context
        manager whose `places()` says where it waits, holding them until it ends."""
        return self.lanes.seat(names, cancel)

    def _history(self, request: TurnRequest, model_system: str) -> tuple[list[ChatMessage], ChatMessage, str]:
        """The conversation before the question, the question, and the system prompt."""
        if request.history is not None or not request.session_id:
            history = list(request.history or ())
            return history, request.question, system_prompt(request.system, {}, model_system)
        session = (
            self.store.get_session(request.session_id)
            if request.owner is None
            else self.store.owned_session(request.session_id, request.owner)
        )
        question = request.question
        if request.question_id is not None:
            rows = self.store.branch(request.session_id, request.question_id)
            # Asked again as stored, or with other pages of its documents (widened).
            question = request.question or ChatMessage("user", rows[-1].parts)
            rows = rows[:-1]
        elif request.parent_id is not None:
            rows = self.store.branch(request.session_id, request.parent_id)
        else:
            rows = []
        history = self.store.chat_messages(rows)
        return history, question, system_prompt(request.system, session.settings, model_system)

    def _saver(self, request: TurnRequest, history: list[ChatMessage], used: dict[str, Any]):
        """Stores the question (after the client's own history, for the API) once the
        model has accepted the turn."""

        def save(question: ChatMessage, session_key: str) -> SavedQuestion:
            if request.question_id is not None:
                self.store.update_user_parts(request.question_id, question)  # the pages sent now
                return SavedQuestion(request.session_id, request.question_id)
            if request.history is None:
                return self.save_question(
                    question,
                    session_id=request.session_id,
                    parent_id=request.parent_id,
                    owner=request.owner,
                    model=request.model,
                    settings=used,
                    new_id=session_key,
                )
            session = self.store.create_session(
                model=request.model, settings=used, owner=request.owner or "", session_id=session_key
            )
            parent = None
            for message in history:
                parent = self.store.add_user_message(session, parent, message)
            return SavedQuestion(session, self.store.add_user_message(session, parent, question))

        return save

    def _lane_limit(self, name: str) -> LaneLimit:
        spec = self.models.registry.specs.get(name) if self.models else None
        if spec is not None and spec.is_remote:
            return LaneLimit(spec.max_concurrency or self._endpoint_concurrency)
        settings = self.models.settings if self.models else None
        if spec is not None and spec.backend == "llama.cpp" and settings:
            return LaneLimit(settings.local_slots)  # llama-server's slots
        return LaneLimit(1)

    def _label(self, name: str) -> str:
        spec = self.models.registry.specs.get(name) if self.models else None
        return spec.label if spec else name

    # The parts of a turn

    def save_question(
        self,
        question: ChatMessage,
        *,
        session_id: str | None = None,
        parent_id: int | None = None,
        owner: str | None = "",
        model: str = "",
        settings: dict[str, Any] | None = None,
        new_id: str | None = None,
    ) -> SavedQuestion:
        """The question committed in `session_id` (which `owner` must own; None: the
        command line, which may continue any chat) or a new session of theirs (with
        the id `new_id` when given)."""
        if session_id:
            if owner is not None:
                self.store.owned_session(session_id, owner)
            self.store.update_session(session_id, model=model or None, settings=settings)
        else:
            session_id = self.store.create_session(
                model=model, settings=settings, owner=owner or "", session_id=new_id
            )
        return SavedQuestion(session_id, self.store.add_user_message(session_id, parent_id, question))

    def answer(
        self,
        engine: Engine,
        messages: Sequence[ChatMessage],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        *,
        saved: SavedQuestion | None = None,
        save: Callable[[ChatMessage, str], SavedQuestion] | None = None,
        strategy: Strategy = "relevant",
        page_range: str = "",
        stop: Sequence[str] = (),
        cache_scope: str = "",
        session_key: str | None = None,
    ) -> Iterator[TurnEvent]:
        """Prepared, PromptProgress... (the model reading the prompt), TextDelta..., then
        Answered. `messages` end with the question (its documents still as
        DocumentParts). The question is stored by `save` (with the pages chosen) once
        the model has accepted the prompt, or was `saved` already. Input the model
        cannot take raises EngineInputError before anything streams or is stored. The
        answer ends before the first of the `stop` strings (finish reason "stop").
        Leaving early (closing this iterator) stores the answer as cancelled.
        `cache_scope` is the asking user (their login): the engine reuses only their
        own work; `session_key` names the chat's KV state (its next turn evaluates
        only new tokens)."""
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
        key = saved.session_id if saved else session_key
        events = engine.stream(prompt, params, cancel, session_key=key, cache_scope=cache_scope)
        with contextlib.closing(events):
            first = next(events)  # input the model refuses raises here, before anything is stored
            if save is not None:
                saved = save(question, key)
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
        yield Answered(final, writer.id if writer else None, report, saved)

    def _writer(self, saved: SavedQuestion | None, model: str, params, report: ContextReport):
        if saved is None:
            return None
        return self.store.start_answer(saved.session_id, saved.message_id, model, params, report.as_dict())
