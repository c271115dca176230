"""Size limits on what a user sends, checked before anything is stored or tokenized.
Image limits live with the image checks (engine/images.py)."""

from __future__ import annotations

from engine.types import EngineInputError


def check_text(text: str, max_chars: int, what: str = "the message") -> None:
    """Refuse a message text over `max_chars`: tokenizing a 50 MB paste would hold the
    engine for minutes only to find it far over any context."""
    if len(text) > max_chars:
        raise EngineInputError(
            f"{what} is {len(text):,} characters, over the {max_chars:,}-character limit; "
            "shorten it (the limit is L4P_MAX_TEXT_CHARS)"
        )


def check_field(text: str, max_chars: int, what: str) -> None:
    """Refuse a one-line field (a title, a search, a page range, ...) over `max_chars`."""
    if len(text) > max_chars:
        raise EngineInputError(
            f"{what} is {len(text):,} characters, over the {max_chars:,}-character limit "
            "(L4P_MAX_FIELD_CHARS)"
        )
