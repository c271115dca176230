"""OpenAI chat-completion requests, checked and turned into engine messages: text and
images (data URLs only: the server never fetches a URL it is handed) in their order."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from documents.parts import ChatMessage
from engine.decode_pool import decode_all
from engine.images import image_from_bytes
from engine.limits import check_text
from engine.types import ImagePart, Part, TextPart

MAX_STOPS = 4  # as OpenAI allows
# Integers a client may send: a seed is 64-bit at most (OpenAI's), a token count 32-bit.
MAX_SEED = 2**64 - 1
MAX_TOKENS = 2**31 - 1
# A \uD800-\uDFFF escape: half of a surrogate pair, checked that its other half is there.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class ApiError(Exception):
    """An error the client gets as OpenAI's JSON error object with this status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param=None,
        code=None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ImageUrl(BaseModel):
    url: str


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None


class RequestMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # penalties, logit_bias, user, ...: not used here
    model: str | None = None
    messages: list[RequestMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), le=MAX_SEED)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)

    @property
    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOPS:
            raise ApiError(400, f"at most {MAX_STOPS} stop sequences", param="stop")
        return stops

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def decode_json(raw: bytes) -> Any:
    """The body's JSON; ApiError 400 with one line for anything that is not plain JSON
    text: malformed, NaN/Infinity, nesting past Python's recursion limit, or a lone
    surrogate (text no file or database can hold: it failed only once half stored)."""
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise ApiError(400, "the request body's JSON is nested too deeply") from None
    except ValueError:
        raise ApiError(400, "the request body is not JSON") from None
    if SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "the request body holds a lone surrogate (\\ud800-\\udfff)") from None
        except RecursionError:
            raise ApiError(400, "the request body's JSON is nested too deeply") from None
    return body


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse_request(body: Any) -> ChatRequest:
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(bit) for bit in first["loc"])
        raise ApiError(400, f"{where}: {first['msg']}", param=where or None) from None


def check_sizes(request: ChatRequest, max_field_chars: int, max_messages: int) -> None:
    """Refuse fields past the server's limits before any is looked up or echoed back
    (texts and images are checked as they are read, in `to_messages`)."""
    if len(request.messages) > max_messages:
        raise ApiError(
            400, f"{len(request.messages):,} messages, over the limit of {max_messages:,}", param="messages"
        )
    fields = [("model", request.model or "")] + [("stop", stop) for stop in request.stops]
    for name, value in fields:
        if len(value) > max_field_chars:
            raise ApiError(
                400, f"{name} is {len(value):,} characters, over the limit of {max_field_chars:,}", param=name
            )


def to_messages(
    request: ChatRequest, max_pixels: int, max_chars: int, owner: str | None = None
) -> list[ChatMessage]:
    """The conversation in the request's order; raises ApiError on a bad part. Images
    are decoded in the shared pool, fair between owners (engine/decode_pool.py)."""
    messages = []
    for index, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        parts = _parts(message.content, f"messages.{index}", max_pixels, max_chars, owner)
        if role != "user" and any(isinstance(p, ImagePart) for p in parts):
            raise ApiError(400, f"messages.{index}: only user messages can hold images", param="messages")
        messages.append(ChatMessage(role, parts))
    if messages[-1].role != "user":
        raise ApiError(400, "the last message must be the user's", param="messages")
    return messages


def _parts(content, where: str, max_pixels: int, max_chars: int, owner: str | None) -> tuple[Part, ...]:
    if content is None:
        return ()
    pieces = [ContentPart(type="text", text=content)] if isinstance(content, str) else content
    parts: list[Part | str] = []  # an image's data URL until the pool has decoded it
    for number, piece in enumerate(pieces):
        if piece.type == "text":
            check_text(piece.text or "", max_chars)
            parts.append(TextPart(piece.text or ""))
        elif piece.image_url is None:
            raise ApiError(400, f"{where}.content.{number}: image_url is missing", param="messages")
        else:
            parts.append(piece.image_url.url)
    urls = [(f"image {n}", url) for n, url in enumerate((p for p in parts if isinstance(p, str)), 1)]
    decoded = iter(decode_all(owner, lambda named: _image(named[1], named[0], max_pixels), urls))
    return tuple(next(decoded) if isinstance(p, str) else p for p in parts)


def _image(url: str, name: str, max_pixels: int) -> ImagePart:
    header, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma or not header.endswith(";base64"):
        raise ApiError(400, f"{name}: send images as data:image/...;base64 URLs", param="messages")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{name}: the data URL is not valid base64", param="messages") from None
    return image_from_bytes(data, name, max_pixels)  # EngineInputError for anything not an image
