"""Endpoint discovery: `--endpoint URL` without `--model` reads the server's
/v1/models. Against a real `python -m llama_cpp.server` serving the embedded model
(which names it by its file's full path), and, for vLLM's `max_model_len` (which
llama_cpp.server does not report), a small local /v1/models."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config import Settings
from models.catalogue import load_registry
from tests.conftest import REPO, free_port
from tests.engine.test_engine_openai import _wait_for

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def smollm2_server(settings, tmp_path_factory):
    """llama_cpp.server with no alias: its model id is the GGUF's full path."""
    model = load_registry(settings).get("smollm2-135m").model_path
    port = free_port()
    log = open(tmp_path_factory.mktemp("llama-server") / "server.log", "w+")  # noqa: SIM115
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx", "2048"]
    proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v1"
    _wait_for(url, proc)
    yield url, model
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def ask(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "launch.py", "ask", "--no-save", "--max-tokens", "16", "--temperature", "0"]
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ask_endpoint_without_model_answers_from_what_the_server_serves(smollm2_server):
    url, model = smollm2_server
    result = ask("--endpoint", url, "--json", QUESTION)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    # No system prompt reaches a served model, so the 135M model's greedy words vary
    # with the server's defaults: what matters is that the one model served answered.
    assert answer["text"].strip() and answer["completion_tokens"] > 0 and answer["model"] == model.name


@pytest.mark.parametrize("how", ["file name", "stem", "full path"])
def test_model_is_the_served_id_or_its_file_name(smollm2_server, how):
    url, model = smollm2_server
    name = {"file name": model.name, "stem": model.stem, "full path": str(model)}[how]
    result = ask("--endpoint", url, "--model", name, QUESTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the served model answered (its words: see above)


def test_a_model_the_server_does_not_serve_is_one_line(smollm2_server):
    url, model = smollm2_server
    result = ask("--endpoint", url, "--model", "llama-5", QUESTION)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "does not serve 'llama-5'" in result.stderr and model.name in result.stderr


def test_an_unreachable_endpoint_without_model_is_one_line():
    result = ask("--endpoint", f"http://127.0.0.1:{free_port()}/v1", QUESTION)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot list the models" in result.stderr and "--model" in result.stderr


class _VllmModels(BaseHTTPRequestHandler):
    """/v1/models as vLLM answers it: two served models, each with max_model_len."""

    def do_GET(self):
        models = [
            {"id": "meta-llama/Llama-4-Scout-17B-16E-Instruct", "object": "model", "max_model_len": 65536},
            {"id": "Qwen/Qwen3-8B", "object": "model", "max_model_len": 32768},
        ]
        body = json.dumps({"object": "list", "data": models}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_every_served_model_is_offered_with_the_context_the_server_reports(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _VllmModels)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        settings = Settings(models_dir=tmp_path, endpoint=url)
        registry = load_registry(settings)
        remote = {s.name: s for s in registry.specs.values() if s.endpoint == url}
        assert list(remote) == ["meta-llama/Llama-4-Scout-17B-16E-Instruct", "Qwen/Qwen3-8B"]
        scout = registry.resolve(settings)  # the first served model is the default
        assert scout.name == "meta-llama/Llama-4-Scout-17B-16E-Instruct" and scout.n_ctx == 65536
        assert scout.vision and not remote["Qwen/Qwen3-8B"].vision
        assert remote["Qwen/Qwen3-8B"].n_ctx == 32768
    finally:
        server.shutdown()
        server.server_close()
