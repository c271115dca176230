"""Time to the first answer token: through the page's API (gradio_client `/send` then
`/respond`) and through the playground's own `/v1` (the openai client), against the
same backend called directly. The backend is a scripted streaming OpenAI-compatible
server on loopback (its first token after --first-ms), so what is left is our own
overhead: saving the question, counting and fitting the prompt, the queue, streaming
to the client. Rounds are interleaved, the order rotating. Target: <= 50 ms of our own.

    python bench/first_token.py [--rounds 15] [--first-ms 100]

Last line: {"direct_ms": ..., "page_ms": ..., "api_ms": ..., "page_overhead_ms": ...,
"api_overhead_ms": ...}"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = "scripted"
KEY = "sk-bench-0123456789"
PROMPT = "Say hello."


def scripted_server(first_s: float) -> ThreadingHTTPServer:
    """/v1/models and a streaming /v1/chat/completions: a role chunk at once, the first
    word after `first_s`, five more 5 ms apart, then usage and [DONE]."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            else:
                self._json({"error": {"message": "not found"}}, 404)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if not self.path.endswith("/chat/completions"):
                self._json({"error": {"message": "not found"}}, 404)
                return
            stream = json.loads(body or b"{}").get("stream", False)
            words = ["Hello", " there", ",", " friend", ".", ""]
            if not stream:
                time.sleep(first_s)
                message = {"role": "assistant", "content": "".join(words)}
                usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                self._json(
                    {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._event({"role": "assistant", "content": ""})
            time.sleep(first_s)
            for word in words[:-1]:
                self._event({"content": word})
                time.sleep(0.005)
            self._event({}, "stop", {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _event(self, delta, finish=None, usage=None):
            payload = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
            payload["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            if usage:
                payload["usage"] = usage
            self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

        def _chunk(self, data: bytes):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, payload, status=200):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = _QuietServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that stops reading after its first token is the point here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_playground(backend: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "launch.py", "--port", str(port), "--endpoint", backend, "--model", MODEL]
    command += ["--api-key", KEY, "--data-dir", data_dir]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the playground did not start")


def openai_first_token(client, model: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, max_tokens=16
    )
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return time.perf_counter() - started
    finally:
        stream.close()
    raise SystemExit("no token came")


def page_first_token(page) -> float:
    """From sending the question (in a new chat) until the first answer text reaches
    the client."""
    page.predict(api_name="/new_chat")
    started = time.perf_counter()
    page.predict({"text": PROMPT, "files": []}, api_name="/send")
    job = page.submit(api_name="/respond")
    for chat, _notice in job:
        last = chat[-1] if chat else {}
        if last.get("role") == "assistant" and _text(last).strip() not in ("", "…"):
            elapsed = time.perf_counter() - started
            job.cancel()
            _drain(job)
            return elapsed
    raise SystemExit("no token came on the page")


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if part.get("type") == "text")


def _drain(job) -> None:
    deadline = time.monotonic() + 10
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--first-ms", type=float, default=100)
    args = parser.parse_args()

    import openai
    from gradio_client import Client

    backend = scripted_server(args.first_ms / 1000)
    backend_url = f"http://127.0.0.1:{backend.server_port}/v1"
    with tempfile.TemporaryDirectory() as data_dir:
        proc, url = start_playground(backend_url, data_dir)
        try:
            direct = openai.OpenAI(base_url=backend_url, api_key="none", max_retries=0)
            ours = openai.OpenAI(base_url=url + "v1", api_key=KEY, max_retries=0)
            page = Client(url, verbose=False)
            runs = {
                "direct": lambda: openai_first_token(direct, MODEL),
                "page": lambda: page_first_token(page),
                "api": lambda: openai_first_token(ours, MODEL),
            }
            for run in runs.values():  # warm up: model connection, first queue join
                run()
            times: dict[str, list[float]] = {name: [] for name in runs}
            names = list(runs)
            for round_ in range(args.rounds):
                for name in names[round_ % 3 :] + names[: round_ % 3]:
                    times[name].append(runs[name]())
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            backend.shutdown()
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, values in times.items():
        shown = ", ".join(f"{v * 1000:.0f}" for v in values)
        print(f"{name:>6}: median {medians[name]:.1f} ms  ({shown})", file=sys.stderr)
    result = {
        "direct_ms": round(medians["direct"], 1),
        "page_ms": round(medians["page"], 1),
        "api_ms": round(medians["api"], 1),
        "page_overhead_ms": round(medians["page"] - medians["direct"], 1),
        "api_overhead_ms": round(medians["api"] - medians["direct"], 1),
        "rounds": args.rounds,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
