"""Documents through the launched app (gradio_client): the budget line before the
answer, relevant pages when a long PDF does not fit, pages recorded with the answer,
and one clear line for every bad document, the app serving on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from documents.reader import DOCUMENT_EXTENSIONS
from sessions import Store
from tests.documents.test_documents_context import SECRET_PAGE, long_report
from tests.fixtures.bad_documents import PASSWORDS, bad_documents, encrypted_pdf


def send(client: Client, text: str, files=(), password: str = "", page_mode: str = "auto"):
    message = {"text": text, "files": [handle_file(str(f)) for f in files]}
    return client.predict(message, "smollm2-135m", page_mode, password, api_name="/send")


def answer(client: Client, strategy: str = "relevant", page_range: str = "", max_tokens: int = 24):
    updates = list(
        client.submit(
            "smollm2-135m",
            strategy,
            page_range,
            "You are a helpful AI assistant.",
            0,
            0.9,
            max_tokens,
            api_name="/respond",
        )
    )
    return updates


def last_text(chat) -> str:
    return " ".join(p.get("text", "") for p in chat[-1]["content"] if p.get("type") == "text")


def test_a_300_page_pdf_is_asked_about_with_the_budget_shown(app_url, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(long_report(300))
    client = Client(app_url, verbose=False, download_files=False)
    _, chat, notice = send(client, "What is the launch code for the falcon project?", [path])
    assert notice == ""
    assert chat[-1]["content"][0]["alt_text"] == "report.pdf · 300 pages"
    updates = answer(client)
    first_notice = updates[0][1]
    assert first_notice.startswith("context used: ") and " of 8,192 tokens" in first_notice
    assert f"report.pdf: sent 1 of 300 pages: {SECRET_PAGE}" in first_notice  # the pages chosen, in the open
    assert "most relevant" in first_notice
    footer = last_text(updates[-1][0])
    assert f"report.pdf: sent 1 of 300 pages: {SECRET_PAGE}" in footer and "context " in footer  # lasting
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        session = store.search("falcon project launch code")[0].session_id
        user, reply = store.branch(session)
        assert user.parts[0].pages == (SECRET_PAGE,)  # the pages chosen are kept for later turns
        assert reply.prompt_info["pages_sent"] == {"report.pdf": [SECRET_PAGE]}
        assert reply.prompt_info["context_used"] <= 8192


def test_an_encrypted_pdf_asks_for_its_password(app_url, tmp_path):
    path = tmp_path / "locked.pdf"
    path.write_bytes(encrypted_pdf("s3cret"))
    client = Client(app_url, verbose=False, download_files=False)
    box, chat, notice = send(client, "What does it say?", [path])
    assert "locked.pdf is encrypted; give its password" in notice and chat == []
    assert box["value"]["text"] == "What does it say?"  # kept, to send again with the password
    _, _, notice = send(client, "What does it say?", [path], password="wrong")
    assert "locked.pdf: wrong password" in notice
    _, chat, notice = send(client, "What does it say?", [path], password="s3cret")
    assert notice == "" and chat[-1]["content"][0]["alt_text"].startswith("locked.pdf")


BAD = bad_documents()
# A PNG goes the image route (a broken one: tests/documents/test_image_documents.py); a
# bomb is refused when its page is rendered, which only a vision model asks for (next test).
REFUSED_ON_SEND = sorted(set(BAD) - {"image", "broken-image", "decompression-bomb"})


@pytest.mark.parametrize("label", REFUSED_ON_SEND)
def test_a_bad_document_gets_one_clear_line_and_the_app_serves_on(app_url, tmp_path, label):
    name, data, expected = BAD[label]
    path = tmp_path / name
    path.write_bytes(data)
    client = Client(app_url, verbose=False, download_files=False)
    if Path(name).suffix not in DOCUMENT_EXTENSIONS:
        # The upload itself is refused (the file picker does not even offer these).
        with pytest.raises(AppError, match="Invalid file type"):
            send(client, "Summarise this.", [path])
        return
    _, chat, notice = send(client, "Summarise this.", [path], password=PASSWORDS.get(label, ""))
    assert expected in notice and "\n" not in notice and chat == []
    _, chat, notice = send(client, "Still there?")  # the next request works
    assert notice == "" and len(chat) == 1


def test_a_page_image_bomb_is_refused_before_rendering(vision_app_url, tmp_path):
    name, data, expected = BAD["decompression-bomb"]
    path = tmp_path / name
    path.write_bytes(data)
    client = Client(vision_app_url, verbose=False, download_files=False)
    _, chat, notice = client.predict(
        {"text": "What is this?", "files": [handle_file(str(path))]}, api_name="/send"
    )
    assert notice == ""
    chat, notice = list(client.submit(api_name="/respond"))[-1]
    assert expected in notice and chat == []  # no answer pretended, none half-written
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        assert store.search("What is this") == []  # a turn the model never took is not stored


def test_scanned_pages_to_the_text_only_model_are_refused_clearly(app_url, tmp_path):
    from tests.fixtures.documents import scanned_pdf

    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf(2))
    _, chat, notice = send(Client(app_url, verbose=False, download_files=False), "What is this?", [path])
    assert "scanned pages need a vision model" in notice and chat == []


def test_the_vision_model_gets_scanned_pages_as_images(vision_app_url, tmp_path):
    from tests.fixtures.documents import scanned_pdf

    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf(2))
    client = Client(vision_app_url, verbose=False, download_files=False)
    message = {"text": "What is on these pages?", "files": [handle_file(str(path))]}
    _, _, notice = client.predict(message, api_name="/send")
    assert notice == ""
    updates = list(client.submit(api_name="/respond"))
    assert updates[0][1].startswith("context used:") and "scan.pdf: p. 1–2" in updates[0][1]
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        session = store.search("What is on these pages")[0].session_id
        user, reply = store.branch(session)
        assert user.parts[0].image_pages == (1, 2) and user.parts[0].text_pages == ()
        assert reply.status == "complete"
