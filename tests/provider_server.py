"""A scripted hosted Llama 4 provider on loopback: OpenAI-compatible, speaking for one
preset of assets/models.toml and enforcing that preset's limits the way a real provider
does (400/413 with OpenAI-shaped error JSON), a bearer key (401), and rate limits
(429 with retry-after). It records every request, so a test can assert that input over
a limit never left the machine."""

from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What the scripted provider reports as usage: far from our estimate, so a test can
# tell whose figures were stored.
USAGE = {"prompt_tokens": 1234, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 1000}}
ANSWER = ("Hi ", "from ", "the provider")


@dataclass
class Limits:
    model: str
    n_ctx: int
    max_images: int
    max_image_bytes: int
    max_image_pixels: int


@dataclass
class Script:
    """How the next requests are answered: `rate_limits` 429s first (each with
    `retry_after`, or none when None), then answers."""

    key: str
    limits: Limits
    rate_limits: int = 0
    retry_after: str | None = None
    models_shape: str = "openai"  # "openai" ({"data": [...]}), "list" (Together's) or "none" (404)
    requests: list[dict] = field(default_factory=list)

    @property
    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]


def error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    @property
    def script(self) -> Script:
        return self.server.script

    def do_GET(self):
        self._record(None)
        if not self._authorised():
            return
        models = [{"id": self.script.limits.model, "object": "model"}]
        if self.script.models_shape == "none":
            self._send(404, error("Unknown request URL", "invalid_request_error", "unknown_url"))
        else:
            self._send(
                200, models if self.script.models_shape == "list" else {"object": "list", "data": models}
            )

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self._record(body)
        if not self._authorised():
            return
        if self.path != "/v1/chat/completions":
            self._send(404, error("Unknown request URL", "invalid_request_error", "unknown_url"))
            return
        if self.script.rate_limits > 0:
            self.script.rate_limits -= 1
            headers = {"retry-after": self.script.retry_after} if self.script.retry_after else {}
            message = "Rate limit reached for model on requests per minute (RPM): Limit 30, Used 30"
            self._send(429, error(message, "requests", "rate_limit_exceeded"), headers)
            return
        refusal = self._over_limit(body)
        if refusal is not None:
            self._send(*refusal)
            return
        self._stream(body)

    def _record(self, body: dict | None) -> None:
        auth = self.headers.get("Authorization")
        self.script.requests.append({"path": self.path, "auth": auth, "body": body})

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.script.key}":
            return True
        self._send(401, error("Invalid API Key", "invalid_request_error", "invalid_api_key"))
        return False

    def _over_limit(self, body: dict) -> tuple[int, dict] | None:
        from PIL import Image

        limits = self.script.limits
        urls = [
            part["image_url"]["url"]
            for message in body["messages"]
            if isinstance(message["content"], list)
            for part in message["content"]
            if part["type"] == "image_url"
        ]
        if len(urls) > limits.max_images:
            message = f"Too many images provided. This model supports up to {limits.max_images} images"
            return 400, error(message, "invalid_request_error")
        if sum(len(url) for url in urls) > limits.max_image_bytes:
            return 413, error("Request Entity Too Large", "invalid_request_error", "request_too_large")
        for url in urls:
            with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
                if image.width * image.height > limits.max_image_pixels:
                    return 400, error("Image exceeds the maximum resolution", "invalid_request_error")
        text = sum(len(_text_of(message["content"]).encode()) for message in body["messages"])
        if text // 4 + body.get("max_tokens", 0) > limits.n_ctx:
            message = "Please reduce the length of the messages or completion."
            return 400, error(message, "invalid_request_error", "context_length_exceeded")
        return None

    def _stream(self, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        chunks = [_chunk(body["model"], {"role": "assistant", "content": ""})]
        chunks += [_chunk(body["model"], {"content": text}) for text in ANSWER]
        chunks.append(_chunk(body["model"], {}, finish="stop"))
        chunks.append({**_chunk(body["model"], {}), "choices": [], "usage": USAGE})
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _text_of(content: str | list) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part["type"] == "text")


def _chunk(model: str, delta: dict, finish: str | None = None) -> dict:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [choice]}


class ProviderServer:
    def __init__(self, script: Script):
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), ProviderHandler)
        self.http.script = script
        self.script = script
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> ProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.shutdown()
        self.http.server_close()
