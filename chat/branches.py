"""Versions of a turn: an edited question or a regenerated answer stays in the store
beside the original (siblings: the same parent). Which version a turn is, where its
neighbours are, and the branch a chosen version (or a search hit) belongs to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sessions import Store


@dataclass(frozen=True)
class Versions:
    """This turn is version `position` (1-based) of `count`; `previous` and `following`
    are the stored ids of its neighbours, None at either end."""

    position: int
    count: int
    previous: int | None
    following: int | None

    @property
    def label(self) -> str:
        return f"{self.position}/{self.count}"


def versions_among(siblings: list[int], message_id: int) -> Versions | None:
    """Where `message_id` stands among its siblings (oldest first); None when it has none."""
    if len(siblings) < 2 or message_id not in siblings:
        return None
    at = siblings.index(message_id)
    return Versions(
        at + 1,
        len(siblings),
        siblings[at - 1] if at > 0 else None,
        siblings[at + 1] if at + 1 < len(siblings) else None,
    )


def mark_versions(turns: list, siblings_of: Callable[[int], list[int]]) -> list:
    """Every stored turn (question or answer) with siblings gets its `versions`."""
    for turn in turns:
        turn.versions = versions_among(siblings_of(turn.id), turn.id) if turn.id is not None else None
    return turns


def branch_through(store: Store, session_id: str, message_id: int):
    """The stored branch holding `message_id`: from the root through it down to the
    newest message below it (what was last said after that version). MessageNotFound
    when the message is not part of `session_id`."""
    return store.branch(session_id, store.latest_leaf(message_id))


def parse_chat_choice(value: str) -> tuple[str, int | None]:
    """A saved-chats entry: "<chat id>" or, for a search hit, "<chat id>#<message id>"."""
    session_id, _, message = (value or "").partition("#")
    return session_id, int(message) if message.isdigit() else None
