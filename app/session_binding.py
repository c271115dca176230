"""Gradio's session hash bound to the login that first uses it.

Gradio routes queue events (`/gradio_api/queue/data?session_hash=...`), heartbeats and
cancels by a hash the browser makes up; any login that sends the same hash received
another login's events (its answers, its chats' titles). With logins, the first login
to use a hash owns it, and any other login is refused with 403 and one line. Without
logins there is one person and nothing to bind."""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from urllib.parse import parse_qs

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.limits import replay_body

API_PREFIX = "/gradio_api/"
IN_PATH = re.compile(r"/gradio_api/(?:heartbeat|stream)/([^/]+)")
MAX_HASHES = 100_000  # the oldest bindings go first past this (a hash lives a page's life)


def session_binding() -> Middleware:
    return Middleware(SessionBinding)


class Bindings:
    """session hash -> the login that first used it, the oldest forgotten first."""

    def __init__(self, limit: int = MAX_HASHES):
        self.limit = limit
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, session_hash: str, user: str) -> bool:
        """True if `user` may use the hash (first use binds it)."""
        with self._lock:
            owner = self._owners.setdefault(session_hash, user)
            self._owners.move_to_end(session_hash)
            while len(self._owners) > self.limit:
                self._owners.popitem(last=False)
            return owner == user


class SessionBinding:
    def __init__(self, app: ASGIApp, bindings: Bindings | None = None):
        self.app, self.bindings = app, bindings or Bindings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gradio = scope.get("app")
        if scope["type"] != "http" or API_PREFIX not in scope["path"] or not getattr(gradio, "auth", None):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        session_hash = _from_url(scope)
        if session_hash is None and _is_json(scope):  # uploads (multipart) are never read here
            messages = await _read_body(receive)  # bounded by app/limits.py, outside this
            session_hash = _from_json(messages)
        user = _user(gradio, scope)
        if session_hash and user and not self.bindings.claim(session_hash, user):
            await _refuse(send)
            return
        await self.app(scope, replay_body(messages, receive), send)


def _from_url(scope: Scope) -> str | None:
    if found := IN_PATH.search(scope["path"]):
        return found.group(1)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("session_hash") or [None])[0]


def _is_json(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return scope["method"] == "POST" and b"json" in headers.get(b"content-type", b"")


async def _read_body(receive: Receive) -> list[Message]:
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            return messages


def _from_json(messages: list[Message]) -> str | None:
    try:
        body = json.loads(b"".join(m.get("body", b"") for m in messages) or b"null")
    except ValueError:
        return None
    found = body.get("session_hash") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None


def _user(gradio, scope: Scope) -> str | None:
    """The login of the request's cookie, as Gradio's own login check reads it."""
    cookies = Request(scope).cookies
    cookie_id = getattr(gradio, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return getattr(gradio, "tokens", {}).get(token) if token else None


async def _refuse(send: Send) -> None:
    body = b"this session belongs to another login; reload the page"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
