"""Several models answer one prompt: at the same time where memory allows, one group
after another where it does not. Works over the Engine protocol, so any backend
takes part; the caller (UI, CLI, benchmark) gets one merged stream of events."""

from __future__ import annotations

import contextvars
import functools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from documents.context import expand_documents
from documents.parts import ChatMessage
from engine.protocol import Engine, ProgressFn, check_messages
from engine.spec import VISION_HINT, ModelSpec
from engine.types import (
    EngineInputError,
    Final,
    Message,
    PromptProgress,
    SamplingParams,
    TextDelta,
)
from errors import Fault, UserError
from models.manager import ModelManager

JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CompareJob:
    """One model's part: its own history (follow-ups continue it) and sampling."""

    spec: ModelSpec
    messages: Sequence[ChatMessage]
    params: SamplingParams
    # Turns documents into pages fitted to this model once it is loaded (its context
    # and whether it sees decide which pages go); None when there are none.
    prepare: Callable[[Engine, Sequence[ChatMessage]], Sequence[Message]] | None = None
    cache_scope: str = ""  # whose request: reuse stays within it (see Engine.stream)


@dataclass(frozen=True)
class Refused:
    """This model could not take part (its file, or input it cannot take); nothing
    was generated. `message` is one line for the user."""

    message: str


@dataclass(frozen=True)
class ModelEvent:
    index: int  # which job
    event: PromptProgress | TextDelta | Final | Refused


@dataclass(frozen=True)
class Notice:
    """A line for the user about the run as a whole (loading, running in turn)."""

    text: str


def run_comparison(
    manager: ModelManager,
    jobs: Sequence[CompareJob],
    cancel: threading.Event,
    progress: ProgressFn | None = None,
) -> Iterator[ModelEvent | Notice]:
    """Every job ends with exactly one Final or Refused event."""
    plan = manager.plan([job.spec for job in jobs])
    if plan.serial:
        yield Notice(plan.reason)
    for group in plan.groups:
        if cancel.is_set():
            yield from (ModelEvent(i, Final("cancelled")) for i in group)
            continue
        together = [jobs[i].spec for i in group]
        pinned: list[str] = []  # the group's models stay loaded until all of it is done
        starts = {i: functools.partial(_start, manager, jobs[i], together, progress, pinned) for i in group}
        try:
            yield from stream_together({i: (starts[i], jobs[i]) for i in group}, cancel)
        finally:
            manager.unpin(pinned)


def _start(manager: ModelManager, job: CompareJob, together, progress, pinned: list[str]) -> Engine:
    """In the model's own thread: load it (room kept for the rest of its group), then
    check the input against the loaded engine."""
    engine = manager.acquire([job.spec], progress, keep=together, pin=True)[0]
    pinned.append(job.spec.name)
    if not job.prepare:  # with documents, the prepared (expanded) messages are checked
        check_messages(engine, job.messages)
    return engine


def check_jobs(jobs: Sequence[CompareJob], vision_hint: str = VISION_HINT) -> None:
    """Refuse, before anything loads or is stored, a model whose files are missing
    and input a chosen model cannot take (`vision_hint`: what to do about images, the
    page's names the vision models it offers now)."""
    for job in jobs:
        missing = job.spec.missing()
        if missing and job.spec.is_remote:
            raise EngineInputError(f"{job.spec.label} needs {missing[0]}")
        if missing:
            raise EngineInputError(f"{job.spec.label}: file not found: {missing[0]}")
        if not job.messages:
            raise EngineInputError("nothing to send: the conversation is empty")
        if not job.spec.vision and any(m.images for m in job.messages):
            raise EngineInputError(f"{job.spec.label} cannot see images; {vision_hint}")


def stream_together(
    runs: dict[int, tuple[Callable[[], Engine], CompareJob]],
    cancel: threading.Event,
) -> Iterator[ModelEvent]:
    """Each model starts (`runs[i][0]` returns its loaded engine) and streams in its
    own thread (llama.cpp releases the GIL while it computes); events come out merged
    in the order they happen. Closing this iterator early cancels every run and waits
    for the threads."""
    events: queue.Queue[ModelEvent | None] = queue.Queue()
    threads = [
        # Each thread runs in a copy of this context: Gradio's progress bar reads it.
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(_pump, index, start, job, cancel, events),
            daemon=True,
        )
        for index, (start, job) in runs.items()
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = events.get()
            if item is None:
                running -= 1
            else:
                yield item
    finally:
        if running:
            cancel.set()
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)


def _pump(index, start, job: CompareJob, cancel: threading.Event, events: queue.Queue) -> None:
    ended = False
    try:
        engine = start()
        messages = job.prepare(engine, job.messages) if job.prepare else expand_documents(job.messages, None)
        check_messages(engine, messages)
        for event in engine.stream(messages, job.params, cancel, cache_scope=job.cache_scope):
            ended = ended or isinstance(event, Final)
            events.put(ModelEvent(index, event))
    except (UserError, Fault) as exc:  # before anything streamed
        events.put(ModelEvent(index, Refused(str(exc))))
        ended = True
    except Exception as exc:  # a backend bug must not take the other columns down
        events.put(ModelEvent(index, Final("error", error=f"{type(exc).__name__}: {exc}")))
        ended = True
    finally:
        if not ended:
            events.put(ModelEvent(index, Final("error", error="the stream ended without a result")))
        events.put(None)
