"""What a front end asks of one turn (`TurnRequest`), what it hears while the turn waits
(`Waiting`), and the one rule that turns a conversation into what the model reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from documents.context import Strategy
from documents.parts import ChatMessage
from engine.types import SamplingParams


@dataclass(frozen=True)
class TurnRequest:
    """One question to one model. The history is the stored branch of `session_id`
    up to `parent_id` (None: the question starts the chat, or a new branch at its
    root), or, for a client that keeps its own (the API), `history` as sent. Nothing
    is stored unless the model accepts the turn. Regenerating answers the stored
    question `question_id` again (its answer becomes a sibling of the old one)."""

    model: str  # catalogue name
    question: ChatMessage | None  # None with question_id
    params: SamplingParams
    session_id: str | None = None  # continue this chat; None: a new one
    parent_id: int | None = None
    question_id: int | None = None
    history: Sequence[ChatMessage] | None = None
    system: str | None = None  # None: the session's, else the model's
    owner: str | None = ""  # the login; None: the command line, which may continue any chat
    strategy: Strategy = "relevant"
    page_range: str = ""
    stop: Sequence[str] = ()
    n_ctx: int | None = None  # load the model at this context (None: its own)
    save: bool = True
    # The chat's KV state saved after the turn, for its next one. /v1 turns skip it: an
    # OpenAI client sends the whole history again, as a new chat, so the file would be
    # written (holding the server's other slots while it is) for nobody.
    save_kv: bool = True
    settings: dict[str, Any] = field(default_factory=dict)  # recorded on the session


@dataclass(frozen=True)
class Waiting:
    """The turn waits for `model` (its label): `place` 1 is next."""

    model: str
    place: int

    def line(self) -> str:
        if self.place <= 1:
            return f"⏳ waiting for {self.model}: you are next"
        ahead = self.place - 1
        return f"⏳ waiting for {self.model}: {ahead} request{'s' if ahead > 1 else ''} ahead of you"


def model_messages(
    history: Sequence[ChatMessage], system: str, question: ChatMessage | None = None
) -> list[ChatMessage]:
    """What the model reads: the system prompt (unless blank, or the history has its
    own), then the history, then the question."""
    messages = [*history, *([question] if question is not None else [])]
    if not system.strip() or any(message.role == "system" for message in messages):
        return messages
    return [ChatMessage.text("system", system.strip()), *messages]


def system_prompt(chosen: str | None, session_settings: dict[str, Any], model_default: str) -> str:
    """The turn's system prompt: the one asked for, else the session's (where '' means
    none), else the model's."""
    if chosen is not None:
        return chosen
    return str(session_settings.get("system", model_default) or "")
