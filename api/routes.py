"""`GET /v1/models` and `POST /v1/chat/completions`, streaming (SSE) or not.

A completion is a chat turn like the page's, run by the chat service: it waits in the
model's lane, and once the model accepts it the conversation is saved as a new chat of
the key's user, the answer saved as it streams. The turn runs in a worker thread; a
client that goes away sets the run's cancel token and the model stops within a token."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from chat.conversation import TurnRequest
from chat.service import Answered
from engine.types import Final, TextDelta
from errors import Fault, UserError

from .budget import check_budget
from .keys import ApiAccess
from .login_throttle import too_many
from .requests import ApiError, ChatRequest, check_sizes, decode_json, parse_request, to_messages

OWNED_BY = "llama4-playground"


def api_routes(runtime, access: ApiAccess) -> list:
    """The API's routes, for the app that also serves the page."""
    router = APIRouter(prefix="/v1")

    @router.get("/models")
    async def list_models(request: Request):
        try:
            _authorize(request, access)
        except ApiError as exc:
            return _error(exc)
        return {"object": "list", "data": [_model_json(spec) for spec in runtime.registry.specs.values()]}

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        try:
            owner = _authorize(request, access)
            body = await _read_json(request, runtime.settings.max_request_mb)
            # Decoding images and saving the question: off the event loop.
            completion = await asyncio.to_thread(Completion, runtime, parse_request(body), owner)
            return await completion.respond(request)
        except ApiError as exc:
            return _error(exc)

    return router.routes


def _model_json(spec) -> dict[str, Any]:
    return {
        "id": spec.name,
        "object": "model",
        "created": 0,
        "owned_by": OWNED_BY,
        "label": spec.label,
        "context_length": spec.n_ctx,
        "vision": spec.vision,
        "available": spec.available,
    }


def _authorize(request: Request, access: ApiAccess) -> str:
    """The user the request acts for; ApiError 401 for a missing or wrong key."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    address = request.client.host if request.client else "?"
    throttle = None if access.open else access.throttle  # guessing keys: see api/login_throttle.py
    if throttle and (wait := throttle.wait_s(None, address)):
        headers = {"Retry-After": str(wait)}
        raise ApiError(
            429, too_many(wait), kind="rate_limit_error", code="rate_limit_exceeded", headers=headers
        )
    owner = access.owner(key.strip() if scheme.lower() == "bearer" else None)
    if owner is None:
        if throttle and key.strip():
            throttle.failed(None, address, "API key")
        what = "Incorrect API key provided" if key else "Missing API key (Authorization: Bearer KEY)"
        raise ApiError(401, what, code="invalid_api_key")
    return owner


async def _read_json(request: Request, limit_mb: int) -> Any:
    """The body, never more than `limit_mb` of it held in memory: a declared length
    past it is refused unread, a chunked body as soon as it passes it."""
    limit = limit_mb * 2**20
    line = f"the request body is over the {limit_mb} MB limit (L4P_MAX_REQUEST_MB)"
    too_large = ApiError(413, line, code="request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return decode_json(b"".join(chunks))


def _error(exc: ApiError) -> JSONResponse:
    # A body refused half-read: close rather than read and drop the rest of it.
    headers = {"connection": "close"} if exc.status == 413 else {}
    return JSONResponse(exc.body(), status_code=exc.status, headers={**headers, **exc.headers})


class Completion:
    """One request: checked on creation, answered (and saved once the model takes
    it) by `respond`."""

    def __init__(self, runtime, request: ChatRequest, owner: str):
        self.runtime, self.request = runtime, request
        settings = runtime.settings
        check_sizes(request, settings.max_field_chars, settings.max_messages)
        try:
            self.spec = runtime.spec(request.model or runtime.default_model)
        except UserError as exc:
            raise ApiError(404, str(exc), param="model", code="model_not_found") from None
        check_budget(request, settings, self.spec)  # before any decode
        try:
            messages = to_messages(request, settings.max_image_pixels, settings.max_text_chars, owner)
        except UserError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        if not self.spec.vision and any(m.images for m in messages):
            raise ApiError(400, f"{self.spec.label} cannot see images", param="messages")
        self.params = self.spec.sampling_params(
            max_tokens=request.max_completion_tokens or request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
        )
        if self.params.max_tokens >= self.spec.n_ctx:
            raise ApiError(
                400, f"max_tokens must be under the {self.spec.n_ctx:,}-token context", param="max_tokens"
            )
        self.turn = TurnRequest(
            model=self.spec.name,
            question=messages[-1],
            history=messages[:-1],
            params=self.params,
            owner=owner,
            stop=request.stops,
            save_kv=False,
            settings={
                "api": True,
                **{k: getattr(self.params, k) for k in ("temperature", "top_p", "max_tokens")},
            },
        )
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.cancel = threading.Event()

    async def respond(self, request: Request):
        events = _Events(asyncio.get_running_loop())
        events.watch(request, self.cancel)
        threading.Thread(target=self._work, args=(events,), daemon=True, name=self.id).start()
        try:
            first = await events.next_output()  # errors come before any output
        except BaseException:
            self.cancel.set()
            events.close()
            raise
        if self.request.stream:
            return StreamingResponse(self._sse(first, events), media_type="text/event-stream")
        try:
            return await self._whole(first, events)
        finally:
            events.close()

    def _work(self, events: _Events) -> None:
        try:
            for event in self.runtime.service.respond(self.turn, self.cancel):
                events.put(event)
        except BaseException as exc:
            events.put(exc)
        finally:
            events.put(None)

    async def _whole(self, first, events: _Events) -> JSONResponse:
        text, event = [], first
        while not isinstance(event, Answered):
            text.append(event.text)
            event = await events.next_output()
        final = event.final
        if final.finish_reason == "error":
            raise ApiError(500, final.error or "the model failed", kind="server_error")
        message = {"role": "assistant", "content": "".join(text)}
        choice = {"index": 0, "message": message, "finish_reason": _finish(final)}
        return JSONResponse(
            {
                **self._head("chat.completion"),
                "choices": [choice],
                "usage": _usage(final),
                "system_fingerprint": None,
            }
        )

    async def _sse(self, first, events: _Events) -> AsyncIterator[str]:
        try:
            yield _data(self._chunk({"role": "assistant", "content": ""}))
            event = first
            while not isinstance(event, Answered):
                yield _data(self._chunk({"content": event.text}))
                event = await events.next_output()
            final = event.final
            if final.finish_reason == "error":
                yield _data(ApiError(500, final.error or "the model failed", kind="server_error").body())
            else:
                yield _data(self._chunk({}, _finish(final)))
                if self.request.include_usage:
                    yield _data(
                        {**self._head("chat.completion.chunk"), "choices": [], "usage": _usage(final)}
                    )
            yield "data: [DONE]\n\n"
        except ApiError as exc:
            yield _data(exc.body())
        finally:
            self.cancel.set()  # the client went away (or the answer is done): stop the model
            events.close()

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.spec.name}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}


_GONE = object()  # the client closed the connection


class _Events:
    """Events from the worker thread to the request's event loop, and the client's
    disconnect: ASGI tells us (an `http.disconnect` message), so nothing polls."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self._watcher: asyncio.Task | None = None

    def put(self, item) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def watch(self, request: Request, cancel: threading.Event) -> None:
        """Cancels the run as soon as the client goes away."""

        async def wait_for_disconnect() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            cancel.set()
            self.queue.put_nowait(_GONE)

        self._watcher = asyncio.ensure_future(wait_for_disconnect())

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def next_output(self):
        """The next TextDelta or Answered; raises ApiError for what went wrong."""
        while True:
            item = await self.queue.get()
            if isinstance(item, TextDelta | Answered):
                return item
            if item is _GONE:
                raise ApiError(499, "the client closed the request")
            if item is None:
                raise ApiError(499, "the request was cancelled")
            if isinstance(item, BaseException):
                raise _api_error(item)


def _api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Fault):
        return ApiError(503, str(exc), kind="server_error", code="model_not_available")
    if isinstance(exc, UserError):
        return ApiError(400, str(exc), param="messages")
    return ApiError(500, f"{type(exc).__name__}: {exc}", kind="server_error")


def _finish(final: Final) -> str:
    return "length" if final.finish_reason == "length" else "stop"


def _usage(final: Final) -> dict[str, Any]:
    usage = final.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
