"""The page's login form under the login back-off (api/login_throttle.py).

Gradio checks the password itself (POST /login: 200 and a cookie, or 400), so this
sits in front of it as ASGI middleware: a paused user or address gets 429 with
Retry-After and one line, unread by Gradio; otherwise Gradio's answer decides whether
the attempt counts as a failure or clears the count."""

from __future__ import annotations

import json

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.login_throttle import LoginThrottle, too_many
from app.limits import replay_body

LOGIN_PATHS = ("/login", "/login/")
MAX_FORM_BYTES = 64 * 1024  # a user name and a password


def login_guard(throttle: LoginThrottle) -> Middleware:
    return Middleware(LoginGuard, throttle=throttle)


class LoginGuard:
    def __init__(self, app: ASGIApp, throttle: LoginThrottle):
        self.app, self.throttle = app, throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in LOGIN_PATHS:
            await self.app(scope, receive, send)
            return
        messages = await _read_body(receive)
        if messages is None:
            await _answer(send, 413, "the login form is too large")
            return
        user = await _user_name(scope, messages)
        address = (scope.get("client") or ("?", 0))[0]
        wait = self.throttle.wait_s(user, address)
        if wait:
            await _answer(send, 429, too_many(wait), retry_after=wait)
            return
        status = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, replay_body(messages, receive), watch)
        if status.get("code") == 200:
            self.throttle.succeeded(user)
        elif status.get("code") == 400:  # Gradio's "Incorrect credentials."
            self.throttle.failed(user, address, "page login")


async def _read_body(receive: Receive) -> list[Message] | None:
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > MAX_FORM_BYTES:
            return None
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


async def _user_name(scope: Scope, messages: list[Message]) -> str | None:
    """The form's username (urlencoded or multipart, as Gradio's page sends it)."""
    request = Request(scope, replay_body(messages, _never))
    try:
        form = await request.form(max_files=0, max_fields=10)
        name = form.get("username")
    except Exception:  # a malformed form: Gradio answers it; count it by address only
        return None
    return name.strip() if isinstance(name, str) else None


async def _answer(send: Send, status: int, line: str, retry_after: int | None = None) -> None:
    body = json.dumps({"detail": line, "error": line}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _never() -> Message:
    return {"type": "http.disconnect"}
