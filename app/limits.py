"""A cap on the page's request bodies. Gradio reads a whole JSON body into memory
before any check of ours runs (a queue join with a 2 GB "message"), so the cap sits
in front of it, as ASGI middleware: a declared length past it is refused unread, a
chunked body as soon as it passes it, with one line and status 413.

Uploads are left to Gradio, which streams them to disk and bounds them by
--max-file-mb; the /v1 API bounds its own bodies (api/routes.py) and answers in
OpenAI's error shape."""

from __future__ import annotations

import json

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings

UNCAPPED = ("/v1/", "/gradio_api/upload")  # bounded elsewhere (see above)


def body_limit(settings: Settings) -> Middleware:
    """The middleware for `app_kwargs["middleware"]`."""
    return Middleware(BodyLimit, limit_mb=settings.max_request_mb)


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_mb: int):
        self.app = app
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNCAPPED):
            await self.app(scope, receive, send)
            return
        limit = self.limit_mb * 2**20
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send)
            return
        # Held until complete, so the app never sees a body cut short: at most `limit`
        # bytes, which Gradio would have read into memory anyway.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                await self._refuse(send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        await self.app(scope, replay_body(messages, receive), send)

    async def _refuse(self, send: Send) -> None:
        line = f"the request body is over the {self.limit_mb} MB limit (L4P_MAX_REQUEST_MB)"
        body = json.dumps({"error": line, "detail": line}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # rather than read and drop the rest of the body
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def replay_body(messages: list[Message], receive: Receive) -> Receive:
    """The body already read, then whatever comes next (a disconnect) from the client."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
