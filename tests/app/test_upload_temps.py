"""Gradio's temporary copies of uploads: an upload the client aborts leaves no temp
file behind, and deleting a chat removes the copies of the uploads it was read from,
also those the store keeps re-encoded (a GIF is stored as PNG, so its copy cannot be
found from the blob)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

from tests.app.test_isolation import page_chat
from tests.conftest import start_app, stop_app, wait_for

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_llama4):
    uploads = tmp_path_factory.mktemp("gradio-uploads")
    data = tmp_path_factory.mktemp("upload-temps")
    model, mmproj = tiny_llama4
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # the app's own upload folder, watched alone
    try:
        proc, url = start_app("--data-dir", str(data), "--model-path", str(model), "--mmproj", str(mmproj))
    finally:
        os.environ.pop("GRADIO_TEMP_DIR") if before is None else os.environ.update(GRADIO_TEMP_DIR=before)
    yield SimpleNamespace(url=url, uploads=uploads, data=data)
    stop_app(proc)


def flat_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()]


def test_an_aborted_upload_leaves_no_temp_file(app):
    where = urlparse(app.url)
    boundary = "x7abort"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with socket.create_connection((where.hostname, where.port)) as sock:
        sock.sendall(
            f"POST /gradio_api/upload HTTP/1.1\r\nHost: {where.hostname}:{where.port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {50 * 2**20}\r\n\r\n".encode()
            + head
        )
        for _ in range(4):
            sock.sendall(b"\0" * 2**20)
        assert wait_for(lambda: flat_files(app.uploads)), "the upload's temp file never appeared"
    # the client is gone, 46 MB short
    assert wait_for(lambda: not flat_files(app.uploads)), flat_files(app.uploads)


def test_deleting_a_chat_removes_its_uploads_copies(app, tmp_path):
    from gradio_client import Client
    from PIL import Image

    gif = tmp_path / "photo.gif"
    Image.new("RGB", (64, 48), "teal").save(gif, "GIF")
    client = Client(app.url, verbose=False, download_files=False)
    page_chat(client, "what is <image>", [gif])
    (copy,) = [p for p in app.uploads.rglob("photo.gif")]
    client.predict("", api_name="/list_chats")
    from sessions import Store

    with Store(app.data) as store:
        (session,) = store.list_sessions()
    client.predict(session.id, api_name="/open_chat")
    client.predict(api_name="/delete_chat")
    assert not copy.exists() and not copy.parent.exists()
