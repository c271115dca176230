"""A chat message (text, images, documents, citations) is not what a model takes:
`expand_documents` is the one conversion, and only text and images come out of it."""

from __future__ import annotations

import pytest

from documents.context import expand_documents, fit_context
from documents.parts import ChatMessage, DocumentPart
from engine.types import ImagePart, Message, TextPart
from sessions.library import read_documents
from tests.documents.test_documents_context import mixed_pdf


def test_a_document_becomes_page_text_in_place_and_nothing_else_reaches_the_model(tmp_path, library):
    path = tmp_path / "notes.pdf"
    path.write_bytes(mixed_pdf(["The heron nests by the mill.", "Otters fish at dawn."]))
    (doc,) = read_documents(
        library.store, [str(path)], mode="text", vision=False, password=None, max_pages=50
    )
    chat = [
        ChatMessage.text("system", "Be brief."),
        ChatMessage("user", (TextPart("Before."), doc, TextPart("Where does the heron nest?"))),
    ]
    sent = expand_documents(chat, library)
    assert all(type(m) is Message for m in sent)
    assert all(isinstance(p, TextPart | ImagePart) for m in sent for p in m.parts)
    text = sent[-1].plain_text
    assert text.index("Before.") < text.index("[p. 1]") < text.index("heron nests") < text.index("[p. 2]")
    assert text.endswith("Where does the heron nest?")
    assert [m.role for m in sent] == ["system", "user"]


def test_a_document_without_the_store_is_a_bug_not_an_empty_prompt():
    doc = DocumentPart("ab" * 32, "x.pdf", 3, text_pages=(1,))
    with pytest.raises(TypeError, match="store"):
        expand_documents([ChatMessage("user", (doc, TextPart("?")))], None)
    plain = expand_documents([ChatMessage.text("user", "hi")], None)
    assert plain == [Message.text("user", "hi")]


def test_fitting_keeps_chat_messages_and_their_documents(smollm2, tmp_path, library):
    path = tmp_path / "short.pdf"
    path.write_bytes(mixed_pdf(["Alpha page.", "Beta page."]))
    (doc,) = read_documents(
        library.store, [str(path)], mode="text", vision=False, password=None, max_pages=50
    )
    fitted, report = fit_context(smollm2, [ChatMessage("user", (doc, TextPart("Beta?")))], library)
    assert isinstance(fitted[-1], ChatMessage) and fitted[-1].documents[0].pages == (1, 2)
    assert report.pages_sent == {"short.pdf": [1, 2]}


def test_citations_are_the_pages_an_answer_names_in_order_each_once():
    answer = ChatMessage.text("assistant", "See [p. 3] and [pp. 5-7]; again [p. 3], and [p.12].")
    assert answer.citations == (3, 5, 6, 7, 12)
    assert ChatMessage.text("assistant", "[pp. 1-99999999]").citations[-1] == 1001  # bounded
    assert ChatMessage.text("assistant", "page 3, (p. 4)").citations == ()
