"""Images a scanner or a phone produces reach the API's model as PNG: a TIFF, a BMP, a
TGA sent as data URLs are accepted; a broken one is an OpenAI-style 400 in one line."""

from __future__ import annotations

import base64
import io

import pytest

from api.requests import parse_request, to_messages
from engine.types import EngineInputError, ImagePart


def data_url(fmt: str, mime: str, frames: int = 1) -> str:
    from PIL import Image

    images = [Image.new("RGB", (48, 32), (10 * n, 80, 160)) for n in range(frames)]
    out = io.BytesIO()
    options = {"save_all": True, "append_images": images[1:]} if frames > 1 else {}
    images[0].save(out, format=fmt, **options)
    return f"data:{mime};base64,{base64.b64encode(out.getvalue()).decode()}"


def request_with(url: str):
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    return parse_request({"model": "m", "messages": [{"role": "user", "content": content}]})


@pytest.mark.parametrize(
    ("fmt", "mime", "frames"),
    [
        ("TIFF", "image/tiff", 1),
        ("TIFF", "image/tiff", 3),
        ("BMP", "image/bmp", 1),
        ("TGA", "image/x-tga", 1),
    ],
    ids=["tiff", "tiff-3-frames", "bmp", "tga"],
)
def test_scanner_and_phone_formats_are_accepted(fmt, mime, frames):
    (message,) = to_messages(request_with(data_url(fmt, mime, frames)), 40_000_000, 10_000)
    (image,) = [p for p in message.parts if isinstance(p, ImagePart)]
    assert image.mime == "image/png" and (image.width, image.height) == (48, 32)
    assert image.data.startswith(b"\x89PNG")


def test_a_broken_image_is_one_line():
    url = data_url("BMP", "image/bmp")
    header, _, payload = url.partition(",")
    broken = header + "," + base64.b64encode(base64.b64decode(payload)[:70]).decode()
    with pytest.raises(EngineInputError, match="image 1 is damaged or truncated") as caught:
        to_messages(request_with(broken), 40_000_000, 10_000)
    assert "\n" not in str(caught.value)
