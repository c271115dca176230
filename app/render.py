"""How the chat is shown: turns as gr.Chatbot messages, page citations as links. Pure
functions: no Gradio calls here, so they are tested directly and the UI module stays
wiring only. The turns themselves live in chat.turns."""

from __future__ import annotations

import html
import re

from app.safe_markdown import safe_html
from chat.attachments import Attachment, size_text
from chat.branches import Versions
from chat.turns import Turn
from documents.parts import CITATION, DocumentPart
from engine.types import ImagePart, TextPart

# The settings panel's fields, in order, as saved with a session and restored from it.
SETTING_NAMES = ("system", "temperature", "top_p", "max_tokens", "n_ctx", "seed")
# An image in model output: markdown ![alt](url) or ![alt][ref], and HTML tags that
# load something (an image, media, a frame).
MARKDOWN_IMAGE = re.compile(r"!\[([^\]\n]*)\](?=[(\[])(?!\(/blobs/[0-9a-f]{64}\))")
HTML_FETCHING = re.compile(
    r"<(\s*(?:img|image|picture|source|video|audio|iframe|object|embed|svg|link|input|track)\b)",
    re.IGNORECASE,
)


def to_chatbot(turns: list[Turn]) -> list[dict]:
    """Role/content dicts for gr.Chatbot; a user turn keeps its image order."""
    shown = []
    documents: tuple[DocumentPart, ...] = ()  # what page citations in answers point into
    question: Versions | None = None  # the versions of the question an answer follows
    for turn in turns:
        if turn.message.role == "user":
            content, files = [], iter(turn.files)
            for part in turn.message.parts:
                if isinstance(part, TextPart):
                    content.append(part.text)
                elif isinstance(part, DocumentPart):
                    content.append(_document_content(part, next(files, "")))
                else:
                    content.append(_image_content(part, next(files, "")))
            documents = turn.message.documents or documents
            question = turn.versions
            shown.append({"role": "user", "content": content})
        else:
            # The question's versions ride with its answer, shown in the question's bubble.
            lead, question = question_versions_mark(question) if question else "", None
            shown.append({"role": "assistant", "content": lead + _answer_content(turn, documents)})
    return shown


def _answer_content(turn: Turn, documents: tuple[DocumentPart, ...]) -> str:
    if turn.status == "reading":  # the prompt being read: a progress line, no answer yet
        return safe_html(f"<span class='reading'>{turn.message.plain_text}</span>")
    text = link_citations(unfetched_images(turn.message.plain_text), documents) or (
        "…" if turn.status == "streaming" else ""
    )
    footer = " · ".join(
        bit for bit in (turn.footer, turn.status if turn.status == "interrupted" else "") if bit
    )
    if footer:
        text += f"\n\n<span class='metrics'>{footer}</span>"
    # Model output as sanitized HTML: it can show, never act (app/safe_markdown.py).
    # The switcher is ours (ids and numbers only), added after sanitizing.
    return safe_html(text) + (versions_switcher(turn.versions, "answer") if turn.versions else "")


def versions_switcher(versions: Versions, what: str) -> str:
    """ "‹ 2/3 ›": links to the neighbouring versions of a question or an answer, which
    assets/citations.js turns into a switch to that version's branch."""

    def step(target: int | None, arrow: str, name: str) -> str:
        if target is None:
            return f"<span class='version-end'>{arrow}</span>"
        return f"<a href='#version-{target}' title='{name} version'>{arrow}</a>"

    label = f"{what} {versions.label}" if what == "answer" else versions.label
    previous, following = step(versions.previous, "‹", "previous"), step(versions.following, "›", "next")
    return (
        f"<span class='versions {what}-versions' title='versions of this {what}'>"
        f"{previous} {label} {following}</span>"
    )


def question_versions_mark(versions: Versions) -> str:
    """An empty mark at the top of the answer, from which assets/citations.js draws the
    question's ‹ 2/3 › in the question's own bubble (what a person wrote there is
    theirs to edit, so nothing is added to it here). The facts ride in class names:
    the page's sanitizer keeps those and drops data attributes."""
    facts = [f"qv-{versions.position}-of-{versions.count}"]
    facts += [f"qv-previous-{versions.previous}"] if versions.previous else []
    facts += [f"qv-next-{versions.following}"] if versions.following else []
    return f"<span class='question-versions {' '.join(facts)}'></span>"


def attachment_chips(attachments: list[Attachment]) -> str:
    """The input's files before sending: name · size · pages or pixels, each with a ×
    that assets/citations.js turns into removing that file from the input."""
    chips = []
    for index, file in enumerate(attachments):
        name = html.escape(file.name)
        facts = " · ".join(html.escape(bit) for bit in (size_text(file.size), file.detail) if bit)
        chips.append(
            f"<span class='chip' title='{name}'><span class='chip-name'>{name}</span> · {facts}"
            f"<button class='chip-remove' data-index='{index}' aria-label='Remove {name}'>×</button></span>"
        )
    return f"<div class='chips'>{''.join(chips)}</div>" if chips else ""


def link_citations(text: str, documents: tuple[DocumentPart, ...]) -> str:
    """ "[p. 12]" becomes a link the page opens in the page viewer (see assets/citations.js)."""
    if not documents:
        return text

    def link(match) -> str:
        number = int(match[1])
        doc = next((d for d in documents if number in d.pages), None)
        doc = doc or next((d for d in reversed(documents) if 1 <= number <= d.total_pages), None)
        if doc is None:  # "[p. 200]" of a 137-page document: nothing to open, so no link
            return match[0]
        return f"[{match[0]}](#page-{doc.sha256[:16]}-{number})"

    return CITATION.sub(link, text)


MARKDOWN_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
MARKDOWN_MARKS = re.compile(r"(\*\*|__|~~|`+|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w))")
LINE_MARKS = re.compile(r"(^|\n)\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)")


def plain_text(markdown: str) -> str:
    """Markdown as the words a reader sees (a search result's label is plain text:
    '**bold**', '# Title' and '[a](url)' would show their marks)."""
    text = MARKDOWN_LINK.sub(r"\1", markdown)
    text = LINE_MARKS.sub(r"\1", text)
    return " ".join(MARKDOWN_MARKS.sub("", text).split())


def unfetched_images(text: str) -> str:
    """Model output never makes the reader's browser fetch anything: an image it
    writes (which could carry what the chat holds to an outside server in its URL)
    becomes a plain link, an <img> tag shows as text. The page's Content-Security-
    Policy (app/server.py) backs this up."""

    return HTML_FETCHING.sub(r"&lt;\1", MARKDOWN_IMAGE.sub(r"[🖼 \1]", text))


def _document_content(part: DocumentPart, path: str) -> dict:
    label = f"{part.name} · {part.total_pages} pages"
    return {"file": _file(path, "application/pdf", part.name), "alt_text": label}


def _image_content(part: ImagePart, path: str) -> dict:
    # Stored blobs have no file extension: the MIME type tells the page it is an image.
    return {"file": _file(path, part.mime, part.name), "alt_text": part.name}


def _file(path: str, mime: str, name: str) -> dict:
    """A chat file; a stored one comes as its blob route's URL (app/blob_route.py),
    which the page fetches as it is instead of Gradio copying a file."""
    found = {"path": path, "mime_type": mime, "orig_name": name}
    return {**found, "url": path} if path.startswith(("http://", "https://")) else found
