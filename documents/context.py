"""Fitting a conversation with documents into the loaded context, never silently.

A document reaches the model as its pages: page text under "[p. N]" markers, and page
images for scans and figures when the model can see. When everything does not fit,
the caller's strategy decides what goes and the report says exactly what did:
- "relevant": the pages ranked most relevant to the question (FTS5 bm25 by the store);
- "range": the pages the user named ("1-20, 31");
- "drop_oldest": all pages, dropping the oldest turns of the conversation instead."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Literal, Protocol

from documents.page_modes import PageMode, choices_of, choose_pages
from documents.parts import ChatMessage, DocumentPart
from engine.protocol import Engine
from engine.types import EngineInputError, ImagePart, Message, Part, TextPart

Strategy = Literal["relevant", "range", "drop_oldest"]
STRATEGIES: dict[str, str] = {
    "relevant": "most relevant pages",
    "range": "page range",
    "drop_oldest": "drop oldest turns",
}
MIN_ANSWER_TOKENS = 64
# A page range is typed by a person; these bound what a pasted or scripted one costs.
MAX_RANGE_CHARS = 1000
MAX_RANGE_PAGES = 100_000


class PageSource(Protocol):
    """Where page text, rankings and page images come from (the session store)."""

    def document_pages(self, sha256: str) -> list: ...  # objects with number, text, needs_vision

    def rank_pages(self, sha256: str, query: str) -> list[int]: ...

    def page_image(self, sha256: str, number: int) -> ImagePart: ...

    # The pixel size page_image will have, from the page size stored at ingest (None
    # when unknown): prompts are costed with it, and only pages sent are drawn.
    def page_image_size(self, sha256: str, number: int) -> tuple[int, int] | None: ...


@dataclass
class ContextReport:
    """What a prompt holds: shown before the answer and stored with it."""

    context_used: int
    n_ctx: int
    reserved: int
    pages_sent: dict[str, list[int]] = field(default_factory=dict)
    dropped_turns: int = 0
    fitted_by: str = ""  # "" when everything fit; else the strategy's label
    # The question's documents that went in part: which pages of how many, and why.
    selection: list[dict] = field(default_factory=list)
    # The question's documents: which pages went as text, image or both, and their tokens.
    costs: list[dict] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"context used: {self.context_used:,} of {self.n_ctx:,} tokens"]
        chosen = {entry["name"]: selection_line(entry) for entry in self.selection}
        for name, pages in self.pages_sent.items():
            parts.append(chosen.get(name) or f"{name}: p. {page_ranges(pages)}")
        parts += cost_lines(self.costs)
        if self.dropped_turns:
            parts.append(f"too long: dropped the {self.dropped_turns} oldest turn(s)")
        elif self.fitted_by:
            parts.append(f"too long: sent the {STRATEGIES[self.fitted_by]}")
        return " · ".join(parts)

    def as_dict(self) -> dict:
        return {
            "context_used": self.context_used,
            "n_ctx": self.n_ctx,
            "pages_sent": self.pages_sent,
            "dropped_turns": self.dropped_turns,
            "fitted_by": self.fitted_by,
            "selection": self.selection,
            "costs": self.costs,
        }


WHY_CHOSEN = {
    "relevant": "most relevant to the question",
    "range": "the pages asked for",
    "": "the pages with something to send",
}


def selection_line(entry: dict) -> str:
    """ "report.pdf: sent 24 of 137 pages: 1–3, 40–58, 120, 131 — most relevant to the question"."""
    pages = entry.get("pages", [])
    return (
        f"{entry.get('name', 'document')}: sent {len(pages):,} of {entry.get('total', 0):,} pages: "
        f"{page_ranges(pages)} — {WHY_CHOSEN.get(entry.get('why', ''), entry.get('why', ''))}"
    )


CHOICE_LABELS = {"text": "text", "image": "image", "both": "image+text"}


def cost_line(entry: dict) -> str:
    """ "scan.pdf as text p. 1–2 (310 tokens), image p. 3 (1,452 tokens)"."""
    spent = [
        f"{CHOICE_LABELS[choice]} p. {page_ranges(entry[choice])} ({entry[choice + '_tokens']:,} tokens)"
        for choice in CHOICE_LABELS
        if entry.get(choice)
    ]
    return f"{entry.get('name', 'document')} as {', '.join(spent)}"


def cost_lines(costs: list[dict]) -> list[str]:
    """The costs worth a line: documents with pages sent as images (all text says nothing new)."""
    return [cost_line(entry) for entry in costs if entry.get("image") or entry.get("both")]


def costs_of(message: ChatMessage, costs: _PageCosts) -> list[dict]:
    """What each way of sending the question's pages costs, measured as they were fitted."""
    entries = []
    for doc in message.documents:
        entry: dict = {"name": doc.name}
        for choice, numbers in choices_of(doc).items():
            entry[choice] = numbers
            entry[choice + "_tokens"] = sum(costs.of(doc, n) for n in numbers)
        entries.append(entry)
    return entries


def selection_of(message: ChatMessage, strategy: str, asked_range: bool, fitted_by: str) -> list[dict]:
    """The question's documents that went in part, for the lasting "sent N of M" line."""
    why = "relevant" if fitted_by == "relevant" else ""
    why = "range" if strategy == "range" and asked_range else why
    return [
        {"name": doc.name, "pages": list(doc.pages), "total": doc.total_pages, "why": why}
        for doc in message.documents
        if len(doc.pages) < doc.total_pages
    ]


# -- choosing and expanding pages ------------------------------------------------


def expand_documents(
    messages: Sequence[ChatMessage], source: PageSource | None, *, for_counting: bool = False
) -> list[Message]:
    """The one conversion from a chat to what a model takes: each document becomes its
    page parts, in place (`source` may be None only when there are none).
    `for_counting`: page images are blank stand-ins of the size each page renders at
    (a prompt's cost depends on the sizes only), so nothing is drawn to be counted."""
    expanded = []
    for message in messages:
        parts: list[Part] = []
        for part in message.parts:
            if isinstance(part, DocumentPart):
                if source is None:
                    raise TypeError("a document needs the store's pages to be expanded (a bug)")
                parts.extend(document_parts(part, source, for_counting=for_counting))
            else:
                parts.append(part)
        expanded.append(Message(message.role, tuple(parts)))
    return expanded


def page_image_for_counting(source: PageSource, sha256: str, number: int) -> ImagePart:
    """A blank image the size the page renders at (from its stored size), or the page
    itself drawn when its size was never stored."""
    size = source.page_image_size(sha256, number)
    return stand_in_image(*size) if size else source.page_image(sha256, number)


@lru_cache(maxsize=32)
def stand_in_image(width: int, height: int) -> ImagePart:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG", compress_level=1)
    return ImagePart(out.getvalue(), "image/png", "page", width, height)


def document_parts(doc: DocumentPart, source: PageSource, *, for_counting: bool = False) -> list[Part]:
    pages = {p.number: p for p in source.document_pages(doc.sha256)}
    header = (
        f"<document name={doc.name!r} pages={doc.total_pages}>\n"
        f"Pages included: {page_ranges(doc.pages)}. Cite pages as [p. N].\n"
    )
    parts: list[Part] = [TextPart(header)]
    images, texts = set(doc.image_pages), set(doc.text_pages)
    for number in doc.pages:
        parts.append(TextPart(f"[p. {number}]\n"))
        if number in images:
            if for_counting:
                image = page_image_for_counting(source, doc.sha256, number)
            else:
                image = source.page_image(doc.sha256, number)
            parts += [image, TextPart("\n")]
        if number in texts:  # a page sent as both: its image, then its text
            parts.append(TextPart(f"{pages[number].text.strip()}\n\n"))
    parts.append(TextPart("</document>\n"))
    return _merge_text(parts)


def _merge_text(parts: list[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, TextPart) and merged and isinstance(merged[-1], TextPart):
            merged[-1] = TextPart(merged[-1].text + part.text)
        else:
            merged.append(part)
    return merged


def widened(
    message: ChatMessage, source: PageSource, vision: bool, mode: PageMode = "auto", overrides=None
) -> ChatMessage:
    """The message with every page of its documents again, each chosen as text, image or
    both for what the model sees (and `overrides`, documents.page_modes): a question once
    fitted to the context, asked again with other pages or all of them."""

    def rechoose(doc: DocumentPart) -> tuple[tuple[int, ...], tuple[int, ...]]:
        whole = replace(doc, text_pages=tuple(range(1, doc.total_pages + 1)), image_pages=())
        pages = source.document_pages(doc.sha256)
        chosen = choose_pages(whole, pages, mode, vision, overrides=overrides)
        return chosen.text_pages, chosen.image_pages

    return _with_pages(message, rechoose)


def document_preparer(source: PageSource, max_answer_tokens: int = 1024, mode: PageMode = "auto"):
    """For several models answering one prompt (compare): each model, once loaded,
    gets the last question's document pages chosen for what it can see and fitted to
    its own context, most relevant pages first."""

    def prepare(engine: Engine, messages: Sequence[ChatMessage]) -> list[Message]:
        last = messages[-1]
        vision = engine.capabilities.vision

        messages = [*messages[:-1], widened(last, source, vision, mode)]
        fitted, _ = fit_context(engine, messages, source, "relevant", "", max_answer_tokens)
        return expand_documents(fitted, source)

    return prepare


# -- fitting ------------------------------------------------------------------------


def fit_context(
    engine: Engine,
    messages: list[ChatMessage],
    source: PageSource,
    strategy: Strategy = "relevant",
    page_range: str = "",
    max_answer_tokens: int = 1024,
) -> tuple[list[ChatMessage], ContextReport]:
    """The messages to send (documents still as DocumentParts, with the pages chosen)
    and the report. Only the last user turn's documents are re-chosen; earlier turns
    keep the pages they were asked with. Raises EngineInputError when nothing fits."""
    n_ctx = engine.capabilities.n_ctx
    reserved = max(MIN_ANSWER_TOKENS, min(max_answer_tokens, n_ctx // 4))
    limit = n_ctx - reserved

    def count(candidate: list[ChatMessage]) -> int:
        return engine.count_tokens(expand_documents(candidate, source, for_counting=True))

    if strategy == "range" and page_range.strip():
        messages = _restrict_last_turn(messages, parse_page_range(page_range))
    costs = _PageCosts(engine, source)
    # The last turn's page images alone, each costed once per size: when they cannot
    # fit, a 2,000-page scan is not expanded whole just to learn that it does not.
    floor = costs.image_floor(messages[-1])
    used = floor if floor > limit else count(messages)
    report = ContextReport(used, n_ctx, reserved)
    if used > limit:
        if strategy == "drop_oldest" and floor <= limit:
            messages, report.dropped_turns, used = _drop_oldest(messages, limit, count)
        elif strategy == "range" and floor <= limit and _has_earlier_turns(messages):
            # The pages asked for stay; the oldest turns make room for them.
            messages, report.dropped_turns, used = _drop_oldest(messages, limit, count)
        elif strategy == "relevant" and messages[-1].documents:
            messages, used = _most_relevant(messages, limit, source, count, costs)
        else:
            raise EngineInputError(_too_long(used, limit, n_ctx, reserved, strategy, at_least=floor > limit))
        report.context_used, report.fitted_by = used, strategy
    report.pages_sent = {d.name: list(d.pages) for m in messages for d in m.documents}
    report.selection = selection_of(messages[-1], strategy, bool(page_range.strip()), report.fitted_by)
    report.costs = costs_of(messages[-1], costs)
    return messages, report


def _too_long(used: int, limit: int, n_ctx: int, reserved: int, strategy: str, at_least: bool = False) -> str:
    hint = {
        "range": "choose fewer pages",
        "relevant": "choose 'drop oldest turns' or start a new chat",
        "drop_oldest": "choose 'most relevant pages' or a page range",
    }[strategy]
    return (
        f"the prompt needs {'at least ' if at_least else ''}{used:,} tokens but {limit:,} fit "
        f"({n_ctx:,}-token context, "
        f"{reserved:,} kept for the answer); {hint}, or raise the context size"
    )


def _restrict_last_turn(messages: list[ChatMessage], wanted: set[int]) -> list[ChatMessage]:
    last = messages[-1]
    parts = []
    for part in last.parts:
        if isinstance(part, DocumentPart):
            missing = sorted(wanted - set(range(1, part.total_pages + 1)))
            if missing:
                raise EngineInputError(f"{part.name} has {part.total_pages} pages; no page {missing[0]}")
            part = replace(
                part,
                text_pages=tuple(n for n in part.text_pages if n in wanted),
                image_pages=tuple(n for n in part.image_pages if n in wanted),
            )
            if not part.pages:
                raise EngineInputError(f"{part.name} has nothing readable on pages {page_ranges(wanted)}")
        parts.append(part)
    return [*messages[:-1], ChatMessage(last.role, tuple(parts))]


def _has_earlier_turns(messages: list[ChatMessage]) -> bool:
    return sum(1 for m in messages if m.role == "user") > 1


def _drop_oldest(messages: list[ChatMessage], limit: int, count) -> tuple[list[ChatMessage], int, int]:
    system = [m for m in messages[:1] if m.role == "system"]
    turns = messages[len(system) :]
    dropped = 0
    while len(turns) > 1:
        # A turn is a user message and the answers after it; drop whole turns.
        cut = next((i for i in range(1, len(turns)) if turns[i].role == "user"), len(turns) - 1)
        turns, dropped = turns[cut:], dropped + 1
        used = count(system + turns)
        if used <= limit:
            return system + turns, dropped, used
    used = count(system + turns)
    raise EngineInputError(
        f"the last message alone needs {used:,} tokens but {limit:,} fit; "
        "choose 'most relevant pages' or a page range, or raise the context size"
    )


def _most_relevant(messages, limit, source, count, costs: _PageCosts) -> tuple[list[ChatMessage], int]:
    last = messages[-1]
    without_pages = [*messages[:-1], _with_pages(last, lambda doc: ((), ()))]
    room = limit - count(without_pages)
    if room <= 0:
        raise EngineInputError(
            f"the conversation alone fills the context ({limit:,} tokens); "
            "choose 'drop oldest turns' or start a new chat"
        )
    chosen: dict[str, set[int]] = {}
    ranked: list[tuple[DocumentPart, int]] = []
    for doc in last.documents:
        chosen[doc.sha256] = set()
        # Pages sharing words with the question, best first; with no match at all (a
        # "summarise this" question) the pages in order, as many as fit.
        order = [n for n in source.rank_pages(doc.sha256, last.plain_text) if n in doc.pages]
        ranked += [(doc, n) for n in order or doc.pages]
    for doc, number in ranked:
        if room < costs.smallest:
            break  # nothing more can fit; measuring the other pages would be wasted
        cost = costs.of(doc, number)
        if cost <= room:
            chosen[doc.sha256].add(number)
            room -= cost
    if not any(chosen.values()):
        raise EngineInputError(f"not even one page fits next to the conversation ({limit:,} tokens)")
    ranking = [(doc.sha256, n) for doc, n in ranked]
    while True:
        candidate = [*messages[:-1], _with_pages(last, lambda doc: _kept(doc, chosen[doc.sha256]))]
        used = count(candidate)
        if used <= limit:
            return candidate, used
        # Page costs were measured alone; markers and joins add a little. Drop the
        # lowest-ranked page chosen and measure again.
        sha, number = next(item for item in reversed(ranking) if item[1] in chosen[item[0]])
        chosen[sha].discard(number)


def _kept(doc: DocumentPart, keep: set[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(n for n in doc.text_pages if n in keep), tuple(n for n in doc.image_pages if n in keep)


def _with_pages(message: ChatMessage, pick) -> ChatMessage:
    parts = []
    for part in message.parts:
        if isinstance(part, DocumentPart):
            text_pages, image_pages = pick(part)
            part = replace(part, text_pages=text_pages, image_pages=image_pages)
        parts.append(part)
    return ChatMessage(message.role, tuple(parts))


class _PageCosts:
    """Tokens one page adds, measured with the engine's own tokenizer. Page images of
    the same size cost the same, so each size is measured once."""

    def __init__(self, engine: Engine, source: PageSource):
        self.engine, self.source = engine, source
        self.by_size: dict[tuple[int, int], int] = {}
        self.texts: dict[str, dict[int, str]] = {}
        self.smallest = 1

    def of(self, doc: DocumentPart, number: int) -> int:
        image = self.image_cost(doc.sha256, number) if number in doc.image_pages else 0
        return image + (self.text_cost(doc.sha256, number) if number in doc.text_pages else 0)

    def text_cost(self, sha256: str, number: int) -> int:
        if sha256 not in self.texts:
            self.texts[sha256] = {p.number: p.text for p in self.source.document_pages(sha256)}
        text = f"[p. {number}]\n{self.texts[sha256][number].strip()}\n\n"
        cost = self._measure(Message.text("user", text + "x"))
        self.smallest = cost if self.smallest == 1 else min(self.smallest, cost)
        return cost

    def image_cost(self, sha256: str, number: int) -> int:
        """A page image's tokens from the size it renders at (stored at ingest); the
        engine measures each size once, on a blank image, and no page is drawn."""
        image = page_image_for_counting(self.source, sha256, number)
        size = (image.width, image.height)
        if size not in self.by_size:
            self.by_size[size] = self._measure(Message("user", (stand_in_image(*size), TextPart("x"))))
        return self.by_size[size] + 8

    def image_floor(self, message: ChatMessage) -> int:
        """Tokens the message's page images take at least (text pages not counted)."""
        return sum(self.image_cost(d.sha256, n) - 8 for d in message.documents for n in d.image_pages)

    @cached_property
    def overhead(self) -> int:
        return self.engine.count_tokens([Message.text("user", "x")])

    def _measure(self, message: Message) -> int:
        return max(1, self.engine.count_tokens([message]) - self.overhead)


# -- page numbers ---------------------------------------------------------------------


def parse_page_range(text: str) -> set[int]:
    """ "1-20, 31" -> {1..20, 31}. Raises EngineInputError on anything else, and on a
    range too long to be a request for pages (its length and its page count are capped
    before any page set is built)."""
    if len(text) > MAX_RANGE_CHARS:
        raise EngineInputError(
            f"the page range is {len(text):,} characters; the limit is {MAX_RANGE_CHARS:,}"
        )
    spans: list[tuple[int, int]] = []
    for piece in re.split(r"[,\s]+", text.strip()):
        if not piece:
            continue
        match = re.fullmatch(r"(\d{1,9})(?:[-–](\d{1,9}))?", piece)
        if not match:
            raise EngineInputError(f"page range {_shown(text)} is not like 1-20, 31")
        first, last = int(match[1]), int(match[2] or match[1])
        if first < 1 or last < first:
            raise EngineInputError(f"page range {piece!r} is backwards or starts below 1")
        spans.append((first, last))
    if not spans:
        raise EngineInputError("the page range is empty; write pages like 1-20, 31")
    total = sum(last - first + 1 for first, last in spans)  # overlaps counted twice: a bound
    if total > MAX_RANGE_PAGES:
        raise EngineInputError(f"the page range names {total:,} pages; the limit is {MAX_RANGE_PAGES:,}")
    return {n for first, last in spans for n in range(first, last + 1)}


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40] + "…")


def page_ranges(pages) -> str:
    """[1, 2, 3, 7] -> "1–3, 7"."""
    numbers = sorted(set(pages))
    runs: list[str] = []
    start = prev = None
    for n in [*numbers, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}–{prev}")
        start = prev = n
    return ", ".join(runs) if runs else "none"
