"""The vocabulary every backend speaks: messages with ordered attachments, sampling
parameters, capability declarations, and the events a stream yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from errors import Fault, UserError

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


class EngineInputError(UserError):
    """Bad input the user can fix (wrong file, too long a prompt); the message is
    one line meant to be shown as-is in the UI and on the CLI."""


class EngineLoadError(Fault):
    """A model could not be loaded (missing file, bad GGUF, not enough memory)."""


@dataclass(frozen=True)
class ImagePart:
    """An image at its place in a message. `data` holds encoded bytes (PNG/JPEG) that
    the engine already validated; `name` is only for display."""

    data: bytes
    mime: str
    name: str = "image"
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class TextPart:
    text: str


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Message:
    """One turn as a model evaluates it: text and images, nothing else. Parts keep
    their order: Llama 4 is early-fusion, so "image 1" and "image 2" mean the order in
    which they sit in the text. (What a chat holds, documents and citations included,
    is `documents.parts.ChatMessage`; one function turns it into this.)"""

    role: Role
    parts: tuple[Part, ...]

    @classmethod
    def text(cls, role: Role, text: str) -> Message:
        return cls(role, (TextPart(text),))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))

    @property
    def plain_text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(frozen=True)
class SamplingParams:
    """Meta's Llama 4 defaults: temperature 0.6, top_p 0.9, min_p 0.01."""

    max_tokens: int = 1024
    temperature: float = 0.6
    top_p: float = 0.9
    min_p: float = 0.01
    top_k: int = 0
    repeat_penalty: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Capabilities:
    vision: bool
    n_ctx: int  # the context this deployment loaded (the model card's maximum is ModelSpec.max_context)
    accepted_mime: tuple[str, ...] = ("text/plain",)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class PromptProgress:
    """How far the model has read the prompt, before its first token: `done` of `total`
    prompt tokens (an image counts as its tokens), `reused` of them taken from a KV
    cache instead of evaluated, `elapsed_s` since the request started. `done` is None
    where the backend cannot see the reading (a server that streams no figures): then
    only the wait is known."""

    done: int | None
    total: int
    elapsed_s: float
    reused: int = 0

    @property
    def seconds_left(self) -> float | None:
        """At the rate read so far; None until there is one."""
        if self.done is None or self.done <= self.reused or self.elapsed_s <= 0:
            return None
        rate = (self.done - self.reused) / self.elapsed_s
        return max(self.total - self.done, 0) / rate


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0  # the whole prompt, reused or not
    completion_tokens: int = 0
    ttft_s: float = 0.0
    prompt_tps: float = 0.0
    decode_tps: float = 0.0
    total_s: float = 0.0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache instead of evaluated


@dataclass(frozen=True)
class Final:
    """The one event that ends every stream."""

    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


StreamEvent = PromptProgress | TextDelta | Final
"""A stream: PromptProgress while the prompt is read (rising), TextDelta..., one Final."""
