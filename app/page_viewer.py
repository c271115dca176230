"""The Page panel that page citations ([p. 3]) in answers open: the page's text and
image, only for documents of the open chat."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.runtime import Runtime
from chat.turns import Turn
from documents.parts import DocumentPart, documents_of
from engine.limits import check_field
from engine.types import EngineInputError
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


@dataclass
class PageViewer:
    target: gr.Textbox
    outputs: list


def build() -> PageViewer:
    with gr.Accordion("Page", open=False, elem_id="page-viewer") as box:
        text = gr.Markdown("Click a page citation like [p. 3] in an answer to see that page.")
        image = gr.Image(
            label="Page image", type="pil", height=360, buttons=["fullscreen"], elem_id="page-image"
        )
    # Set by assets/citations.js when a citation link is clicked.
    target = gr.Textbox(visible="hidden", elem_id="cite-target")
    return PageViewer(target, [box, text, image])


def opener(runtime: Runtime):
    def open_page(target: str, turns: list[Turn]):
        if not target:  # the page clears the box before each click; nothing to show
            return gr.skip(), gr.skip(), gr.skip()
        docs = [d for t in turns for d in documents_of(t.message)]
        try:
            check_field(target, runtime.settings.max_field_chars, "the page link")
            markdown, image = page_view(runtime.library, docs, target or "")
        except EngineInputError as exc:
            markdown, image = f"⚠️ {exc}", None
        picture = _to_pil(image) if image is not None else None
        return gr.Accordion(open=True), markdown, picture

    return open_page


def _to_pil(image):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image.data))
