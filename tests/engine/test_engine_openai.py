"""The OpenAI-compatible backend against a real server: `python -m llama_cpp.server`
serving the tiny Llama 4 GGUF with its mmproj (mtmd) on 127.0.0.1, started here.
Failures a real server cannot be made to produce on demand (429, garbage in the
stream, a connection dropped mid-answer) come from a small local HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine import EngineLoadError, Final, PromptProgress, SamplingParams, TextDelta
from engine.openai_compat import EndpointError
from errors import UserError
from models.catalogue import endpoint_model
from models.engines import engine_for
from tests.conftest import REPO, free_port
from tests.engine.test_engine_vision import image, user
from tests.fixtures.tiny_llama4 import V_IMAGE_SIZE

KEY_ENV = "L4P_TEST_ENDPOINT_KEY"
KEY = "test-key-123"
MODEL = "tiny-llama4"
GREEDY = SamplingParams(temperature=0, max_tokens=8)


class LlamaServer:
    def __init__(self, proc: subprocess.Popen, url: str, log):
        self.proc, self.url, self.log = proc, url, log

    def log_since(self, offset: int) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            return f.read()

    def log_size(self) -> int:
        return os.path.getsize(self.log.name)


@pytest.fixture(scope="module")
def llama_server(tiny_llama4, tmp_path_factory):
    model, mmproj = tiny_llama4
    port = free_port()
    log = open(tmp_path_factory.mktemp("llama-server") / "server.log", "w+")  # noqa: SIM115
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--clip_model_path", str(mmproj), "--chat_format", "mtmd", "--model_alias", MODEL]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--api_key", KEY]
    command += ["--verbose", "True"]  # the log shows each image slice the server encodes
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    _wait_for(url, proc)
    os.environ[KEY_ENV] = KEY
    yield LlamaServer(proc, url, log)
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("llama_cpp.server exited early")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"llama_cpp.server did not answer on {url}")


@pytest.fixture
def endpoint(llama_server, settings):
    spec = endpoint_model(llama_server.url, MODEL, {}, KEY_ENV, max_images=3, tiles="llama.cpp")
    engine = engine_for(spec, settings)
    # Images go on canvases planned for the server's tiles: the tiny mmproj's are 56 px.
    engine.tile_budget = replace(engine.tile_budget, tile=V_IMAGE_SIZE)
    engine.load()
    yield engine
    engine.unload()


def test_multi_image_turn_streams_from_llama_cpp_server(endpoint, llama_server):
    offset = llama_server.log_size()
    small, large = image(56, 56, "red"), image(200, 200, "blue")  # 1 tile; 3x3 tiles + overview
    events = list(endpoint.stream([user(small, "and", large, "compare them")], GREEDY))
    final = events[-1]
    assert isinstance(final, Final) and final.error is None, final
    assert all(isinstance(e, PromptProgress | TextDelta) for e in events[:-1])
    assert final.finish_reason in ("stop", "length") and 0 < final.usage.completion_tokens <= 8
    assert final.usage.ttft_s > 0
    # Both images, in their places, as data URLs...
    content = endpoint.last_request["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "text", "image_url", "text"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    # ...reached the server's vision encoder: 1 + 10 tiles of the tiny mmproj's 56 px.
    assert llama_server.log_since(offset).count("encoding image slice") == 11


def test_cancelled_stream_closes_and_the_next_request_works(endpoint):
    cancel = threading.Event()
    params = SamplingParams(temperature=0, max_tokens=200)
    events = []
    for event in endpoint.stream([user("tell a long story")], params, cancel):
        events.append(event)
        if isinstance(event, TextDelta):
            cancel.set()
    assert events[-1].finish_reason == "cancelled"
    assert events[-1].usage.completion_tokens < params.max_tokens
    *_, final = endpoint.stream([user("again")], GREEDY)
    assert final.error is None and final.usage.completion_tokens > 0


def test_too_many_images_are_refused_before_sending(endpoint):
    with pytest.raises(UserError, match="at most 3 images per request"):
        next(endpoint.stream([user(*(image() for _ in range(4)), "four")], GREEDY))


def test_prompt_over_the_endpoint_context_is_refused_before_sending(llama_server, settings):
    engine = engine_for(replace(endpoint_model(llama_server.url, MODEL, {}, KEY_ENV), n_ctx=64), settings)
    with pytest.raises(UserError, match="takes 64; shorten it"):
        next(engine.stream([user("word " * 400)], GREEDY))


def test_server_rejecting_the_prompt_mid_stream_is_an_error_final(llama_server, settings):
    # Our limit is larger than the server's 1024: the server fails after answering 200.
    engine = engine_for(endpoint_model(llama_server.url, MODEL, {}, KEY_ENV), settings)
    *_, final = engine.stream([user("word " * 1500)], GREEDY)
    assert final.finish_reason == "error" and "ended the stream" in final.error
    *_, after = engine.stream([user("short")], GREEDY)
    assert after.error is None


def test_wrong_api_key_is_one_clear_line(llama_server, settings, monkeypatch):
    monkeypatch.setenv("L4P_TEST_WRONG_KEY", "not-the-key")
    engine = engine_for(endpoint_model(llama_server.url, MODEL, {}, "L4P_TEST_WRONG_KEY"), settings)
    with pytest.raises(EngineLoadError, match=r"refused the API key \(401\); check \$L4P_TEST_WRONG_KEY"):
        engine.load()


def test_missing_api_key_says_which_variable(llama_server, settings, monkeypatch):
    monkeypatch.delenv("L4P_TEST_UNSET_KEY", raising=False)
    spec = endpoint_model(llama_server.url, MODEL, {}, "L4P_TEST_UNSET_KEY")
    assert not spec.available and spec.missing() == ["an API key in $L4P_TEST_UNSET_KEY"]
    with pytest.raises(EngineLoadError, match=r"\$L4P_TEST_UNSET_KEY"):
        engine_for(spec, settings).load()


def test_unknown_model_names_what_the_server_serves(llama_server, settings):
    engine = engine_for(endpoint_model(llama_server.url, "gpt-17", {}, KEY_ENV), settings)
    with pytest.raises(EngineLoadError, match="it serves: tiny-llama4"):
        engine.load()


def test_server_down_is_one_clear_line(settings):
    engine = engine_for(endpoint_model(f"http://127.0.0.1:{free_port()}/v1", MODEL, {}), settings)
    with pytest.raises(EngineLoadError, match=r"cannot reach .* is the server running"):
        engine.load()


# -- failures from a scripted server ---------------------------------------------


def _chunk(content: str | None = None, finish: str | None = None, **extra) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n".encode()


# llama-server's reading reports (with return_progress): 40 of 100 tokens were cached.
SERVER_READING = [{"total": 100, "cache": 40, "processed": n, "time_ms": n} for n in (40, 70, 100)]


class Scripted(BaseHTTPRequestHandler):
    """/v1/models lists one model; /v1/chat/completions behaves as the model's name says."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if self.path != "/v1/chat/completions":  # no /tokenize: the engine estimates
            self._send(404, {"detail": "Not Found"})
            return
        mode = self.server.mode
        if mode == "rate-limited":
            self._send(429, {"error": {"message": "Too many requests", "type": "rate_limit"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if mode == "slow":
            self.wfile.flush()
            time.sleep(30)  # a long prompt being read; the client hangs up before this ends
            return
        if mode == "garbage":
            self.wfile.write(b"data: {this is not json\n\n")
        elif mode == "reading":
            for progress in SERVER_READING:
                self.wfile.write(_chunk(prompt_progress=progress))
            self.wfile.write(_chunk("Hi") + _chunk(None, "stop") + b"data: [DONE]\n\n")
        elif mode == "drop":
            self.wfile.write(_chunk("Hello") + _chunk(" wor"))
            self.wfile.flush()
            self.connection.shutdown(2)  # the endpoint dies mid-answer
            return
        else:
            self.wfile.write(_chunk("Hi ") + _chunk(body["model"]) + _chunk(None, "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.mode, server.bodies = "ok", []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def scripted_engine(server, settings):
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    engine = engine_for(endpoint_model(url, "scripted", {}), settings)
    engine.load()
    return engine


def test_malformed_stream_ends_with_an_error(scripted, settings):
    engine = scripted_engine(scripted, settings)
    scripted.mode = "garbage"
    *_, final = engine.stream([user("hi")], GREEDY)
    assert final.finish_reason == "error" and "malformed stream" in final.error
    scripted.mode = "ok"
    *deltas, final = engine.stream([user("hi")], GREEDY)  # the next request works
    assert final.finish_reason == "stop" and "".join(d.text for d in deltas) == "Hi scripted"


def test_rate_limit_is_one_clear_line(scripted, settings):
    engine = scripted_engine(scripted, settings)
    scripted.mode = "rate-limited"
    with pytest.raises(
        EndpointError, match=r"rate limiting requests \(429: Too many requests\); wait a moment"
    ):
        next(engine.stream([user("hi")], GREEDY))


def test_endpoint_dying_mid_answer_is_stored_as_error_and_the_next_ask_works(scripted, tmp_path):
    from sessions import Store

    url = f"http://127.0.0.1:{scripted.server_address[1]}/v1"
    env = {**os.environ, "L4P_DATA_DIR": str(tmp_path)}

    def ask(*args):
        command = [sys.executable, "launch.py", "ask", "--endpoint", url, "--model", "scripted", *args]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)

    scripted.mode = "drop"
    broken = ask("--json", "hello")
    assert broken.returncode == 1
    assert broken.stderr.count("error:") == 1 and "Traceback" not in broken.stderr
    summary = json.loads(broken.stdout.strip().splitlines()[-1])
    assert summary["finish_reason"] == "error" and summary["text"] == "Hello wor"
    with Store(tmp_path) as store:
        answer = store.branch(summary["session_id"])[-1]
        assert answer.role == "assistant" and answer.status == "error" and answer.text == "Hello wor"
    scripted.mode = "ok"
    again = ask("--json", "--session", summary["session_id"], "hello again")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["text"] == "Hi scripted"


def test_cli_ask_endpoint_with_two_images(llama_server, write_png):
    first, second = write_png("a.png"), write_png("b.png", color="blue")
    command = [sys.executable, "launch.py", "ask", "--endpoint", llama_server.url, "--model", MODEL]
    command += ["--api-key-env", KEY_ENV, "--max-images", "4", "--max-tokens", "6", "--json", "--no-save"]
    command += ["--image", str(first), "--image", str(second), "compare"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model"] == MODEL and summary["finish_reason"] in ("stop", "length")
    assert summary["completion_tokens"] > 0


def test_cli_server_down_exits_2_with_one_line():
    url = f"http://127.0.0.1:{free_port()}/v1"
    command = [sys.executable, "launch.py", "ask", "--endpoint", url, "--model", "m", "hi"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot reach") and result.stderr.count("\n") == 1


def test_the_ui_serves_an_endpoint_model_with_two_images(llama_server, write_png):
    from gradio_client import Client, handle_file

    from tests.conftest import start_app, stop_app

    proc, url = start_app("--endpoint", llama_server.url, "--model", MODEL, "--api-key-env", KEY_ENV)
    try:
        client = Client(url, verbose=False)
        files = [handle_file(write_png("a.png")), handle_file(write_png("b.png", color="blue"))]
        _, _, notice = client.predict({"text": "compare", "files": files}, api_name="/send")
        assert notice == ""
        chat, notice = list(client.submit(api_name="/respond"))[-1]
        assert notice == "" and chat[-1]["role"] == "assistant"
        assert "tokens" in str(chat[-1]["content"])  # the metrics line under the answer
    finally:
        stop_app(proc)


def test_stop_while_waiting_for_the_first_token_closes_the_stream(scripted, settings):
    engine = scripted_engine(scripted, settings)
    scripted.mode = "slow"  # headers at once, the first token only after 30 s
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    *_, final = engine.stream([user("hi")], GREEDY, cancel)
    assert final.finish_reason == "cancelled" and time.monotonic() - started < 10


def test_the_servers_reading_figures_come_through(scripted, settings):
    engine = scripted_engine(scripted, settings)
    scripted.mode = "reading"
    events = list(engine.stream([user("hi")], GREEDY))
    assert scripted.bodies[-1]["return_progress"] is True  # asked llama-server for them
    reading = [(e.done, e.total, e.reused) for e in events if isinstance(e, PromptProgress)]
    assert reading == [(40, 100, 40), (70, 100, 40), (100, 100, 40)]
    assert [type(e) for e in events[3:]] == [TextDelta, Final] and events[-1].finish_reason == "stop"


def test_the_wait_for_the_first_token_is_reported_and_stop_ends_it(scripted, settings):
    engine = scripted_engine(scripted, settings)
    scripted.mode = "slow"  # headers at once, the first token only after 30 s
    cancel = threading.Event()
    events = []
    for event in engine.stream([user("hi")], GREEDY, cancel):
        events.append(event)
        if sum(isinstance(e, PromptProgress) for e in events) == 2:
            cancel.set()  # Stop, after the page said twice how long it has waited
    waits = events[:-1]
    assert all(isinstance(e, PromptProgress) and e.done is None and e.total > 0 for e in waits)
    assert len(waits) == 2 and waits[1].elapsed_s > waits[0].elapsed_s > 0
    assert events[-1].finish_reason == "cancelled"


def test_llama_servers_own_rates_replace_ours_timed_on_chunk_arrival():
    from engine.openai_compat import _server_rates
    from engine.types import Usage

    ours = Usage(prompt_tokens=28, completion_tokens=60, ttft_s=0.18, prompt_tps=5.5, decode_tps=19702.5)
    timings = {"prompt_n": 1, "prompt_per_second": 151.2, "predicted_n": 60, "predicted_per_second": 31.6}
    served = _server_rates(ours, timings)
    assert (served.prompt_tps, served.decode_tps) == (151.2, 31.6)
    assert (served.prompt_tokens, served.completion_tokens, served.ttft_s) == (28, 60, 0.18)
    assert _server_rates(ours, None) == ours  # other servers send no timings
    nonsense = {"prompt_per_second": float("nan"), "predicted_per_second": -1}
    assert _server_rates(ours, nonsense) == ours
