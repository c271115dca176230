"""Turn user files into validated image parts before they reach any model.

Everything is checked from the bytes, never from the file name: an extension can
lie, a PNG header can declare 100k x 100k pixels, a download can be truncated."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

from engine.types import EngineInputError, ImagePart

# Formats llama.cpp's image loader (stb_image) reads directly; every other format
# Pillow decodes (TIFF, BMP, TGA, AVIF, WebP, GIF, ...) is re-encoded as PNG once, here.
NATIVE_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}
IMAGE_MIME_TYPES = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/avif",
    "image/x-tga",
)
DEFAULT_MAX_PIXELS = 40_000_000  # a 40 MP photo; far more than Llama 4's 16 tiles use


def load_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImagePart:
    path = Path(path)
    if not path.is_file():
        raise EngineInputError(f"image not found: {path}")
    return image_from_bytes(path.read_bytes(), path.name, max_pixels)


def image_file_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header only (nothing decoded), refusing what
    `load_image_file` would refuse before decoding: a missing file, a file that is no
    image, a header that declares a bomb."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise EngineInputError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise EngineInputError(f"{path.name} is empty (0 bytes)")
    try:
        with Image.open(path) as probe:
            return probe.size
    except Image.DecompressionBombError:
        raise EngineInputError(f"{path.name} declares too many pixels to open safely") from None
    except Exception:
        raise EngineInputError(f"{path.name} is not an image this app can read") from None


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
    if width * height > max_pixels:
        raise EngineInputError(f"{name} is {width}x{height} pixels, over the {max_pixels:,} pixel limit")
    # Header checks passed; now decode fully (the first frame of a multi-frame file) so
    # truncated files fail here, not in C.
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if fmt not in NATIVE_MIME or getattr(img, "n_frames", 1) > 1:
                data, fmt = to_png(img), "PNG"
    except Exception:
        raise EngineInputError(f"{name} is damaged or truncated (its {fmt} data cannot be decoded)") from None
    return ImagePart(data=data, mime=NATIVE_MIME[fmt], name=name, width=width, height=height)


def to_png(img) -> bytes:
    """The loaded frame as PNG, in a mode PNG holds: 16-bit and float greys are scaled
    to 8 bits, CMYK, palettes and the rest become RGB(A)."""
    buf = io.BytesIO()
    normalised(img).save(buf, format="PNG")
    return buf.getvalue()


def normalised(img):
    if img.mode in ("RGB", "RGBA", "L"):
        return img
    if img.mode.startswith(("I", "F")):  # 16/32-bit or float greys (scientific TIFFs)
        low, high = img.getextrema()
        span = (high - low) or 1
        return img.convert("F").point(lambda v: (v - low) * 255.0 / span).convert("L")
    has_alpha = "A" in img.mode or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else "RGB")


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
