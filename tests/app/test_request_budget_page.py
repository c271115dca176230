"""The one request budget on the page's send (the same check as /v1 and the CLI, in
chat.question): over-budget text or images get the one-line message in the notice,
nothing reaches the chat and nothing is stored; 40 GIFs that declare 6000x6000 pixels
to a text-only model are refused without being decoded."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest

from tests.conftest import chats_stored, start_app, stop_app

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("page-budget")
    flags = ["--max-request-chars", "1000", "--max-request-images", "50"]
    proc, url = start_app("--data-dir", str(data), *flags)
    yield SimpleNamespace(url=url, data=data)
    stop_app(proc)


@pytest.fixture(scope="module")
def big_gifs(tmp_path_factory) -> list:
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (6000, 6000), 0).save(out, "GIF")
    folder = tmp_path_factory.mktemp("gifs")
    for n in range(40):
        (folder / f"{n}.gif").write_bytes(out.getvalue())
    return [folder / f"{n}.gif" for n in range(40)]


def send(app, text: str, files=()):
    client = Client(app.url, verbose=False)
    return client.predict({"text": text, "files": [handle_file(f) for f in files]}, api_name="/send")


def test_too_much_text_is_refused_with_the_figure_and_the_limit(app):
    _, chat, notice = send(app, "x" * 2_000)
    assert "request has 2,000 characters; this server takes 1,000 (--max-request-chars)" in notice
    assert "\\n" not in notice and chat == []
    assert chats_stored(app.data) == 0


def test_40_big_gifs_to_the_text_only_model_are_refused_at_once(app, big_gifs):
    client = Client(app.url, verbose=False)
    uploads = [handle_file(f) for f in big_gifs]
    started = time.monotonic()
    _, chat, notice = client.predict({"text": "what?", "files": uploads}, api_name="/send")
    took = time.monotonic() - started
    assert "cannot see images" in notice and chat == []
    assert took < 30, took  # 40 uploads included; decoding them first took longer still
    assert chats_stored(app.data) == 0
