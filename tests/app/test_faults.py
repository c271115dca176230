"""Faults outside the user's control: the model file disappears. The user gets one clear
line, nothing is stored for the turn the model never took (no chat, no half answer),
and once the file is back the next request answers."""

from __future__ import annotations

import shutil

from gradio_client import Client

from config import Settings
from models.catalogue import load_registry
from sessions import Store
from tests.conftest import start_app, stop_app

SYSTEM = "You are a helpful AI assistant."


def respond(client: Client, model: str, n_ctx: int = 4096):
    return client.predict(
        model_name=model,
        page_range="",
        system=SYSTEM,
        temperature=0.0,
        max_tokens=24,
        n_ctx=n_ctx,
        api_name="/respond",
    )


def ask(client: Client, model: str, text: str, n_ctx: int = 4096):
    _, _, notice = client.predict({"text": text, "files": []}, password="", api_name="/send")
    assert notice == ""
    return respond(client, model, n_ctx)


def answers(data_dir) -> list:
    with Store(data_dir) as store:
        sessions = store.list_sessions()
        return [m for s in sessions for m in store.all_messages(s.id) if m.role == "assistant"]


def test_the_model_file_disappears_and_comes_back(tmp_path):
    registry = load_registry(Settings())
    original = registry.get(registry.default).model_path
    copy, data_dir = tmp_path / "model.gguf", tmp_path / "data"
    shutil.copyfile(original, copy)
    proc, url = start_app("--data-dir", str(data_dir), "--model-path", str(copy))
    try:
        client = Client(url, verbose=False)
        copy.unlink()  # listed at start, gone before the first load
        chat, notice = ask(client, "model", "What is the capital of France?")
        assert "file not found" in notice and str(copy) in notice and "\n" not in notice
        assert chat == [] and answers(data_dir) == []  # the question the model never took is not kept

        shutil.copyfile(original, copy)
        chat, notice = ask(client, "model", "What is the capital of France?")
        assert notice == "" and "Paris" in chat[-1]["content"][0]["text"]

        # Loaded models are memory-mapped: deleting the file does not stop the one in use...
        copy.unlink()
        chat, notice = ask(client, "model", "What is the capital of Japan?")
        assert notice == "" and "Tokyo" in chat[-1]["content"][0]["text"]
        # ...but loading it again (another context size) finds it gone.
        chat, notice = ask(client, "model", "And of Italy?", n_ctx=2048)
        assert "file not found" in notice
        shutil.copyfile(original, copy)
        chat, notice = ask(client, "model", "What is the capital of Italy?", n_ctx=2048)
        assert notice == "" and "Rome" in chat[-1]["content"][0]["text"]
    finally:
        stop_app(proc)
    statuses = [a.status for a in answers(data_dir)]
    assert statuses == ["complete", "complete", "complete"]
