"""Multi-turn instruction suites as JSONL: one conversation a line, every line validated.

A line is ``{"id": "fr-recipe-01", "language": "fr", "turns": [{"prompt": ..., "checks": [...]}]}``
("language", an ISO 639-1 code, is optional). A suite file is user input: `load_suite` reads it
whole within fixed limits and either returns every conversation or raises ValueError with one line
naming the file, the line and the problem, never a partial suite.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.checks import LANGUAGE_CODES, validate_check

BUILTIN_SUITE = Path(__file__).parent / "suites" / "builtin.jsonl"
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_CONVERSATIONS = 10_000
MAX_TURNS = 20
MAX_CHECKS_PER_TURN = 50
_ID = re.compile(r"[\w.:-]{1,100}")


@dataclass(frozen=True)
class Turn:
    prompt: str
    checks: tuple[dict, ...]


@dataclass(frozen=True)
class Conversation:
    id: str
    language: str  # ISO 639-1, or "" when the line does not say
    turns: tuple[Turn, ...]


class _LineError(ValueError):
    """A problem on one line; load_suite adds the file and line number."""


def load_suite(path_or_name: str) -> list[Conversation]:
    """Every conversation of a suite file, or of the packaged one for "builtin"."""
    path = BUILTIN_SUITE if path_or_name == "builtin" else Path(path_or_name)
    text = _read_text(path)
    conversations: list[Conversation] = []
    seen: dict[str, int] = {}
    # Split on "\n" only: a JSON string may hold U+2028, which splitlines() would break on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(conversations) == MAX_CONVERSATIONS:
            raise ValueError(f"{path}:{number}: more than {MAX_CONVERSATIONS} conversations")
        try:
            conversation = _parse_line(line)
        except _LineError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
        if conversation.id in seen:
            first = seen[conversation.id]
            raise ValueError(f"{path}:{number}: duplicate id {conversation.id!r}, first on line {first}")
        seen[conversation.id] = number
        conversations.append(conversation)
    if not conversations:
        raise ValueError(f"{path}: no conversations")
    return conversations


def _read_text(path: Path) -> str:
    # Read at most one byte past the limit, so a FIFO or /dev/zero cannot exhaust memory.
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such suite file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a suite file") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: over {MAX_FILE_BYTES // (1024 * 1024)} MB, too large for a suite file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text") from None


def _parse_line(line: str) -> Conversation:
    try:
        record = json.loads(line, object_pairs_hook=_no_duplicate_keys)
    except _LineError:
        raise
    except RecursionError:
        raise _LineError("JSON nested too deeply") from None
    except ValueError as error:
        raise _LineError(f"not valid JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(record, dict):
        raise _LineError(f"a line must be a JSON object, got {type(record).__name__}")
    _expect_keys(record, required={"id", "turns"}, optional={"language"}, what="conversation")
    return Conversation(
        id=_parse_id(record["id"]),
        language=_parse_language(record.get("language", "")),
        turns=_parse_turns(record["turns"]),
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _LineError(f"duplicate key {key!r}")
        record[key] = value
    return record


def _expect_keys(record: dict, *, required: set[str], optional: set[str], what: str) -> None:
    missing = sorted(required - record.keys())
    if missing:
        raise _LineError(f"{what} lacks {', '.join(repr(key) for key in missing)}")
    unknown = sorted(record.keys() - required - optional)
    if unknown:
        raise _LineError(f"{what} has unknown key {unknown[0]!r}")


def _parse_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _LineError(f"id must be 1-100 letters, digits, '_', '-', '.' or ':', got {value!r:.60}")
    return value


def _parse_language(value: Any) -> str:
    if value != "" and value not in LANGUAGE_CODES:
        raise _LineError(f"language must be an ISO 639-1 code, got {value!r:.20}")
    return value


def _parse_turns(value: Any) -> tuple[Turn, ...]:
    if not isinstance(value, list) or not value:
        raise _LineError("turns must be a non-empty list")
    if len(value) > MAX_TURNS:
        raise _LineError(f"{len(value)} turns, at most {MAX_TURNS} allowed")
    return tuple(_parse_turn(number, turn) for number, turn in enumerate(value, start=1))


def _parse_turn(number: int, value: Any) -> Turn:
    where = f"turn {number}"
    if not isinstance(value, dict):
        raise _LineError(f"{where} must be an object")
    _expect_keys(value, required={"prompt", "checks"}, optional=set(), what=where)
    prompt, checks = value["prompt"], value["checks"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise _LineError(f"{where}: prompt must be a non-empty string")
    if not isinstance(checks, list) or not checks:
        raise _LineError(f"{where}: checks must be a non-empty list")
    if len(checks) > MAX_CHECKS_PER_TURN:
        raise _LineError(f"{where}: {len(checks)} checks, at most {MAX_CHECKS_PER_TURN} allowed")
    for index, check in enumerate(checks, start=1):
        try:
            validate_check(check)
        except ValueError as error:
            raise _LineError(f"{where}, check {index}: {error}") from None
    return Turn(prompt=prompt, checks=tuple(checks))
