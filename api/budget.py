"""/v1's side of the one request budget (engine/budget.py, the same for every route):
the request's texts and images as the budget counts them, the images' sizes read from
the first bytes of their data URLs, before any image is decoded or anything stored."""

from __future__ import annotations

import base64
import binascii

from engine.budget import HEADER_BYTES, RequestBudget, check_request
from engine.types import EngineInputError

from .requests import ApiError, ChatRequest


def check_budget(request: ChatRequest, settings, spec) -> None:
    texts, images = _pieces(request)
    # A model that cannot see images is refused before any header is read.
    headers = [_header(url) for url in images] if spec.vision else [b""] * len(images)
    budget = RequestBudget.of(settings, spec)
    try:
        check_request(budget, texts, headers, vision=spec.vision, label=spec.label)
    except EngineInputError as exc:
        raise ApiError(400, str(exc), param="messages") from None


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


def _header(url: str) -> bytes:
    """The first HEADER_BYTES of a data URL's image; b"" for anything unreadable here
    (the full check, later, refuses it with its own line)."""
    _, comma, payload = url.partition(",")
    if not comma:
        return b""
    try:
        return base64.b64decode(payload[: HEADER_BYTES * 4 // 3 // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        return b""
