"""Saved chats through the launched app: write-ahead saving, resume after a restart
(images and settings included), search, rename, delete, branches."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from sessions import Store
from tests.conftest import start_app, stop_app


def texts(chat):
    return [" ".join(p.get("text", "") for p in m["content"] if p.get("type") == "text") for m in chat]


def ask(client, text, files=()):
    client.predict({"text": text, "files": [handle_file(f) for f in files]}, api_name="/send")
    return list(client.submit(api_name="/respond"))[-1][0]


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def app(data_dir):
    proc, url = start_app("--data-dir", str(data_dir))
    yield url
    stop_app(proc)


def only_session(data_dir):
    with Store(data_dir) as store:
        sessions = store.list_sessions()
        assert len(sessions) == 1
        return sessions[0], store.branch(sessions[0].id)


def test_a_chat_is_saved_as_it_happens(app, data_dir):
    client = Client(app, verbose=False)
    chat = ask(client, "What is the capital of France?")
    session, rows = only_session(data_dir)
    assert session.title == "What is the capital of France?"
    assert session.model == "smollm2-135m" and session.settings["system"]
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].status == "complete" and "Paris" in rows[1].text
    assert rows[1].completion_tokens > 0 and rows[1].ttft_s > 0
    assert "Paris" in texts(chat)[-1]


def test_resume_after_restart_with_images_and_settings(tiny_llama4, data_dir, write_png):
    model, mmproj = tiny_llama4
    args = ("--data-dir", str(data_dir), "--model-path", str(model), "--mmproj", str(mmproj))
    proc, url = start_app(*args)
    try:
        client = Client(url, verbose=False)
        first = ask(
            client, "compare <image> and <image>", [write_png("a.png"), write_png("b.png", 80, 80, "blue")]
        )
    finally:
        stop_app(proc)
    session, _ = only_session(data_dir)
    proc, url = start_app(*args)
    try:
        # Saved images come as /blobs/ URLs, which the Python client cannot download
        # (it asks Gradio for them by path); the page's browser fetches them itself.
        client = Client(url, verbose=False, download_files=False)
        listed = client.predict("", api_name="/list_chats")
        assert [value for _, value in listed["choices"]] == [session.id]
        opened = client.predict(session.id, api_name="/open_chat")
    finally:
        stop_app(proc)
    chat, notice, title, model_name, system, temperature, *_ = opened
    assert notice == "" and title == session.title and model_name == "tiny-llama4"
    assert [p["type"] for p in chat[0]["content"]] == ["text", "file", "text", "file"]
    assert all(p["file"]["url"].startswith(f"{url}blobs/") for p in chat[0]["content"] if p["type"] == "file")
    assert texts(chat) == texts(first)  # the same answer and metrics line come back
    assert temperature == 0.6 and system == ""


def test_search_rename_and_delete(app, data_dir):
    client = Client(app, verbose=False)
    ask(client, "Tell me about the giraffe.")
    session, _ = only_session(data_dir)
    found = client.predict("giraffe", api_name="/search")
    hits = [value.partition("#") for _, value in found["choices"]]
    assert session.id in [chat for chat, _, _ in hits] and all(message.isdigit() for _, _, message in hits)
    assert client.predict("zebra", api_name="/search")["choices"] == []

    client.predict("", api_name="/list_chats")
    client.predict(session.id, api_name="/open_chat")
    client.predict("Giraffe facts", api_name="/rename")
    assert only_session(data_dir)[0].title == "Giraffe facts"

    client.predict(api_name="/delete_chat")
    with Store(data_dir) as store:
        assert store.list_sessions() == []


def test_regenerate_keeps_both_answers_reachable(app, data_dir):
    client = Client(app, verbose=False)
    first = texts(ask(client, "Name a fruit."))[-1]
    client.predict(api_name="/drop_last_answer")
    client.predict(
        model_name="smollm2-135m",
        system="You are a helpful AI assistant.",
        temperature=0.9,
        top_p=0.9,
        max_tokens=64,
        n_ctx=8192,
        seed=3,
        api_name="/respond",
    )
    with Store(data_dir) as store:
        session = store.list_sessions()[0]
        answers = [r for r in store.all_messages(session.id) if r.role == "assistant"]
    assert len(answers) == 2 and answers[0].parent_id == answers[1].parent_id
    chat, notice = client.predict(api_name="/previous_answer")
    assert notice == "" and "answer 1/2" in texts(chat)[-1]
    assert texts(chat)[-1].startswith(first.split('<span class="metrics">')[0])  # the answer, less its footer
    chat, _ = client.predict(api_name="/next_answer")
    assert "answer 2/2" in texts(chat)[-1]
