"""The reading view that page citations ([p. 3]) in answers open: a large panel over
the chat with the page image (zoomable), the page's text with the words the answers
quoted marked, previous/next page, and which pages went to the model. Only documents
of the open chat can be shown."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import gradio as gr

from chat.runtime import Runtime
from chat.turns import Turn
from documents.parts import CITATION, DocumentPart
from engine.limits import check_field
from engine.types import ImagePart
from errors import UserError
from sessions.library import DocumentLibrary

VIEWER_CHARS = 20_000  # the viewer shows this much of a page's text
OCR_NOTE = "OCR text: read off the page image, words may be misread; the image is the original."
QUOTE_WORDS = 3  # this many words in a row, in the answer and on the page, count as quoted
WORD = re.compile(r"\w+")
ZOOM_STEP = 1.25
# Client-side zoom: a CSS variable on the image, read by assets/style.css.
ZOOM_JS = """() => {{
  const box = document.querySelector("#page-image");
  if (!box) return;
  const now = parseFloat(box.style.getPropertyValue("--zoom")) || 1;
  box.style.setProperty("--zoom", {expr});
}}"""


@dataclass(frozen=True)
class PageView:
    """What the viewer shows for one page; `target` is "" when there is no page."""

    title: str
    sent: str
    text_html: str
    image: ImagePart | None = None
    target: str = ""


def page_view(library: DocumentLibrary, documents: list[DocumentPart], target: str, answers=()) -> PageView:
    """The page a citation target "<sha256 prefix>-<page>" names. Only documents of the
    open chat are looked up, so a link cannot reach another's. `answers` are the texts
    whose quotes are marked on the page."""
    prefix, _, number = target.rpartition("-")
    matching = [d for d in documents if prefix and d.sha256.startswith(prefix)]
    if not matching or not number.isdigit():
        return PageView("That page is not part of this chat.", "", "")
    doc, page_number = matching[-1], int(number)
    pages = {p.number: p for p in library.document_pages(doc.sha256)}
    page = pages.get(page_number)
    if page is None:
        return PageView(f"{doc.name} has no page {page_number}.", "", "")
    sent = sorted({n for d in matching for n in d.pages})
    text = page.text.strip()
    quoting = [a for a in answers if cites(a, page_number)]
    body = quoted_html(text[:VIEWER_CHARS], quoting) if text else "<em>No text on this page (a scan).</em>"
    if len(text) > VIEWER_CHARS:
        body += f"<p><em>… the first {VIEWER_CHARS:,} of {len(text):,} characters.</em></p>"
    if text and getattr(page, "ocr", False):  # read off the image: it may hold misread words
        body = f"<p class='ocr-note'><em>{OCR_NOTE}</em></p>" + body
    return PageView(
        f"**{doc.name} — page {page_number} of {doc.total_pages}**",
        sent_line(sent, page_number),
        body,
        library.page_image(doc.sha256, page_number),
        f"{doc.sha256[:16]}-{page_number}",
    )


def cites(answer: str, page: int) -> bool:
    for match in CITATION.finditer(answer):
        first = int(match[1])
        if first <= page <= int(match[2] or first):
            return True
    return False


def sent_line(sent: list[int], page: int) -> str:
    if not sent:
        return "No page of this document was sent to the model."
    here = "this page was sent" if page in sent else "this page was **not** sent"
    return f"Sent to the model: {page_ranges(sent)} ({here})"


def page_ranges(pages: list[int]) -> str:
    """[1, 2, 3, 7] -> "pages 1–3, 7"."""
    runs: list[list[int]] = []
    for n in pages:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    spans = [str(a) if a == b else f"{a}–{b}" for a, b in runs]
    return ("page " if len(pages) == 1 else "pages ") + ", ".join(spans)


def quoted_html(text: str, answers: list[str]) -> str:
    """The page's text, escaped, with <mark> around runs of QUOTE_WORDS or more words
    that also stand in a row in one of the answers (case aside)."""
    words = list(WORD.finditer(text))
    keys = [w[0].casefold() for w in words]
    quoted: set[tuple[str, ...]] = set()
    for answer in answers:
        said = [w.casefold() for w in WORD.findall(answer)]
        quoted.update(tuple(said[i : i + QUOTE_WORDS]) for i in range(len(said) - QUOTE_WORDS + 1))
    marked = [False] * len(words)
    for i in range(len(words) - QUOTE_WORDS + 1):
        if tuple(keys[i : i + QUOTE_WORDS]) in quoted:
            marked[i : i + QUOTE_WORDS] = [True] * QUOTE_WORDS
    out, at, i = [], 0, 0
    while i < len(words):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and marked[j + 1]:
            j += 1
        start, end = words[i].start(), words[j].end()
        out += [html.escape(text[at:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        at, i = end, j + 1
    out.append(html.escape(text[at:]))
    return "".join(out)


@dataclass
class PageViewer:
    target: gr.Textbox  # set by assets/citations.js when a citation link is clicked
    at: gr.State  # the target shown now, for previous/next
    panel: gr.Column
    previous: gr.Button
    following: gr.Button
    go_to: gr.Number  # shows the page; Enter there goes to the page typed
    close: gr.Button
    outputs: list


def build() -> PageViewer:
    """The panel, hidden until a citation is clicked; call inside the Chat tab."""
    with gr.Column(visible=False, elem_id="page-viewer") as panel:
        with gr.Row(elem_id="page-viewer-bar", equal_height=True):
            title = gr.Markdown(elem_id="page-title")
            previous = gr.Button("◀ Previous", size="sm", scale=0, min_width=96, elem_id="page-previous")
            following = gr.Button("Next ▶", size="sm", scale=0, min_width=80, elem_id="page-next")
            go_to = gr.Number(
                None,
                precision=0,
                show_label=False,
                placeholder="page",
                min_width=80,
                scale=0,
                elem_id="page-go",
            )
            zoom_out = gr.Button("−", size="sm", scale=0, min_width=44, elem_id="page-zoom-out")
            zoom_fit = gr.Button("Fit", size="sm", scale=0, min_width=56, elem_id="page-zoom-fit")
            zoom_in = gr.Button("+", size="sm", scale=0, min_width=44, elem_id="page-zoom-in")
            close = gr.Button("✕ Close", size="sm", scale=0, min_width=80, elem_id="page-close")
        sent = gr.Markdown(elem_id="page-sent")
        with gr.Row(elem_id="page-viewer-body"):
            with gr.Column(scale=2, min_width=320):
                image = gr.Image(
                    type="pil",
                    format="png",  # page text stays sharp; webp would blur it
                    show_label=False,
                    interactive=False,
                    buttons=["fullscreen", "download"],
                    elem_id="page-image",
                )
            with gr.Column(scale=1, min_width=280):
                legend = "The page's text · <mark>marked</mark>: words an answer quoted"
                gr.HTML(legend, elem_id="page-text-legend")
                text = gr.HTML(elem_id="page-text")
    for button, expr in ((zoom_out, f"Math.max(0.5, now / {ZOOM_STEP})"), (zoom_fit, "1")):
        button.click(None, js=ZOOM_JS.format(expr=expr))
    zoom_in.click(None, js=ZOOM_JS.format(expr=f"Math.min(4, now * {ZOOM_STEP})"))
    target = gr.Textbox(visible="hidden", elem_id="cite-target")
    at = gr.State("")
    outputs = [panel, title, sent, text, image, at, previous, following, go_to]
    return PageViewer(target, at, panel, previous, following, go_to, close, outputs)


def wire(viewer: PageViewer, runtime: Runtime, turns: gr.State) -> None:
    viewer.target.change(opener(runtime), [viewer.target, turns], viewer.outputs, queue=False)
    private = {"queue": False, "api_visibility": "private"}
    for button, step in ((viewer.previous, -1), (viewer.following, 1)):
        button.click(turner(runtime, step), [viewer.at, turns], viewer.outputs, **private)
    viewer.go_to.submit(turner(runtime, 0), [viewer.at, turns, viewer.go_to], viewer.outputs, **private)
    viewer.close.click(
        lambda: gr.Column(visible=False), None, viewer.panel, queue=False, api_visibility="private"
    )


def opener(runtime: Runtime):
    def open_page(target: str, turns: list[Turn]):
        if not target:  # the page clears the box before each click; nothing to show
            return [gr.skip()] * 9
        return _shown(runtime, target, turns)

    return open_page


def turner(runtime: Runtime, step: int):
    """◀ / ▶ (step -1 / 1), or step 0: the page typed into the page box."""

    def turn_page(at: str, turns: list[Turn], typed: float | None = None):
        prefix, _, number = (at or "").rpartition("-")
        if not number.isdigit():
            return [gr.skip()] * 9
        docs = [d for t in turns for d in t.message.documents if d.sha256.startswith(prefix)]
        total = docs[-1].total_pages if docs else 1
        wanted = int(typed) if step == 0 and typed is not None else int(number) + step
        return _shown(runtime, f"{prefix}-{min(max(1, wanted), total)}", turns)

    return turn_page


def _shown(runtime: Runtime, target: str, turns: list[Turn]):
    docs = [d for t in turns for d in t.message.documents]
    answers = [t.message.plain_text for t in turns if t.message.role == "assistant"]
    try:
        check_field(target, runtime.settings.max_field_chars, "the page link")
        view = page_view(runtime.library, docs, target, answers)
    except UserError as exc:
        view = PageView(f"⚠️ {exc}", "", "")
    prefix, _, number = view.target.rpartition("-")
    page = int(number) if number else 0
    total = next((d.total_pages for d in reversed(docs) if prefix and d.sha256.startswith(prefix)), 0)
    return (
        gr.Column(visible=True),
        view.title,
        view.sent,
        f"<div class='page-text'>{view.text_html}</div>" if view.text_html else "",
        _to_pil(view.image) if view.image is not None else None,
        view.target,
        gr.Button(interactive=page > 1),
        gr.Button(interactive=0 < page < total),
        page or None,
    )


def _to_pil(image: ImagePart):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image.data))
