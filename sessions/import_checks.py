"""Bounds on what a chat export may hold, checked before anything of it is stored.

An export is a file anyone can write: a 5,000,000-character title or a seed of 1e300
went in as they were, and the seed broke the next answer. Every field here is held to
what the app itself could have written; a breach is one line naming the field."""

from __future__ import annotations

import json
import math
from typing import Any

from engine.types import EngineInputError

MAX_TITLE_CHARS = 1_000
MAX_NAME_CHARS = 1_000  # a model, an engine id, a file name, a finish reason
MAX_TIME_CHARS = 64
MAX_TEXT_CHARS = 4_000_000  # one text part (answers may outgrow the 1M input limit)
MAX_MESSAGES = 100_000
MAX_SEED = 2**64 - 1
MAX_COUNT = 2**31 - 1  # tokens, context sizes
# Numeric settings and sampling parameters: (low, high, integers only).
NUMBERS = {
    "seed": (-1, MAX_SEED, True),
    "max_tokens": (0, MAX_COUNT, True),
    "n_ctx": (0, MAX_COUNT, True),
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, False),
}


def check_export(doc: dict[str, Any]) -> None:
    """Raises EngineInputError (one line) for a field past its bound, text that is not
    text (a lone surrogate), or nesting too deep to store."""
    _check_encodable(doc)
    session = doc.get("session")
    if isinstance(session, dict):
        _check_chars("the title", session.get("title"), MAX_TITLE_CHARS)
        _check_chars("the model", session.get("model"), MAX_NAME_CHARS)
        for name in ("created", "updated"):
            _check_chars(name, session.get(name), MAX_TIME_CHARS)
        _check_numbers("settings", session.get("settings"))
    messages = doc.get("messages")
    if isinstance(messages, list):
        if len(messages) > MAX_MESSAGES:
            count = len(messages)
            raise EngineInputError(f"The chat export has {count:,} messages; at most {MAX_MESSAGES:,}.")
        for message in messages:
            if isinstance(message, dict):
                _check_message(message)


def _check_message(message: dict[str, Any]) -> None:
    where = f"message {str(message.get('id'))[:20]}"
    for name in ("engine_id", "finish_reason"):
        _check_chars(f"{where}'s {name}", message.get(name), MAX_NAME_CHARS)
    _check_chars(f"{where}'s time", message.get("created"), MAX_TIME_CHARS)
    _check_chars(f"{where}'s error", message.get("error"), MAX_TEXT_CHARS)
    _check_numbers(f"{where}'s params", message.get("params"))
    for part in message.get("parts") or []:
        if isinstance(part, dict):
            _check_chars(f"{where}'s text", part.get("text"), MAX_TEXT_CHARS)
            _check_chars(f"{where}'s file name", part.get("name"), MAX_NAME_CHARS)


def _check_chars(what: str, value: Any, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        raise EngineInputError(
            f"The chat export's {what} is {len(value):,} characters; at most {limit:,} are taken."
        )


def _check_numbers(what: str, values: Any) -> None:
    if not isinstance(values, dict):
        return
    for name, (low, high, integral) in NUMBERS.items():
        value = values.get(name)
        if value is None:
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and low <= value <= high
        if ok and integral:
            ok = float(value).is_integer()
        if not ok:
            kind = "a whole number" if integral else "a number"
            raise EngineInputError(
                f"The chat export's {what} has {name} {str(value)[:40]}; "
                f"expected {kind} from {low} to {high}."
            )


def _check_encodable(doc: Any) -> None:
    try:
        json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except UnicodeEncodeError:
        raise EngineInputError("The chat export holds a lone surrogate (\\ud800-\\udfff).") from None
    except RecursionError:
        raise EngineInputError("The chat export is nested too deeply.") from None
