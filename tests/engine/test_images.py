"""Files become images only after their bytes are checked."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from engine.images import image_from_bytes, load_image_file
from errors import UserError
from tests.conftest import png_bytes


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds almost nothing (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_png_passes_through_unchanged():
    data = png_bytes(64, 32)
    part = image_from_bytes(data, "a.png")
    assert (part.mime, part.width, part.height, part.data) == ("image/png", 64, 32, data)


def test_webp_is_reencoded_as_png():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "blue").save(buf, "WEBP")
    part = image_from_bytes(buf.getvalue(), "b.webp")
    assert part.mime == "image/png" and part.data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.7 not an image", "not an image"),
        (png_bytes()[:60], "damaged or truncated"),
        (png_header_only(100_000, 100_000), "pixel"),
        (png_header_only(8_000, 8_000), "pixel limit"),
    ],
    ids=["zero-bytes", "pdf-bytes", "truncated", "bomb-100k", "over-limit"],
)
def test_bad_images_are_refused_with_one_line(data, message):
    with pytest.raises(UserError, match=message) as info:
        image_from_bytes(data, "upload.png")
    assert "\n" not in str(info.value)


def test_extension_does_not_decide(tmp_path):
    lying = tmp_path / "photo.png"
    lying.write_text("hello, I am text")
    with pytest.raises(UserError, match="not an image"):
        load_image_file(lying)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_image_file(tmp_path / "nope.png")
