"""The page viewer that page citations open. No Gradio calls here."""

from __future__ import annotations

from documents.parts import DocumentPart
from sessions.library import DocumentLibrary

VIEWER_CHARS = 4000  # the page viewer shows this much of a page's text


def page_view(library: DocumentLibrary, documents: list[DocumentPart], target: str):
    """(markdown, image or None) for a citation target "<sha256 prefix>-<page>".
    Only documents of the open chat are looked up, so a link cannot reach another's."""
    prefix, _, number = target.rpartition("-")
    doc = next((d for d in documents if prefix and d.sha256.startswith(prefix)), None)
    if doc is None or not number.isdigit():
        return "That page is not part of this chat.", None
    page_number = int(number)
    pages = {p.number: p for p in library.document_pages(doc.sha256)}
    page = pages.get(page_number)
    if page is None:
        return f"{doc.name} has no page {page_number}.", None
    sent = "sent to the model" if page_number in doc.pages else "not sent with this question"
    text = page.text.strip()
    shown = text[:VIEWER_CHARS] + ("…" if len(text) > VIEWER_CHARS else "")
    markdown = f"**{doc.name} — page {page_number} of {doc.total_pages}** ({sent})\n\n" + (
        "\n".join(f"> {line}" for line in shown.splitlines()) if shown else "_No text on this page (a scan)._"
    )
    image = library.page_image(doc.sha256, page_number)
    return markdown, image
