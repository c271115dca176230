"""Documents in the session store: parsed once per sha256, pages searchable by bm25,
kept with the messages that use them, removed with the last one, exported and back."""

from __future__ import annotations

import pytest

import documents.reader as documents
from documents.parts import ChatMessage, DocumentPart
from engine.types import TextPart
from errors import UserError
from sessions import Store
from sessions.library import DocumentLibrary
from tests.fixtures.bad_documents import encrypted_pdf
from tests.fixtures.documents import text_pdf

PAGES = [
    "Quarterly revenue grew in the northern region thanks to new contracts.",
    "The maintenance budget for the turbines was cut by a third this year.",
    "Turbine blades showed fatigue cracks; the turbine inspection found seven cracked blades.",
    "Staff training continued as planned with two new courses.",
]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "data") as opened:
        yield opened


def test_a_document_is_parsed_once_per_sha256(store, monkeypatch):
    data = text_pdf(PAGES)
    first = store.ingest_document(data, "report.pdf")
    assert (first.pages, first.pages_with_text, first.pages_needing_vision) == (4, 4, 0)
    assert first.kind == "pdf" and first.name == "report.pdf"
    monkeypatch.setattr(documents, "parse_document", lambda *a, **k: pytest.fail("parsed twice"))
    again = store.ingest_document(data, "copy of report.pdf")
    assert again.sha256 == first.sha256 and again.name == "copy of report.pdf"  # the uploader's own name
    assert [p.number for p in store.document_pages(first.sha256)] == [1, 2, 3, 4]
    assert "fatigue cracks" in store.document_pages(first.sha256)[2].text


def test_pages_rank_by_bm25_for_the_question(store):
    row = store.ingest_document(text_pdf(PAGES), "report.pdf")
    assert store.rank_pages(row.sha256, "Which turbine blades were cracked?")[:2] == [3, 2]
    assert store.rank_pages(row.sha256, "the of and")[:1] == []  # no content words, no ranking
    assert store.rank_pages(row.sha256, 'quote " and NEAR( operators') == []  # quoted away, no error


def test_an_encrypted_pdf_needs_its_password_and_is_stored_unlocked(store):
    data = encrypted_pdf("s3cret")
    with pytest.raises(documents.PasswordRequired, match="encrypted; give its password"):
        store.ingest_document(data, "secret.pdf")
    with pytest.raises(documents.WrongPassword, match="wrong password"):
        store.ingest_document(data, "secret.pdf", password="nope")
    assert store.db["documents"].count == 0  # nothing half-written
    row = store.ingest_document(data, "secret.pdf", password="s3cret")
    image = DocumentLibrary(store).page_image(row.sha256, 1)  # renders without the password
    assert image.mime == "image/png" and image.width > 0


def test_deleting_the_last_chat_that_uses_a_document_removes_it(store):
    row = store.ingest_document(text_pdf(PAGES), "report.pdf")
    part = DocumentPart(row.sha256, row.name, row.pages, text_pages=(1, 3))
    sessions = [store.create_session() for _ in range(2)]
    for session in sessions:
        store.add_user_message(session, None, ChatMessage("user", (part, TextPart("cracks?"))))
    store.delete_session(sessions[0])
    assert store.document(row.sha256).pages == 4  # the other chat still uses it
    store.delete_session(sessions[1])
    with pytest.raises(UserError):
        store.document(row.sha256)
    assert store.db["document_pages"].count == 0
    assert not store.blob_path(row.sha256).exists()


def test_a_message_keeps_its_document_and_pages(store):
    row = store.ingest_document(text_pdf(PAGES), "report.pdf")
    part = DocumentPart(row.sha256, row.name, row.pages, text_pages=(1,), image_pages=(3,))
    session = store.create_session()
    store.add_user_message(session, None, ChatMessage("user", (part, TextPart("what is on p. 3?"))))
    (stored,) = store.branch(session)
    assert stored.parts == (part, TextPart("what is on p. 3?"))
    with pytest.raises(UserError, match="not in the store"):
        missing = DocumentPart("0" * 64, "gone.pdf", 1, text_pages=(1,))
        store.add_user_message(session, None, ChatMessage("user", (missing, TextPart("?"))))


def test_export_and_import_carry_documents(store, tmp_path):
    row = store.ingest_document(text_pdf(PAGES), "report.pdf")
    part = DocumentPart(row.sha256, row.name, row.pages, text_pages=(2, 3))
    session = store.create_session(title="turbines")
    user = store.add_user_message(session, None, ChatMessage("user", (part, TextPart("cracks?"))))
    info = {"context_used": 900, "n_ctx": 8192, "pages_sent": {"report.pdf": [2, 3]}}
    with store.start_answer(session, user, "m", {}, prompt_info=info) as answer:
        answer.append("Seven blades [p. 3].")
    exported = store.export_json(session)
    with Store(tmp_path / "other") as other:
        copy = other.import_json(exported)
        user_row, answer_row = other.branch(copy)
        assert user_row.parts[0] == part
        assert other.document_pages(row.sha256)[2].text == store.document_pages(row.sha256)[2].text
        assert answer_row.prompt_info["pages_sent"] == {"report.pdf": [2, 3]}
        markdown = other.export_markdown(copy, tmp_path / "md").read_text()
        assert "(pages sent: 2–3)" in markdown


def test_cancelling_a_long_read_leaves_nothing_behind(store):
    import threading

    cancel = threading.Event()
    seen = []

    def progress(fraction: float, what: str) -> None:
        seen.append(what)
        cancel.set()  # the user presses Stop as the first pages come in

    data = text_pdf([f"page {n} text" for n in range(1, 301)])
    with pytest.raises(documents.IngestCancelled, match=r"reading long\.pdf was cancelled"):
        store.ingest_document(data, "long.pdf", progress=progress, cancel=cancel)
    assert seen and seen[0].startswith("reading long.pdf: page ")
    assert store.db["documents"].count == 0 and store.db["document_pages"].count == 0
    assert store.ingest_document(data, "long.pdf").pages == 300  # and it can be read again
