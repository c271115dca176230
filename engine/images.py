"""Turn user files into validated image parts before they reach any model.

Everything is checked from the bytes, never from the file name: an extension can
lie, a PNG header can declare 100k x 100k pixels, a download can be truncated."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

from engine.types import EngineInputError, ImagePart

# Formats llama.cpp's image loader (stb_image) reads directly; others are re-encoded.
NATIVE_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}
ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")
DEFAULT_MAX_PIXELS = 40_000_000  # a 40 MP photo; far more than Llama 4's 16 tiles use


def load_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImagePart:
    path = Path(path)
    if not path.is_file():
        raise EngineInputError(f"image not found: {path}")
    return image_from_bytes(path.read_bytes(), path.name, max_pixels)


def image_from_bytes(data: bytes, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> ImagePart:
    from PIL import Image

    if not data:
        raise EngineInputError(f"{name} is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt, (width, height) = probe.format, probe.size
    except Image.DecompressionBombError:
        raise EngineInputError(f"{name} declares too many pixels to open safely") from None
    except Exception:
        raise EngineInputError(f"{name} is not an image this app can read") from None
    if fmt not in ACCEPTED_FORMATS:
        raise EngineInputError(f"{name}: {fmt} images are not supported (use PNG or JPEG)")
    if width * height > max_pixels:
        raise EngineInputError(f"{name} is {width}x{height} pixels, over the {max_pixels:,} pixel limit")
    # Header checks passed; now decode fully so truncated files fail here, not in C.
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if fmt not in NATIVE_MIME:
                data, fmt = _to_png(img), "PNG"
    except Exception:
        raise EngineInputError(f"{name} is damaged or truncated") from None
    return ImagePart(data=data, mime=NATIVE_MIME[fmt], name=name, width=width, height=height)


def _to_png(img) -> bytes:
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def as_jpeg(part: ImagePart, quality: int = 90) -> ImagePart:
    """The same pixels as a JPEG: a photo's Llama 4 canvas weighs a tenth of its PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(part.data)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=quality)
    return replace(part, data=out.getvalue(), mime="image/jpeg")


def data_url_length(part: ImagePart) -> int:
    """len(data_url(part)) without encoding: what the image weighs in a request."""
    return len(f"data:{part.mime};base64,") + 4 * math.ceil(len(part.data) / 3)


def data_url(part: ImagePart) -> str:
    import base64

    return f"data:{part.mime};base64,{base64.b64encode(part.data).decode('ascii')}"
