"""The one interface every backend implements (llama.cpp today; transformers and
OpenAI-compatible servers plug in behind the same shape)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from engine.types import Capabilities, Message, SamplingParams, StreamEvent

ProgressFn = Callable[[float, str], None]


@runtime_checkable
class Engine(Protocol):
    name: str
    label: str
    capabilities: Capabilities

    @property
    def loaded(self) -> bool: ...

    def load(self, progress: ProgressFn | None = None) -> None:
        """Load weights; report (fraction, what) while doing it. Raises EngineLoadError."""

    def unload(self) -> None: ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt size of these messages as the model will see them, images included.
        Raises EngineInputError when an input cannot be sent to this model."""

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        *,
        session_key: str | None = None,
        cache_scope: str = "",
    ) -> Iterator[StreamEvent]:
        """Yield PromptProgress while the prompt is read (`done` rising to `total`, Stop
        honoured between reports), then TextDelta events, then exactly one Final. Input
        the model cannot take raises EngineInputError before anything is yielded;
        failures after that end the stream with Final(finish_reason="error"). Consumers
        that show no progress skip PromptProgress. `session_key` names the chat
        (the store's session id) so a backend can keep or restore its KV state;
        backends without such state ignore it. `cache_scope` names whose request this
        is (the login): a backend reuses work (a KV prefix, image embeddings) only
        between requests of the same scope, so neither its answers nor its counts or
        timings tell one user what another sent."""


@runtime_checkable
class ScoresPrompts(Protocol):
    """A backend that can give the log-probabilities of every prompt token (what the
    fidelity measure compares)."""

    def prompt_logprobs(self, tokens: Sequence[int]) -> Iterator: ...


def check_messages(engine: Engine, messages: Sequence[Message]) -> None:
    """Refuse input this engine cannot take, before any model work (no load needed)."""
    from engine.spec import VISION_HINT
    from engine.types import EngineInputError, ImagePart, TextPart

    if not messages:
        raise EngineInputError("nothing to send: the conversation is empty")
    if any(not isinstance(p, TextPart | ImagePart) for m in messages for p in m.parts):
        raise EngineInputError("only text and images can reach a model; expand documents first (a bug)")
    if not engine.capabilities.vision and any(m.images for m in messages):
        raise EngineInputError(f"{engine.label} cannot see images; {VISION_HINT}")
