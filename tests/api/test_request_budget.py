"""One request's budget on /v1, checked before any image is decoded or anything is
stored: images to a text-only model refused at once, too many images, too many
pixels declared in their headers all together, too much text all together. Each a
one-line 400 that names the figure and the limit; no chat is stored."""

from __future__ import annotations

import base64
import io
import time
from types import SimpleNamespace

import httpx
import pytest

from tests.conftest import chats_stored, png_bytes, start_app, stop_app

SIDE = 6320  # a 40-megapixel GIF: ~30 KB on the wire, 40M pixels to decode


def data_url(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


@pytest.fixture(scope="module")
def big_gif() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (SIDE, SIDE), 0).save(out, "GIF")
    return data_url(out.getvalue(), "image/gif")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_llama4):
    model, mmproj = tiny_llama4
    data = tmp_path_factory.mktemp("budget")
    proc, url = start_app(
        "--data-dir", str(data), "--extra-model", f"{model}:{mmproj}",
        "--max-request-chars", "50000", "--max-request-images", "3", "--max-request-pixels", "10000000",
        "--max-request-parts", "70",
    )  # fmt: skip
    yield SimpleNamespace(url=url.rstrip("/"), data=data)
    stop_app(proc)


def ask(app, model: str, content) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    return httpx.post(app.url + "/v1/chat/completions", json=body, timeout=120)


def refused(app, reply: httpx.Response, needle: str) -> None:
    assert reply.status_code == 400, reply.text[:300]
    message = reply.json()["error"]["message"]
    assert needle in message and "\n" not in message, message
    assert chats_stored(app.data) == 0


def test_images_to_a_text_only_model_are_refused_before_any_decode(app, big_gif):
    content = [{"type": "text", "text": "what is this?"}]
    content += [{"type": "image_url", "image_url": {"url": big_gif}}] * 60
    started = time.monotonic()
    reply = ask(app, "smollm2-135m", content)
    took = time.monotonic() - started
    refused(app, reply, "cannot see images")
    assert took < 15, took  # decoding them all took over a minute


def test_too_many_images(app):
    small = {"type": "image_url", "image_url": {"url": data_url(png_bytes(), "image/png")}}
    refused(app, ask(app, "tiny-llama4", [small] * 5), "request has 5 images; this server takes 3")


def test_too_many_declared_pixels(app, big_gif):
    big = {"type": "image_url", "image_url": {"url": big_gif}}
    refused(app, ask(app, "tiny-llama4", [big, big]), f"declare {2 * SIDE * SIDE:,} pixels")


def test_too_much_text_in_all(app):
    parts = [{"type": "text", "text": "x" * 20_000}] * 3  # each part under the per-message limit
    refused(app, ask(app, "smollm2-135m", parts), "request has 60,000 characters; this server takes 50,000")


def test_too_many_parts(app):
    parts = [{"type": "text", "text": "hi"}] * 71
    needle = "request has 71 parts; this server takes 70 (--max-request-parts)"
    refused(app, ask(app, "smollm2-135m", parts), needle)
