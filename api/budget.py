"""One request's budget, checked before any image is decoded or anything is stored:
its text characters all together, its images (how many, and the pixels their headers
declare all together), and whether the model can see images at all.

Each image was bounded on its own (max_image_pixels) and text per part; a request of
100 large GIFs to a text-only model was still decoded in full (over a minute) before
"this model cannot see images", and 12 parts of 999k characters were stored before
being refused. The error names the figure and the limit."""

from __future__ import annotations

import base64
import binascii
import io

from .requests import ApiError, ChatRequest

HEADER_BYTES = 64 * 1024  # enough of any accepted format to read its size


def check_budget(request: ChatRequest, settings, vision: bool, label: str) -> None:
    texts, images = _pieces(request)
    chars = sum(len(text) for text in texts)
    if chars > settings.max_request_chars:
        raise ApiError(
            400,
            f"request has {chars:,} characters; this server takes {settings.max_request_chars:,} "
            "(L4P_MAX_REQUEST_CHARS)",
            param="messages",
        )
    if not images:
        return
    if not vision:
        raise ApiError(400, f"{label} cannot see images", param="messages")
    if len(images) > settings.max_request_images:
        raise ApiError(
            400,
            f"request has {len(images):,} images; this server takes {settings.max_request_images:,} "
            "(L4P_MAX_REQUEST_IMAGES)",
            param="messages",
        )
    pixels = sum(_declared_pixels(url) for url in images)
    if pixels > settings.max_request_pixels:
        raise ApiError(
            400,
            f"request's images declare {pixels:,} pixels; this server takes {settings.max_request_pixels:,} "
            "(L4P_MAX_REQUEST_PIXELS)",
            param="messages",
        )


def _pieces(request: ChatRequest) -> tuple[list[str], list[str]]:
    texts, images = [], []
    for message in request.messages:
        if isinstance(message.content, str):
            texts.append(message.content)
            continue
        for part in message.content or []:
            if part.type == "text":
                texts.append(part.text or "")
            elif part.image_url is not None:
                images.append(part.image_url.url)
    return texts, images


def _declared_pixels(url: str) -> int:
    """What the image's header says (width x height), from its first bytes only; 0 for
    anything unreadable here (the full check, later, refuses it with its own line)."""
    from PIL import Image

    _, comma, payload = url.partition(",")
    if not comma:
        return 0
    head = payload[: HEADER_BYTES * 4 // 3 // 4 * 4]  # whole base64 quads
    try:
        data = base64.b64decode(head, validate=True)
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        return 0
    return width * height
