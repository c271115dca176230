"""Page images costed from the page sizes stored at ingest: the size a page renders at
is known without drawing it, so fitting a long scan draws only the pages it sends."""

from __future__ import annotations

import pytest

from documents.context import expand_documents, fit_context
from documents.parts import ChatMessage
from engine.image_plan import LLAMA_CPP, META, image_tokens
from engine.types import TextPart
from sessions import Store
from sessions.library import DocumentLibrary, read_documents
from tests.fixtures.documents import png

# (width, height) in points: Letter, A4, landscape, a receipt, a label, a poster.
PAGE_SIZES = [(612, 792), (595.28, 841.89), (842, 595), (164, 1400), (144, 72), (2384, 3370)]


def sized_scan(sizes: list[tuple[float, float]]) -> bytes:
    """One scanned page (a full-page picture, no text) of each size."""
    import pymupdf

    doc = pymupdf.open()
    for width, height in sizes:
        page = doc.new_page(width=width, height=height)
        page.insert_image(page.rect, stream=png(120, 160, (90, 90, 90)))
    data = doc.tobytes()
    doc.close()
    return data


class CountingLibrary(DocumentLibrary):
    """The store's page source, counting the pages it draws."""

    def __init__(self, store: Store, **kwargs):
        super().__init__(store, **kwargs)
        self.drawn: list[int] = []

    def _render(self, sha256: str, number: int):
        self.drawn.append(number)
        return super()._render(sha256, number)


@pytest.fixture
def library(tmp_path):
    store = Store(tmp_path / "data")
    yield CountingLibrary(store)
    store.close()


def read(library, tmp_path, data: bytes, vision: bool = True):
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    (doc,) = read_documents(
        library.store, [str(path)], mode="auto", vision=vision, password=None, max_pages=100
    )
    return doc


@pytest.mark.parametrize(("dpi", "max_side"), [(144, 1008), (72, 1008), (200, 672)])
def test_the_stored_size_costs_what_the_rendered_image_costs(tmp_path, dpi, max_side):
    with Store(tmp_path / "data") as store:
        library = CountingLibrary(store, dpi=dpi, max_side_px=max_side)
        doc = read(library, tmp_path, sized_scan(PAGE_SIZES))
        pages = library.document_pages(doc.sha256)
        assert [(round(p.width, 2), round(p.height, 2)) for p in pages] == PAGE_SIZES
        planned = [library.page_image_size(doc.sha256, n) for n in doc.image_pages]
        assert library.drawn == [], "sizes come from the store, nothing is drawn"
        rendered = [library.page_image(doc.sha256, n) for n in doc.image_pages]
        assert planned == [(image.width, image.height) for image in rendered]
        for (width, height), image in zip(planned, rendered, strict=True):
            for budget in (LLAMA_CPP, META):
                assert image_tokens(width, height, budget) == image_tokens(image.width, image.height, budget)
        assert len({size for size in planned}) >= 4, "the sizes really differ"


def test_fitting_a_long_scan_draws_only_the_pages_sent(tiny_engine, library, tmp_path, monkeypatch):
    doc = read(library, tmp_path, sized_scan([(612, 792)] * 60 + [(842, 595)] * 30))
    assert len(doc.image_pages) == 90
    messages = [ChatMessage("user", (doc, TextPart("What do the pages show?")))]
    counted = []
    count_tokens = tiny_engine.count_tokens
    monkeypatch.setattr(
        tiny_engine,
        "count_tokens",
        lambda ms: counted.append(sum(len(m.images) for m in ms)) or count_tokens(ms),
    )
    fitted, report = fit_context(tiny_engine, messages, library, "relevant")
    monkeypatch.undo()
    assert library.drawn == [], "costing drew no page"
    assert max(counted) < 90, "a scan too long for the context is not counted whole"
    sent = fitted[-1].parts[0].image_pages
    assert 0 < len(sent) < 90, "a long scan does not fit whole (else this test proves nothing)"
    expanded = expand_documents(fitted, library)
    assert sorted(library.drawn) == sorted(sent)
    assert report.context_used == tiny_engine.count_tokens(expanded), "stand-ins cost what pages cost"


def test_a_page_stored_without_its_size_is_drawn_to_be_costed(tiny_engine, library, tmp_path):
    doc = read(library, tmp_path, sized_scan([(612, 792), (612, 792)]))
    library.store._conn.write(
        lambda: library.store._conn.execute(
            "UPDATE document_pages SET width = 0, height = 0 WHERE number = 2"
        )
    )
    library._pages.clear()
    assert library.page_image_size(doc.sha256, 1) is not None
    assert library.page_image_size(doc.sha256, 2) is None
    messages = [ChatMessage("user", (doc, TextPart("What is on page 2?")))]
    fitted, report = fit_context(tiny_engine, messages, library, "relevant")
    assert 2 in library.drawn and 1 not in library.drawn
    assert report.context_used == tiny_engine.count_tokens(expand_documents(fitted, library))
