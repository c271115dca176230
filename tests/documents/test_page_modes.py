"""Per page: text, image or both, chosen automatically and changed page by page, on real
PDFs in a real store; what each choice costs, measured by the tiny Llama 4 fixture."""

from __future__ import annotations

import pytest

from documents.context import expand_documents, fit_context
from documents.page_modes import choices_of, parse_page_modes
from documents.parts import ChatMessage
from engine.types import ImagePart, TextPart
from errors import UserError
from sessions.library import read_documents
from tests.documents.test_documents_context import mixed_pdf

TYPED = "Typed page about the harbour lighthouse and its keeper, with plenty of words. " * 4


@pytest.fixture
def four_pages(tmp_path):
    """Pages 1, 2 and 4 typed, page 3 a scan."""
    path = tmp_path / "mixed.pdf"
    path.write_bytes(mixed_pdf([TYPED, TYPED, None, TYPED]))
    return path


def read(library, path, *, vision: bool, modes: str = "", mode="auto"):
    overrides = parse_page_modes(modes) if modes else None
    (doc,) = read_documents(
        library.store, [str(path)], mode=mode, vision=vision, password=None, max_pages=50, overrides=overrides
    )
    return doc


def test_parsing_overrides():
    assert parse_page_modes("3=image, 5-7=both") == {3: "image", 5: "both", 6: "both", 7: "both"}
    assert parse_page_modes(" 2 = TEXT ; 4–5=images ") == {2: "text", 4: "image", 5: "image"}
    assert parse_page_modes("1-3=image, 2=text") == {1: "image", 2: "text", 3: "image"}  # the later wins
    assert parse_page_modes("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "page mode '3' is not like 3=image, 5-7=both"),
        ("3=picture", "page mode 'picture' is not one of text, image, both"),
        ("7-5=both", "the pages are backwards or start below 1"),
        ("0=text", "the pages are backwards or start below 1"),
        ("1-999999999=text", "the page modes name more than 100,000 pages"),
        ("1=text," * 200, "the page modes are 1,400 characters; the limit is 1,000"),
    ],
)
def test_bad_overrides_are_one_line(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as caught:
        parse_page_modes(text)
    assert "\n" not in str(caught.value)


def test_automatic_choice_follows_the_page_and_the_model(library, four_pages):
    seeing = read(library, four_pages, vision=True)
    assert choices_of(seeing) == {"text": [1, 2, 4], "image": [3], "both": []}
    everything = read(library, four_pages, vision=True, mode="images")
    assert choices_of(everything) == {"text": [], "image": [1, 2, 3, 4], "both": []}
    blind = read(library, four_pages, vision=False)  # the scan has no OCR text here: left out
    assert choices_of(blind) == {"text": [1, 2, 4], "image": [], "both": []}


def test_overrides_change_single_pages(library, four_pages):
    doc = read(library, four_pages, vision=True, modes="1=image, 2-3=both, 4=text")
    assert choices_of(doc) == {"text": [4], "image": [1, 3], "both": [2]}  # the scan has no text to add


def test_overrides_a_document_or_model_cannot_follow_are_refused(library, four_pages):
    with pytest.raises(UserError, match=r"page modes: mixed\.pdf has 4 pages; no page 9"):
        read(library, four_pages, vision=True, modes="2=both, 9=image")
    with pytest.raises(UserError, match="page modes: page 3 as image needs a model that sees"):
        read(library, four_pages, vision=False, modes="1=text, 3=image")


def test_a_page_sent_as_both_carries_its_image_then_its_text(tiny_engine, library, four_pages):
    doc = read(library, four_pages, vision=True, modes="2=both")
    messages = [ChatMessage("user", (doc, TextPart("What is on page 2?")))]
    fitted, report = fit_context(tiny_engine, messages, library, "relevant")
    parts = expand_documents(fitted, library)[-1].parts
    images = [i for i, p in enumerate(parts) if isinstance(p, ImagePart)]
    assert [parts[i].name.rsplit(" ", 1)[-1] for i in images] == ["2", "3"]
    after_page_2 = parts[images[0] + 1].text
    assert after_page_2.lstrip().startswith("Typed page about the harbour") and "[p. 3]" in after_page_2
    (cost,) = report.costs
    assert cost["text"] == [1, 4] and cost["image"] == [3] and cost["both"] == [2]
    # Pages 1, 2 and 4 hold the same text and every page is the same size: page 2 sent
    # as both costs one page image and one page of text.
    assert cost["image_tokens"] > 0 and cost["text_tokens"] > 0
    assert cost["both_tokens"] == cost["image_tokens"] + cost["text_tokens"] // 2
    line = report.line()
    assert f"mixed.pdf as text p. 1, 4 ({cost['text_tokens']:,} tokens)" in line
    assert f"image p. 3 ({cost['image_tokens']:,} tokens)" in line
    assert f"image+text p. 2 ({cost['both_tokens']:,} tokens)" in line
    assert report.context_used == tiny_engine.count_tokens(expand_documents(fitted, library))


def test_a_range_that_does_not_fit_beside_older_turns_drops_them(smollm2, library, tmp_path):
    from tests.fixtures.documents import text_pdf

    path = tmp_path / "memo.pdf"
    path.write_bytes(text_pdf([f"Page {n} of the memo. " * 20 for n in range(1, 5)]))
    chatter = "Tell me about the weather in detail. " * 120
    history = []
    for _ in range(6):
        history += [ChatMessage.text("user", chatter), ChatMessage.text("assistant", chatter)]
    (doc,) = read_documents(library.store, [str(path)], mode="auto", vision=False, password=None, max_pages=9)
    messages = [*history, ChatMessage("user", (doc, TextPart("What do pages 2-3 say?")))]
    fitted, report = fit_context(smollm2, messages, library, "range", "2-3", max_answer_tokens=512)
    assert fitted[-1].documents[0].pages == (2, 3)  # the pages asked for, all of them
    assert 0 < report.dropped_turns < 6 and len(fitted) == len(messages) - 2 * report.dropped_turns
    assert "memo.pdf: sent 2 of 4 pages: 2–3 — the pages asked for" in report.line()
    assert f"dropped the {report.dropped_turns} oldest turn(s)" in report.line()
    alone = [messages[-1]]  # nothing older to drop: the range itself is what does not fit
    fit_context(smollm2, alone, library, "range", "2-3", max_answer_tokens=512)


def test_a_question_asked_again_gets_every_page_with_the_overrides(library, four_pages):
    from dataclasses import replace

    from documents.context import widened

    doc = read(library, four_pages, vision=True)
    fitted = ChatMessage("user", (replace(doc, text_pages=(2,), image_pages=()), TextPart("Again?")))
    (again,) = widened(fitted, library, True, "auto", parse_page_modes("1=both")).documents
    assert choices_of(again) == {"text": [2, 4], "image": [3], "both": [1]}
    with pytest.raises(UserError, match="no page 7"):
        widened(fitted, library, True, "auto", parse_page_modes("7=image"))
