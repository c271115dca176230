"""How the chat is shown: turns as gr.Chatbot messages, page citations as links. Pure
functions: no Gradio calls here, so they are tested directly and the UI module stays
wiring only. The turns themselves live in chat.turns."""

from __future__ import annotations

import re

from app.safe_markdown import safe_html
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
            shown.append({"role": "user", "content": content})
        elif turn.status == "reading":  # the prompt being read: a progress line, no answer yet
            line = turn.message.plain_text
            shown.append({"role": "assistant", "content": safe_html(f"<span class='reading'>{line}</span>")})
        else:
            text = link_citations(unfetched_images(turn.message.plain_text), documents) or (
                "…" if turn.status == "streaming" else ""
            )
            footer = " · ".join(
                bit
                for bit in (
                    turn.footer,
                    turn.status if turn.status == "interrupted" else "",
                    f"answer {turn.branch}" if turn.branch else "",
                )
                if bit
            )
            if footer:
                text += f"\n\n<span class='metrics'>{footer}</span>"
            # Model output as sanitized HTML: it can show, never act (app/safe_markdown.py).
            shown.append({"role": "assistant", "content": safe_html(text)})
    return shown


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
