"""Documents through the store and the context budget, on real engines: the embedded
SmolLM2 for answers, the tiny Llama 4 fixture for page images."""

from __future__ import annotations

from dataclasses import replace

import pytest

from documents.context import expand_documents, fit_context, page_ranges, parse_page_range
from documents.parts import ChatMessage, DocumentPart
from engine.types import ImagePart, TextPart
from errors import UserError
from sessions import Store
from sessions.library import read_documents
from tests.fixtures.documents import png, text_pdf

SECRET_PAGE = 137
FILLER = (
    "The committee reviewed quarterly logistics, staffing levels and the maintenance schedule "
    "for the northern depot, noting routine progress on every item of the plan. "
)


def long_report(pages: int = 300) -> bytes:
    texts = [f"Section {n}. " + FILLER * 3 for n in range(1, pages + 1)]
    texts[SECRET_PAGE - 1] = "The launch code for the falcon project is MAGENTA-7. " * 2
    return text_pdf(texts)


def mixed_pdf(pages: list[str | None]) -> bytes:
    """A page of text for each string, a scanned page (one full-page image) for None."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        if text is None:
            page.insert_image(page.rect, stream=png(400, 520, (90, 90, 90)))
        else:
            page.insert_textbox(pymupdf.Rect(50, 50, 550, 780), text, fontsize=11)
    data = doc.tobytes()
    doc.close()
    return data


@pytest.fixture
def report_pdf(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(long_report())
    return path


def ask(library, path, question, *, vision=False, mode="auto") -> list[ChatMessage]:
    (doc,) = read_documents(
        library.store, [str(path)], mode=mode, vision=vision, password=None, max_pages=2000
    )
    return [ChatMessage("user", (doc, TextPart(question)))]


def test_a_long_document_sends_the_most_relevant_pages_and_says_so(smollm2, library, report_pdf):
    messages = ask(library, report_pdf, "What is the launch code for the falcon project?")
    fitted, report = fit_context(smollm2, messages, library, "relevant", max_answer_tokens=256)
    (doc,) = fitted[-1].documents
    assert SECRET_PAGE in doc.pages
    assert 0 < len(doc.pages) < 300
    assert report.fitted_by == "relevant"
    assert report.pages_sent == {"report.pdf": list(doc.pages)}
    # The figure shown is the real prompt size, and it fits with the answer's room.
    expanded = expand_documents(fitted, library)
    assert report.context_used == smollm2.count_tokens(expanded)
    assert report.context_used <= report.n_ctx - report.reserved
    assert report.n_ctx == smollm2.capabilities.n_ctx
    assert "context used:" in report.line() and "most relevant pages" in report.line()
    text = expanded[-1].plain_text
    assert f"[p. {SECRET_PAGE}]\nThe launch code for the falcon project is MAGENTA-7." in text


def test_the_model_answers_from_the_relevant_page(settings, library, report_pdf):
    from engine.types import SamplingParams, TextDelta
    from models.catalogue import load_registry
    from models.engines import engine_for

    # Deployed with a 1,024-token window: the budget is this deployment's, not the card's.
    registry = load_registry(settings)
    small = engine_for(replace(registry.get(registry.default), n_ctx=1024), settings)
    small.load()
    try:
        messages = ask(library, report_pdf, "What is the launch code for the falcon project?")
        system = ChatMessage.text("system", "You are a helpful AI assistant.")
        fitted, report = fit_context(small, [system, *messages], library, "relevant", max_answer_tokens=48)
        assert report.n_ctx == 1024 and SECRET_PAGE in report.pages_sent["report.pdf"]
        params = SamplingParams(max_tokens=48, temperature=0)
        events = small.stream(expand_documents(fitted, library), params)
        answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    finally:
        small.unload()
    assert "MAGENTA" in answer.upper()


def test_a_page_range_sends_exactly_those_pages(smollm2, library, report_pdf):
    messages = ask(library, report_pdf, "Summarise these pages.")
    fitted, report = fit_context(smollm2, messages, library, "range", "2-4, 9")
    assert fitted[-1].documents[0].pages == (2, 3, 4, 9)
    assert report.pages_sent == {"report.pdf": [2, 3, 4, 9]}
    assert report.fitted_by == ""  # it fits: nothing else was left out


def test_a_range_too_long_for_the_context_is_refused_with_numbers(smollm2, library, report_pdf):
    messages = ask(library, report_pdf, "Summarise.")
    with pytest.raises(UserError, match=r"the prompt needs [\d,]+ tokens but [\d,]+ fit"):
        fit_context(smollm2, messages, library, "range", "1-200")
    with pytest.raises(UserError, match="no page 301"):
        fit_context(smollm2, messages, library, "range", "299-301")


def test_drop_oldest_turns_keeps_every_page_of_a_short_document(smollm2, library, tmp_path):
    path = tmp_path / "memo.pdf"
    path.write_bytes(text_pdf(["Page one of the memo. " * 20, "Page two of the memo. " * 20]))
    chatter = "Tell me about the weather in detail. " * 120
    history = []
    for _ in range(6):
        history += [ChatMessage.text("user", chatter), ChatMessage.text("assistant", chatter)]
    messages = [*history, *ask(library, path, "What does the memo say?")]
    fitted, report = fit_context(smollm2, messages, library, "drop_oldest", max_answer_tokens=512)
    assert report.dropped_turns > 0 and report.fitted_by == "drop_oldest"
    assert fitted[-1].documents[0].pages == (1, 2)
    assert len(fitted) == len(messages) - 2 * report.dropped_turns
    assert "dropped the" in report.line()


def test_a_scanned_page_goes_as_an_image_to_a_vision_model(tiny_engine, library, tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(mixed_pdf(["Typed page with plenty of words. " * 10, None]))
    (doc,) = read_documents(
        library.store, [str(path)], mode="auto", vision=True, password=None, max_pages=100
    )
    assert doc.text_pages == (1,) and doc.image_pages == (2,)
    messages = [ChatMessage("user", (doc, TextPart("What is on page 2?")))]
    fitted, report = fit_context(tiny_engine, messages, library, "relevant")
    expanded = expand_documents(fitted, library)
    images = expanded[-1].images
    assert len(images) == 1 and images[0].name.endswith("p. 2")
    assert max(images[0].width, images[0].height) <= 1008
    assert report.context_used == tiny_engine.count_tokens(expanded)
    # The image sits under its page marker, after page 1's text.
    parts = expanded[-1].parts
    index = next(i for i, p in enumerate(parts) if isinstance(p, ImagePart))
    assert parts[index - 1].text.endswith("[p. 2]\n")


def test_a_text_only_model_gets_a_clear_message_for_scans(library, tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(mixed_pdf([None, None]))
    with pytest.raises(UserError, match="scanned pages need a vision model"):
        read_documents(library.store, [str(path)], mode="auto", vision=False, password=None, max_pages=9)
    with pytest.raises(UserError, match="need a model that sees"):
        read_documents(library.store, [str(path)], mode="images", vision=False, password=None, max_pages=9)


def test_page_range_parsing():
    assert parse_page_range("1-3, 7") == {1, 2, 3, 7}
    assert page_ranges([7, 1, 2, 3, 9, 10]) == "1–3, 7, 9–10"
    for bad in ("", "a-b", "5-2", "0"):
        with pytest.raises(UserError):
            parse_page_range(bad)


def test_pages_chosen_for_a_question_are_kept_for_later_turns(tmp_path):
    with Store(tmp_path / "data") as store:
        path = tmp_path / "memo.pdf"
        path.write_bytes(text_pdf(["alpha " * 30, "beta " * 30, "gamma " * 30]))
        (doc,) = read_documents(store, [str(path)], mode="text", vision=False, password=None, max_pages=9)
        session = store.create_session()
        message = ChatMessage("user", (doc, TextPart("about beta?")))
        message_id = store.add_user_message(session, None, message)
        chosen = ChatMessage("user", (replace(doc, text_pages=(2,)), TextPart("about beta?")))
        store.update_user_parts(message_id, chosen)
        (row,) = store.branch(session)
        assert row.parts == chosen.parts
        assert isinstance(row.parts[0], DocumentPart) and row.parts[0].pages == (2,)
        with pytest.raises(ValueError):
            store.update_user_parts(message_id, ChatMessage.text("user", "other"))
