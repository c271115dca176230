"""OpenAI-compatible backend: a model served elsewhere (vLLM across GPUs or nodes,
llama-server on a GPU box, a hosted provider) through the official `openai` client.

Images travel as data URLs in the order they sit in the message. Limits the server
would reject (context, images per request, their encoded bytes, each one's pixels) are
checked here first, so the user gets one clear line instead of an HTTP error. A rate
limit (429) whose retry-after is short is waited out once; any other failure before
the first token raises EngineInputError (nothing to store); failures after it end the
stream with Final("error"). Stop closes the HTTP stream, which makes the server stop too.
While the server reads the prompt the stream reports the wait, and the server's own
figures where it streams them (llama-server's `prompt_progress`, asked for with
`return_progress`)."""

from __future__ import annotations

import contextlib
import email.utils
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from engine.base import BaseEngine
from engine.image_plan import BUDGETS, TileBudget, image_tokens, plan_messages
from engine.images import as_jpeg, data_url, data_url_length
from engine.protocol import ProgressFn, check_messages
from engine.spec import ModelSpec
from engine.timing import TokenCounter
from engine.types import (
    EngineInputError,
    EngineLoadError,
    FinishReason,
    ImagePart,
    Message,
    SamplingParams,
    StreamEvent,
    TextDelta,
    Usage,
)

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a long prompt on a busy server can take minutes to the first token
BYTES_PER_TOKEN = 4  # Llama 4's tokenizer averages ~4 bytes of English per token
FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "eos": "stop"}
# A 429 asking for a longer wait is reported, not waited: the user decides.
MAX_RETRY_WAIT_S = 10.0
WAIT_REPORT_S = 0.5  # how often the wait for the first token is reported


class EndpointError(EngineInputError):
    """The server could not take the request (down, key refused, busy, too long)."""


class OpenAIEngine(BaseEngine):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.context_limit = spec.n_ctx  # lowered at load when the server reports less
        # Llama 4: images go on the canvas our plan chose for the server's processor.
        self.tile_budget = BUDGETS[spec.tiles] if spec.is_llama and spec.vision else None
        self.last_request: dict | None = None  # what the last stream sent, for inspection
        self._client = None
        # Does the server have vLLM's /tokenize? Hosted providers do not: asking would
        # upload the whole prompt once more.
        self._can_tokenize: bool | None = False if spec.provider else None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def load(self, progress: ProgressFn | None = None) -> None:
        """Connect and check that the server serves this model; loads nothing locally."""
        if self.loaded:
            return
        report = progress or (lambda fraction, what: None)
        if self.spec.missing():
            raise EngineLoadError(f"{self.label} needs {self.spec.missing()[0]}")
        report(0.1, f"connecting to {self.spec.endpoint}")
        import openai

        client = openai.OpenAI(
            base_url=self.spec.endpoint,
            api_key=self._api_key(),
            max_retries=0,  # a retry after 429 or a dropped stream would hide what happened
            timeout=openai.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )
        try:
            served = _served_models(client.get("/models", cast_to=object))
        except openai.NotFoundError as exc:
            if not self.spec.provider:
                raise EngineLoadError(self._describe(exc)) from None
            served = []  # a provider without a model list: its first answer will tell
        except openai.APIError as exc:
            raise EngineLoadError(self._describe(exc)) from None
        self._check_served(served)
        self._client = client
        report(1.0, f"{self.label} ready at {self.spec.endpoint}")

    def _api_key(self) -> str:
        # The client insists on a key; local servers started without one ignore it.
        return os.environ.get(self.spec.api_key_env, "") if self.spec.api_key_env else "none"

    def _check_served(self, served: list[dict]) -> None:
        ids = [m["id"] for m in served]
        if ids and self.spec.remote_model not in ids:
            raise EngineLoadError(
                f"{self.spec.endpoint} does not serve {self.spec.remote_model!r}; it serves: {', '.join(ids)}"
            )
        for model in served:
            # vLLM reports its --max-model-len; a smaller one than ours is the real limit.
            server_ctx = model.get("max_model_len")
            if model["id"] == self.spec.remote_model and isinstance(server_ctx, int):
                self.context_limit = min(self.context_limit, server_ctx)

    def unload(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- prompts -----------------------------------------------------------------

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """The server's own count where it offers one (vLLM's /tokenize), else an
        estimate: text bytes / 4, plus each image's Llama 4 tile tokens."""
        self._require_loaded()
        self._check_input(messages)
        messages = self._fit_image_bytes(plan_messages(messages, self.tile_budget))
        self._check_sent_images(messages)
        exact = self._server_count(_wire_messages(messages), messages)
        return exact if exact is not None else estimate_tokens(messages, self.tile_budget)

    def _check_input(self, messages: Sequence[Message]) -> None:
        check_messages(self, messages)
        limit = self.spec.max_images
        count = sum(len(m.images) for m in messages)
        if limit is not None and count > limit:
            raise EngineInputError(
                f"{self.label} takes at most {limit} image{'s' if limit != 1 else ''} per request "
                f"and this conversation has {count}; start a new chat, or raise the server's "
                "--limit-mm-per-prompt (and --max-images here)"
            )

    def _fit_image_bytes(self, messages: list[Message]) -> list[Message]:
        """Canvases go as lossless PNG; where the server's cap on a request's image bytes
        would refuse that, as JPEG (quality 90): the same tiles, a tenth of the bytes."""
        limit = self.spec.max_image_bytes
        images = [image for message in messages for image in message.images]
        if limit is None or sum(data_url_length(image) for image in images) <= limit:
            return messages
        return [
            replace(m, parts=tuple(as_jpeg(p) if isinstance(p, ImagePart) else p for p in m.parts))
            if m.images
            else m
            for m in messages
        ]

    def _check_sent_images(self, messages: Sequence[Message]) -> None:
        """The images as they will be sent (on their planned canvases, base64-encoded)
        against the server's pixel and byte limits."""
        images = [image for message in messages for image in message.images]
        pixel_limit, byte_limit = self.spec.max_image_pixels, self.spec.max_image_bytes
        for number, image in enumerate(images, 1):
            if pixel_limit is not None and image.width * image.height > pixel_limit:
                raise EngineInputError(
                    f"image {number} ({image.name}) is {image.width}x{image.height} pixels as sent, over the "
                    f"{pixel_limit:,} pixels {self.label} takes per image; use a smaller image"
                )
        encoded = sum(data_url_length(image) for image in images)
        if byte_limit is not None and encoded > byte_limit:
            raise EngineInputError(
                f"the {len(images)} image{'s' if len(images) != 1 else ''} of this conversation come to "
                f"{encoded / 1e6:.1f} MB as base64, over the {byte_limit / 1e6:.1f} MB {self.label} takes "
                "per request; send fewer or smaller images, or start a new chat"
            )

    def _server_count(self, wire: list[dict], messages: Sequence[Message]) -> int | None:
        """vLLM's /tokenize count of the prompt as sent (`messages` as planned)."""
        if self._can_tokenize is False:
            return None
        import openai

        root = self._client.with_options(base_url=_server_root(self.spec.endpoint))
        body = {"model": self.spec.remote_model, "messages": wire, "add_generation_prompt": True}
        try:
            reply = root.post("/tokenize", body=body, cast_to=object)
            count = int(reply["count"])
        except (openai.APIError, KeyError, TypeError, ValueError):
            self._can_tokenize = False
            return None
        self._can_tokenize = True
        return count

    # -- generation --------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        session_key: str | None = None,  # the server keeps its own prefix cache
        cache_scope: str = "",  # ours holds nothing to reuse; the server's cache is its own
    ) -> Iterator[StreamEvent]:
        self._require_loaded()
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        self._check_input(messages)
        messages = self._fit_image_bytes(plan_messages(messages, self.tile_budget))
        self._check_sent_images(messages)
        wire = _wire_messages(messages)
        exact = self._server_count(wire, messages)
        n_prompt = exact if exact is not None else estimate_tokens(messages, self.tile_budget)
        if n_prompt >= self.context_limit:
            about = "" if exact is not None else "about "
            raise EngineInputError(
                f"the prompt is {about}{n_prompt:,} tokens but {self.label} takes "
                f"{self.context_limit:,}; shorten it or start a new chat"
            )
        room = self.context_limit - n_prompt
        request = self._request(
            wire, params, min(params.max_tokens, room, self.spec.max_output_tokens or room)
        )
        self.last_request = request
        counter = TokenCounter(started, n_prompt)
        response = self._open(request, cancel)  # raises EndpointError: nothing generated
        if response is None:  # Stop while waiting out a rate limit
            yield counter.final("cancelled")
            return
        stream = _Reader(response)
        first = stream.next(cancel, WAIT_REPORT_S)
        if first is _Broken and not cancel.is_set():
            # The connection broke before a single chunk (a kept-alive connection the
            # server dropped after an earlier failure): nothing was shown, so ask again.
            stream.close()
            response = self._open(request, cancel)
            if response is None:
                yield counter.final("cancelled")
                return
            stream = _Reader(response)
            first = stream.next(cancel, WAIT_REPORT_S)
        yield from self._relay(stream, first, cancel, counter, request["max_tokens"])

    def _request(self, wire: list[dict], params: SamplingParams, max_tokens: int) -> dict:
        extra = {"min_p": params.min_p}
        if params.top_k > 0:
            extra["top_k"] = params.top_k
        # Always sent, 1.0 included: llama_cpp.server penalises repeats by 1.1 unless told,
        # which turned even greedy answers into other ones (tests/engine/test_llama4_parity.py).
        extra["repetition_penalty"] = params.repeat_penalty  # vLLM's name
        extra["repeat_penalty"] = params.repeat_penalty  # llama.cpp's
        request = {
            "model": self.spec.remote_model,
            "messages": wire,
            "max_tokens": max(max_tokens, 1),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
            "extra_body": extra,
        }
        if not self.spec.provider:  # a server of one's own: llama-server streams its reading
            extra["return_progress"] = True
        if params.seed is not None:
            request["seed"] = params.seed
        return request

    def _open(self, request: dict, cancel: threading.Event):
        """The response stream, or None when Stop is pressed while waiting out a 429."""
        import openai

        reconnected = rate_limited = False
        while True:
            try:
                return self._client.chat.completions.create(**request)
            except openai.APITimeoutError as exc:
                raise EndpointError(self._describe(exc)) from None
            except openai.APIConnectionError as exc:
                # A kept-alive connection the server dropped (after a failed stream, say)
                # fails at once; one fresh try tells that from a server that is down.
                if reconnected:
                    raise EndpointError(self._describe(exc)) from None
                reconnected = True
            except openai.RateLimitError as exc:
                wait = retry_after_s(exc.response)
                if rate_limited or wait is None or wait > MAX_RETRY_WAIT_S:
                    raise EndpointError(self._describe(exc, retried=rate_limited)) from None
                rate_limited = True
                if cancel.wait(wait):
                    return None
            except openai.APIError as exc:
                raise EndpointError(self._describe(exc)) from None

    def _relay(self, stream, item, cancel, counter, max_tokens: int) -> Iterator[StreamEvent]:
        """Yield the stream's text until it ends, breaks, or Stop is pressed; the HTTP
        stream is closed in every case, which tells the server to stop generating."""
        reason: FinishReason | None = None
        usage = timings = None
        read: tuple[int, int] | None = None  # the server's (processed, cached), if it says
        try:
            while isinstance(item, _Chunk) or item is _Waiting:
                if item is _Waiting:  # still no token: the server is reading the prompt
                    yield counter.reading(*(read or (None, 0)))
                    item = stream.next(cancel, WAIT_REPORT_S)
                    continue
                chunk = item.chunk
                usage = chunk.usage or usage
                timings = getattr(chunk, "timings", None) or timings  # llama-server's own
                if counter.first_at is None and (server := _server_reading(chunk, counter)):
                    read = server
                    yield counter.reading(*read)
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    # About one token per chunk (the server's usage, when sent, replaces
                    # this count); the opening chunk only names the role.
                    if delta and delta.content is not None and not delta.role:
                        counter.tokens()
                        if delta.content:
                            yield TextDelta(delta.content)
                    if choice.finish_reason:
                        reason = FINISH_REASONS.get(choice.finish_reason, "stop")
                item = stream.next(cancel, WAIT_REPORT_S if counter.first_at is None else None)
        finally:
            stream.close(abort=cancel.is_set())
        counter.completion_tokens = min(counter.completion_tokens, max_tokens)
        if cancel.is_set():
            yield self._final(counter, usage, "cancelled", timings=timings)
        elif isinstance(item, BaseException) or item is _Broken:
            error = self._describe(stream.error or item, mid_stream=True)
            yield self._final(counter, usage, "error", error, timings)
        elif reason is None:
            error = f"{self.spec.endpoint} ended the stream before the answer finished (a server error?)"
            yield self._final(counter, usage, "error", error, timings)
        else:
            yield self._final(counter, usage, reason, timings=timings)

    @staticmethod
    def _final(counter: TokenCounter, usage, reason: FinishReason, error: str | None = None, timings=None):
        if usage is not None:  # the server's counts beat ours
            counter.prompt_tokens = usage.prompt_tokens or counter.prompt_tokens
            counter.completion_tokens = usage.completion_tokens or counter.completion_tokens
            details = getattr(usage, "prompt_tokens_details", None)
            counter.cached = getattr(details, "cached_tokens", None) or counter.cached
        final = counter.final(reason, error=error)
        return replace(final, usage=_server_rates(final.usage, timings)) if final.usage else final

    def _describe(self, exc: BaseException, mid_stream: bool = False, retried: bool = False) -> str:
        """One line a user can act on, for any failure talking to the server."""
        import openai

        where = self.spec.endpoint
        if isinstance(exc, openai.APIConnectionError):
            verb = "lost the connection to" if mid_stream else "cannot reach"
            return f"{verb} {where}: is the server running? ({_root_cause(exc)})"
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            source = f"${self.spec.api_key_env}" if self.spec.api_key_env else "no key (--api-key-env VAR)"
            return f"{where} refused the API key ({exc.status_code}); check {source}"
        if isinstance(exc, openai.RateLimitError):
            wait = retry_after_s(exc.response)
            if retried:
                advice = "still after one retry; wait a moment and try again"
            elif wait is not None and wait > MAX_RETRY_WAIT_S:
                advice = f"it asks to wait {math.ceil(wait)} s; try again then"
            else:
                advice = "wait a moment and try again"
            detail = _server_message(exc)[:200]
            return f"{where} is rate limiting requests (429: {detail}); {advice}"
        if isinstance(exc, openai.NotFoundError):
            return f"{where} has no model {self.spec.remote_model!r} (404)"
        if isinstance(exc, openai.APIStatusError):
            detail = _server_message(exc)
            if "context" in detail.lower() or "too long" in detail.lower():
                return f"the prompt is longer than {self.label} takes: {detail}"
            return f"{where} answered {exc.status_code}: {detail}"
        if mid_stream:
            return f"{where} sent a malformed stream: {_root_cause(exc)}"
        return f"{where}: {_root_cause(exc)}"


def estimate_tokens(messages: Sequence[Message], budget: TileBudget | None) -> int:
    """Prompt tokens without the server's tokenizer: text bytes / 4 plus, for Llama 4,
    each image's exact tile cost; a few tokens per turn for the chat headers."""
    total = 0
    for message in messages:
        total += 5 + math.ceil(len(message.plain_text.encode("utf-8")) / BYTES_PER_TOKEN)
        if budget is not None:
            total += sum(
                image_tokens(i.width or budget.tile, i.height or budget.tile, budget) for i in message.images
            )
    return total


def _wire_messages(messages: Sequence[Message]) -> list[dict]:
    """Chat messages in the OpenAI format; images as data URLs, in their place."""
    wire = []
    for message in messages:
        if not message.images:
            wire.append({"role": message.role, "content": message.plain_text})
            continue
        content = [
            {"type": "image_url", "image_url": {"url": data_url(part)}}
            if isinstance(part, ImagePart)
            else {"type": "text", "text": part.text}
            for part in message.parts
        ]
        wire.append({"role": message.role, "content": content})
    return wire


def _server_rates(usage: Usage, timings) -> Usage:
    """The prompt and decode rates llama-server measured itself (`timings` on its last
    chunk), where it sent them: ours are timed on chunk arrival, which a busy
    connection bunches up (one answer measured at 19,702 tokens/s), and a prompt read
    from the cache has a rate of its few new tokens over the whole wait."""
    if not isinstance(timings, dict):
        return usage
    rates = {}
    for ours, theirs in (("prompt_tps", "prompt_per_second"), ("decode_tps", "predicted_per_second")):
        value = timings.get(theirs)
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            rates[ours] = float(value)
    return replace(usage, **rates)


def _server_reading(chunk, counter: TokenCounter) -> tuple[int, int] | None:
    """(tokens processed, of them from the server's cache) from llama-server's
    `prompt_progress` on a chunk; the server's total replaces our estimate."""
    progress = getattr(chunk, "prompt_progress", None)
    if not isinstance(progress, dict):
        return None
    try:
        total, processed = int(progress["total"]), int(progress["processed"])
        cached = int(progress.get("cache", 0))
    except (KeyError, TypeError, ValueError):
        return None
    if total <= 0:
        return None
    counter.prompt_tokens = total
    return min(max(processed, 0), total), min(max(cached, 0), total)


class _Chunk:
    def __init__(self, chunk):
        self.chunk = chunk


class _End:
    """The stream ended."""


class _Broken:
    """The connection broke (the error is in _Reader.error)."""


class _Waiting:
    """Nothing came from the server for a while."""


class _Reader:
    """Reads the stream on a thread, so Stop never waits for the server: a long prompt
    can take minutes to its first token, and a blocked read cannot be interrupted."""

    POLL_S = 0.05

    def __init__(self, response):
        self.response = response
        self.error: BaseException | None = None
        self._read_all = False  # the response was read to its end (its connection pooled again)
        self._items: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        import openai

        try:
            for chunk in self.response:
                self._items.put(_Chunk(chunk))
            self._items.put(_End)
        except openai.APIConnectionError as exc:  # the client wraps transport errors in this
            self.error = exc
            self._items.put(_Broken)
        except Exception as exc:  # garbage in the stream
            self._items.put(exc)
        finally:
            self._read_all = True

    def next(self, cancel: threading.Event, patience: float | None = None):
        """The next _Chunk, or _End, _Broken, an exception; _End once Stop is pressed;
        _Waiting when nothing came within `patience` seconds."""
        waited = 0.0
        while True:
            if cancel.is_set():  # before what is queued: a fast server keeps the queue full
                return _End
            try:
                return self._items.get(timeout=self.POLL_S)
            except queue.Empty:
                waited += self.POLL_S
                if patience is not None and waited >= patience:
                    return _Waiting

    def close(self, abort: bool = False) -> None:
        """Closes the response off this thread (closing waits on a blocked read).

        `abort` (Stop) tells the server at once: the connection is shut down here, which
        also ends the blocked read. Closing the response alone waits for that read, i.e.
        for the server's next chunk (a whole prompt batch away while it reads: a measured
        Stop took 20 s under load, llama-server reading on for everyone's time). Never a
        response read to its end: its connection is back in the pool, another request's."""
        if abort and not self._read_all:
            response = getattr(self.response, "response", None)
            network = getattr(response, "extensions", {}).get("network_stream")
            sock = network.get_extra_info("socket") if network is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        threading.Thread(target=self.response.close, daemon=True).start()


def _served_models(listing) -> list[dict]:
    """GET /models as OpenAI, vLLM and llama-server answer it ({"data": [...]}) or as a
    bare list (Together's); anything else lists nothing."""
    rows = listing.get("data") if isinstance(listing, dict) else listing
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, dict) and isinstance(row.get("id"), str)]


def retry_after_s(response) -> float | None:
    """How long a 429 asks us to wait: retry-after-ms, or retry-after in seconds or as
    an HTTP date; None when it does not say."""
    headers = getattr(response, "headers", None) or {}
    if (milliseconds := _number(headers.get("retry-after-ms"))) is not None:
        return max(milliseconds / 1000, 0.0)
    value = headers.get("retry-after")
    if value is None or (seconds := _number(value)) is not None:
        return None if value is None else max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _server_root(endpoint: str) -> str:
    return endpoint.removesuffix("/v1") if endpoint.endswith("/v1") else endpoint


def _server_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") or error.get("detail") if isinstance(error, dict) else error
        if message:
            return " ".join(str(message).split())
    return " ".join(str(getattr(exc, "message", exc)).split())


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
