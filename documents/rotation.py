"""Pages scanned on their side or upside down: which way up a page reads.

MuPDF's Tesseract reads text only the right way up and has no orientation detection
(OSD) to call. So a page whose OCR text does not read as words is read again, drawn
small, turned 90, 180 and 270 degrees, and the first turn whose text reads as common
words wins; if none does, the page keeps its first reading. "Common words" are the
most frequent short words of Latin-script languages:
a sideways or upside-down page gives letter soup with almost none of them. A page in
another script (Chinese, Arabic, Russian) keeps the reading it had: the test says
nothing about it. Importing this module is free."""

from __future__ import annotations

import re
import time

TURNS = (90, 180, 270)
PROBE_DPI = 100  # enough for Tesseract to find words on a letter-size page, ~4x faster than 300
MIN_COMMON = 3  # this many common words and the page reads the right way up
COMMON_SHARE = 0.3  # ... and they are this share of its words (upright ~0.45, sideways <0.25)
LATIN_SHARE = 0.5  # below this share of Latin letters the common-word test says nothing
_COMMON = """
    the of and to in is that for it as was with be by on not this are or his from at which but
    have an they you were her she there been one all we their has would when if so no will more
    can its also who may shall any other such these those into than them our your every each
    le la les de des du et est un une pour que qui dans en sur pas au aux ne se ce il elle par
    sont avec plus son ses nul tout toute tous droit der die das und ist nicht ein eine zu den
    mit von sich auf im dem el los las es una por para con del su al lo como di che per della
    os as do da em um uma não
"""
COMMON_WORDS = frozenset(_COMMON.split())
WORD = re.compile(r"[^\W\d_]{2,}")


def common_words(text: str) -> int:
    return sum(1 for word in WORD.findall(text.lower()) if word in COMMON_WORDS)


def reads_upright(text: str) -> bool:
    """True when the text reads as words, or when it is in a script this cannot judge."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if c < "\u0250")
    if latin < LATIN_SHARE * len(letters):
        return True
    words = WORD.findall(text.lower())
    common = sum(1 for word in words if word in COMMON_WORDS)
    return common >= MIN_COMMON and common >= COMMON_SHARE * len(words)


def best_turn(read_turned, first_text: str, deadline: float) -> int:
    """The first turn (90, 180, 270) whose reading reads upright and holds more common
    words than the page as read, else 0: weak evidence (a word or two of letter soup
    from a drawing turned on its side) never replaces what was read.
    `read_turned(turn)` reads the page drawn small and turned; probing stops at the
    deadline (time.monotonic)."""
    first_count = common_words(first_text)
    for turn in TURNS:
        if time.monotonic() >= deadline:
            break
        text = read_turned(turn)
        if common_words(text) > first_count and reads_upright(text):
            return turn
    return 0
