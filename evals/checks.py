"""Checks a program verifies on one answer, the building blocks of instruction-following suites.

A check is a dict ``{"type": ..., "value": ...}``; ``contains``, ``not_contains`` and ``ends_with``
also take ``"case_sensitive": bool`` (default false). `validate_check` tells whether a check from a
suite file (user input) is well formed; `run_check` applies one to an answer. Answers and values are
NFC-normalised first, so an "é" typed as e + combining accent matches a precomposed "é".

Semantics, one per type:

- contains: the value occurs as a whole word or phrase. Where the value starts (ends) with a letter
  or digit, the character before (after) it must not be one, so "very" is not found in "every".
  Scripts written without spaces (Thai, Lao, Khmer, Myanmar, Chinese, Japanese) need no boundary.
  Case-insensitive (Unicode casefold) unless case_sensitive.
- not_contains: passes exactly when contains would fail.
- regex: RE2 search anywhere in the answer, no flags added (write (?i), (?m), (?s) inline). RE2 runs
  in linear time, so a hostile pattern cannot hang the runner; it has no backreferences or
  lookaround, and \\w, \\d, \\b are ASCII (use \\p{L}, \\p{N} for other scripts).
- max_words / min_words: words are the Unicode (UAX #29) word segments holding a letter or digit,
  found by ICU, whose dictionaries segment Thai, Lao, Khmer, Myanmar, Chinese and Japanese too.
- bullets: the exact number of list-item lines: optional indentation, then -, *, • or a number of
  1-3 digits with "." or ")", then whitespace and text. Lines inside ``` fences and thematic
  breaks such as "* * *" are not items; nested items count.
- json: the stripped answer, or the body of the one ```json (or bare ```) block that is the whole
  answer, parses as JSON. An optional value lists keys the top-level object must have.
- language: the answer needs at least MIN_LETTERS_FOR_LANGUAGE letters; py3langid ranks languages
  and the probabilities of one macrolanguage's members are summed (Indonesian and Malay cannot be
  told apart reliably); passes when the expected ISO 639-1 code's group is the most likely.
- ends_with: the answer without trailing whitespace ends with the value (whose trailing whitespace
  is ignored too), with the same word-boundary rule as contains at the value's start.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

CHECK_TYPES: tuple[str, ...] = (
    "contains",
    "not_contains",
    "regex",
    "max_words",
    "min_words",
    "bullets",
    "json",
    "language",
    "ends_with",
)
CASE_OPTION_TYPES = frozenset({"contains", "not_contains", "ends_with"})
MAX_TEXT_VALUE_CHARS = 1_000
MAX_REGEX_CHARS = 500
MIN_LETTERS_FOR_LANGUAGE = 20

# The two-letter codes py3langid 0.4.0 identifies (a test keeps this in step with the model), so a
# suite is validated without loading the model.
_LANGUAGE_CODE_LIST = (
    "af am an ar as az ba be bg bn br bs ca cs cy da de dz el en eo es et eu fa fi fo fr fy ga gd gl "
    "gu ha he hi hr ht hu hy id ig is it ja jv ka kk km kn ko ku ky la lb lg ln lo lt lv mg mk ml mn "
    "mr ms mt my ne nl nn no oc om or pa pl ps pt qu ro ru rw sa se si sk sl sn so sq sr st sv sw ta "
    "te tg th tk tl tr tt ug uk ur uz vi vo wa xh yo zh zu"
)
LANGUAGE_CODES = frozenset(_LANGUAGE_CODE_LIST.split())
# Identifier labels that ISO 639-3 places in one macrolanguage; the identifier confuses them.
_MACROLANGUAGE = {
    "ms": "ms", "id": "ms",
    "ar": "ar", "ary": "ar", "arz": "ar",
    "zh": "zh", "wuu": "zh", "yue": "zh",
    "no": "no", "nn": "no",
    "hr": "sh", "sr": "sh", "bs": "sh",
    "uz": "uz", "uzs": "uz",
}  # fmt: skip

# Unicode blocks of scripts written without spaces between words (Thai, Lao, Myanmar, Khmer,
# kana, Han), where a word boundary cannot be seen from the neighbouring characters.
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)
_BULLET_LINE = re.compile(r"[ \t]*(?:[-*•]|\d{1,3}[.)])[ \t]+\S")
_THEMATIC_BREAK = re.compile(r"[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*")
_JSON_KINDS = {list: "array", str: "string", bool: "boolean", type(None): "null"}
_FENCED_JSON = re.compile(r"```(?:json)?[ \t]*\n(.*)\n[ \t]*```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class CheckResult:
    type: str
    passed: bool
    detail: str  # one short line saying why


# ---- validation -------------------------------------------------------------------------------


def validate_check(check: dict) -> None:
    """Raise ValueError with one line when `check` is not a well-formed check."""
    if not isinstance(check, dict):
        raise ValueError(f"a check must be an object, got {type(check).__name__}")
    kind = check.get("type")
    if not isinstance(kind, str) or kind not in CHECK_TYPES:
        raise ValueError(f"unknown check type {kind!r:.40}; known: {', '.join(CHECK_TYPES)}")
    allowed = {"type", "value"} | ({"case_sensitive"} if kind in CASE_OPTION_TYPES else set())
    for key in check:
        if key not in allowed:
            raise ValueError(f"{kind}: unknown key {key!r:.40}")
    if not isinstance(check.get("case_sensitive", False), bool):
        raise ValueError(f"{kind}: case_sensitive must be true or false")
    _VALIDATORS[kind](kind, check.get("value"))


def _validate_text(kind: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{kind}: value must be a non-empty string")
    if len(value) > MAX_TEXT_VALUE_CHARS:
        raise ValueError(f"{kind}: value is over {MAX_TEXT_VALUE_CHARS} characters")


def _validate_count(kind: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{kind}: value must be a non-negative integer, got {value!r:.40}")


def _validate_regex(kind: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{kind}: value must be a non-empty pattern string")
    if len(value) > MAX_REGEX_CHARS:
        raise ValueError(f"{kind}: pattern is over {MAX_REGEX_CHARS} characters")
    _compile_regex(value)


def _validate_json(kind: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(key, str) and key for key in value):
        raise ValueError(f"{kind}: value must be omitted or a list of required key names")


def _validate_language(kind: str, value: Any) -> None:
    if not isinstance(value, str) or value not in LANGUAGE_CODES:
        raise ValueError(f"{kind}: value must be a known lowercase ISO 639-1 code, got {value!r:.40}")


_VALIDATORS = {
    "contains": _validate_text,
    "not_contains": _validate_text,
    "ends_with": _validate_text,
    "regex": _validate_regex,
    "max_words": _validate_count,
    "min_words": _validate_count,
    "bullets": _validate_count,
    "json": _validate_json,
    "language": _validate_language,
}


# ---- running ----------------------------------------------------------------------------------


def run_check(answer: str, check: dict) -> CheckResult:
    """Apply one check to one answer. Raises ValueError only for a malformed check."""
    validate_check(check)
    if not isinstance(answer, str):
        raise ValueError(f"answer must be a string, got {type(answer).__name__}")
    kind = check["type"]
    passed, detail = _RUNNERS[kind](unicodedata.normalize("NFC", answer), check)
    return CheckResult(type=kind, passed=passed, detail=detail)


def _folded(text: str, check: dict) -> str:
    text = unicodedata.normalize("NFC", text)
    return text if check.get("case_sensitive", False) else text.casefold()


def _run_contains(answer: str, check: dict) -> tuple[bool, str]:
    value = _folded(check["value"], check)
    if _find_whole(_folded(answer, check), value) >= 0:
        return True, f"contains {check['value']!r}"
    return False, f"{check['value']!r} not found"


def _run_not_contains(answer: str, check: dict) -> tuple[bool, str]:
    found, _ = _run_contains(answer, check)
    if found:
        return False, f"contains {check['value']!r}, which is not allowed"
    return True, f"{check['value']!r} absent"


def _run_ends_with(answer: str, check: dict) -> tuple[bool, str]:
    text, value = _folded(answer, check).rstrip(), _folded(check["value"], check).rstrip()
    start = len(text) - len(value)
    if start >= 0 and text.endswith(value) and _boundary_before(text, start, value):
        return True, f"ends with {check['value'].rstrip()!r}"
    return False, f"ends with {answer.rstrip()[-30:]!r}, not {check['value'].rstrip()!r}"


def _run_regex(answer: str, check: dict) -> tuple[bool, str]:
    match = _compile_regex(check["value"]).search(answer)
    if match is None:
        return False, f"no match for {check['value']!r:.80}"
    return True, f"matches {match.group(0)[:40]!r}"


def _run_max_words(answer: str, check: dict) -> tuple[bool, str]:
    words = count_words(answer)
    return words <= check["value"], f"{words} words, at most {check['value']} allowed"


def _run_min_words(answer: str, check: dict) -> tuple[bool, str]:
    words = count_words(answer)
    return words >= check["value"], f"{words} words, at least {check['value']} required"


def _run_bullets(answer: str, check: dict) -> tuple[bool, str]:
    items = count_bullets(answer)
    return items == check["value"], f"{items} bullet points, exactly {check['value']} required"


def _run_json(answer: str, check: dict) -> tuple[bool, str]:
    text = answer.strip()
    fenced = _FENCED_JSON.fullmatch(text)
    try:
        parsed = json.loads(fenced.group(1) if fenced else text)
    except RecursionError:
        return False, "not JSON: nested too deeply"
    except ValueError as error:  # JSONDecodeError, and over-long integers
        return False, f"not JSON: {str(error).splitlines()[0]}"
    required = check.get("value") or []
    if required and not isinstance(parsed, dict):
        kind = _JSON_KINDS.get(type(parsed), "number")
        return False, f"JSON {kind}, an object with keys {required} required"
    missing = [key for key in required if key not in parsed]
    if missing:
        return False, f"JSON object lacks keys {missing}"
    return True, "parses as JSON" + (f" with keys {required}" if required else "")


def _run_language(answer: str, check: dict) -> tuple[bool, str]:
    expected = check["value"]
    letters = sum(char.isalpha() for char in answer)
    if letters < MIN_LETTERS_FOR_LANGUAGE:
        return False, f"too short to tell the language ({letters} letters, {MIN_LETTERS_FOR_LANGUAGE} needed)"
    best, share = identify_language(answer)
    if _MACROLANGUAGE.get(best, best) == _MACROLANGUAGE.get(expected, expected):
        kin = "" if best == expected else f", one macrolanguage with {expected}"
        return True, f"detected {best} ({share:.0%}){kin}"
    return False, f"detected {best} ({share:.0%}), {expected} expected"


_RUNNERS = {
    "contains": _run_contains,
    "not_contains": _run_not_contains,
    "ends_with": _run_ends_with,
    "regex": _run_regex,
    "max_words": _run_max_words,
    "min_words": _run_min_words,
    "bullets": _run_bullets,
    "json": _run_json,
    "language": _run_language,
}


# ---- text measures ----------------------------------------------------------------------------


def count_words(text: str) -> int:
    """Words in `text`: ICU word segments holding at least one letter or digit."""
    from icu4py.breakers import WordBreaker

    text = unicodedata.normalize("NFC", text)
    if not text.strip():
        return 0  # ICU refuses nothing, but there is no need to start it
    return sum(1 for segment in WordBreaker(text, "und") if _has_letter_or_digit(segment))


def count_bullets(text: str) -> int:
    """List-item lines outside fenced code blocks; thematic breaks are not items."""
    items, in_fence = 0, False
    for line in re.split(r"\r\n|\r|\n", text):  # Markdown line ends, not every Unicode one
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence and not _THEMATIC_BREAK.fullmatch(line) and _BULLET_LINE.match(line):
            items += 1
    return items


def identify_language(text: str) -> tuple[str, float]:
    """The most likely language label and its probability, members of a macrolanguage summed."""
    groups: dict[str, float] = {}
    leader: dict[str, str] = {}  # each group's most likely member, since rank() is sorted
    for label, probability in _identifier().rank(text):
        group = _MACROLANGUAGE.get(label, label)
        groups[group] = groups.get(group, 0.0) + probability
        leader.setdefault(group, label)
    best = max(groups, key=groups.__getitem__)
    return leader[best], groups[best]


@functools.cache
def _identifier():
    # Loading the model takes about a second, so only a suite that checks a language pays it.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=256)  # a long-running server loads many suites
def _compile_regex(pattern: str):
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr; the caller gets the message instead
    try:
        # NFC like the answers, so a pattern typed with combining accents still matches.
        return re2.compile(unicodedata.normalize("NFC", pattern), options)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args else "invalid pattern"
        reason = " ".join(reason.split())[:120]  # RE2 quotes the pattern, which may span lines
        raise ValueError(f"regex: pattern does not compile under RE2: {reason}") from None


def _find_whole(text: str, value: str) -> int:
    """Index of the first occurrence of `value` in `text` standing as a whole word, or -1."""
    start = text.find(value)
    while start >= 0:
        end = start + len(value)
        if _boundary_before(text, start, value) and _boundary_after(text, end, value):
            return start
        start = text.find(value, start + 1)
    return -1


def _boundary_before(text: str, start: int, value: str) -> bool:
    return start == 0 or not _glues(value[0], text[start - 1])


def _boundary_after(text: str, end: int, value: str) -> bool:
    return end == len(text) or not _glues(value[-1], text[end])


def _glues(edge: str, neighbour: str) -> bool:
    """Whether `neighbour` continues the word that `edge` (the value's own edge) belongs to."""
    if not _is_word_char(edge) or _is_no_space_script(edge):
        return False
    return _is_word_char(neighbour) or unicodedata.category(neighbour).startswith("M")


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN"


def _is_no_space_script(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _NO_SPACE_RANGES)


def _has_letter_or_digit(segment: str) -> bool:
    return any(unicodedata.category(char)[0] in "LN" for char in segment)
