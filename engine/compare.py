"""Several models answer one prompt: at the same time where memory allows, one group
after another where it does not. Works over the Engine protocol, so any backend
takes part; the caller (UI, CLI, benchmark) gets one merged stream of events."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.manager import ModelManager
from engine.protocol import Engine, ProgressFn, check_messages
from engine.registry import VISION_HINT, ModelSpec
from engine.types import EngineInputError, EngineLoadError, Final, Message, SamplingParams, TextDelta

JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CompareJob:
    """One model's part: its own history (follow-ups continue it) and sampling."""

    spec: ModelSpec
    messages: Sequence[Message]
    params: SamplingParams


@dataclass(frozen=True)
class Refused:
    """This model could not take part (its file, or input it cannot take); nothing
    was generated. `message` is one line for the user."""

    message: str


@dataclass(frozen=True)
class ModelEvent:
    index: int  # which job
    event: TextDelta | Final | Refused


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
        engines: dict[int, Engine] = {}
        for index in group:
            job = jobs[index]
            try:
                loaded = [jobs[i].spec for i in engines]
                engine = manager.acquire([*loaded, job.spec], progress)[-1]
                check_messages(engine, job.messages)
                engines[index] = engine
            except (EngineInputError, EngineLoadError) as exc:
                yield ModelEvent(index, Refused(str(exc)))
        yield from stream_together({i: (engine, jobs[i]) for i, engine in engines.items()}, cancel)


def check_jobs(jobs: Sequence[CompareJob]) -> None:
    """Refuse, before anything loads or is stored, a model whose files are missing
    and input a chosen model cannot take."""
    for job in jobs:
        missing = job.spec.missing()
        if missing and job.spec.is_remote:
            raise EngineInputError(f"{job.spec.label} needs {missing[0]}")
        if missing:
            raise EngineInputError(f"{job.spec.label}: file not found: {missing[0]}")
        if not job.messages:
            raise EngineInputError("nothing to send: the conversation is empty")
        if not job.spec.vision and any(m.images for m in job.messages):
            raise EngineInputError(f"{job.spec.label} cannot see images; {VISION_HINT}")


def stream_together(
    runs: dict[int, tuple[Engine, CompareJob]], cancel: threading.Event, share_cpu: bool = True
) -> Iterator[ModelEvent]:
    """Each engine streams in its own thread (llama.cpp releases the GIL while it
    computes); events come out merged in the order they happen. Closing this
    iterator early cancels every run and waits for the threads. With `share_cpu`,
    CPU backends that offer it split the threads between them meanwhile."""
    sharing = [engine for engine, _ in runs.values() if hasattr(engine, "share_cpu")]
    if share_cpu and len(sharing) > 1:
        for engine in sharing:
            engine.share_cpu(len(sharing))
    events: queue.Queue[ModelEvent | None] = queue.Queue()
    threads = [
        threading.Thread(target=_pump, args=(index, engine, job, cancel, events), daemon=True)
        for index, (engine, job) in runs.items()
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
        if share_cpu and len(sharing) > 1:
            for engine in sharing:
                engine.share_cpu(1)


def _pump(index: int, engine: Engine, job: CompareJob, cancel: threading.Event, events: queue.Queue) -> None:
    ended = False
    try:
        for event in engine.stream(job.messages, job.params, cancel):
            ended = ended or isinstance(event, Final)
            events.put(ModelEvent(index, event))
    except EngineInputError as exc:  # raised before anything streamed (the protocol says so)
        events.put(ModelEvent(index, Refused(str(exc))))
        ended = True
    except Exception as exc:  # a backend bug must not take the other columns down
        events.put(ModelEvent(index, Final("error", error=f"{type(exc).__name__}: {exc}")))
        ended = True
    finally:
        if not ended:
            events.put(ModelEvent(index, Final("error", error="the stream ended without a result")))
        events.put(None)
