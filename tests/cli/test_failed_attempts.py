"""A failed attempt leaves nothing behind: `ask` at a dead port and a preset the server
does not serve each exit 2 with one line and store no chat; the same at a dead port
through the API (/v1) and the page (gradio_client), where the store stays empty too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, start_app, stop_app
from tests.fixtures.model_lists import ModelList, dead_url


def launch(*args: str, data_dir, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "L4P_DATA_DIR": str(data_dir), **env_vars}
    command = [sys.executable, "launch.py", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


def saved_chats(data_dir) -> list[dict]:
    listed = launch("sessions", "list", "--json", data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_ask_at_a_dead_port_is_one_line_and_no_chat(tmp_path):
    url = dead_url()
    result = launch("ask", "--endpoint", url, "--model", "llama4", "hello", data_dir=tmp_path)
    assert_one_line(result, url.removesuffix("/v1"))
    assert result.stdout == ""
    assert saved_chats(tmp_path) == []


def test_ask_a_preset_the_server_does_not_serve_is_one_line_and_no_chat(tmp_path):
    with ModelList(["some-other-model"]) as server:
        result = launch(
            "ask", "--endpoint", server.url, "--model", "scout-bf16-vllm", "hello", data_dir=tmp_path
        )
        assert not [path for path in server.paths if path.endswith("/chat/completions")]
    assert_one_line(result, "some-other-model")
    assert saved_chats(tmp_path) == []


def test_ask_a_hosted_preset_its_provider_no_longer_lists_is_one_line_and_no_chat(tmp_path):
    with ModelList(["meta-llama/llama-4-maverick"], key="sk-or-t") as provider:
        result = launch(
            "ask", "--endpoint", provider.url, "--provider", "openrouter-scout", "hello",
            data_dir=tmp_path, OPENROUTER_API_KEY="sk-or-t",
        )  # fmt: skip
        assert not [path for path in provider.paths if path.endswith("/chat/completions")]
    assert_one_line(result, "meta-llama/llama-4-maverick")
    assert saved_chats(tmp_path) == []


@pytest.fixture(scope="module")
def dead_endpoint_app(tmp_path_factory):
    data = tmp_path_factory.mktemp("dead-endpoint")
    proc, url = start_app("--endpoint", dead_url(), "--model", "my-model", "--data-dir", str(data))
    yield url, data
    stop_app(proc)


def test_the_api_at_a_dead_endpoint_answers_an_error_and_stores_nothing(dead_endpoint_app):
    import openai

    url, data = dead_endpoint_app
    client = openai.OpenAI(base_url=url + "v1", api_key="none", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "hello"}])
    assert refused.value.status_code in (400, 502, 503)
    assert "\n" not in refused.value.message and "cannot reach" in refused.value.message
    assert saved_chats(data) == []


def test_the_page_at_a_dead_endpoint_says_why_and_stores_nothing(dead_endpoint_app):
    from gradio_client import Client

    url, data = dead_endpoint_app
    client = Client(url, verbose=False)
    client.predict({"text": "hello", "files": []}, "my-model", api_name="/send")
    _, notice = list(client.submit(api_name="/respond"))[-1]
    assert notice.startswith("⚠️") and "cannot reach" in notice and "\n" not in notice.strip()
    assert saved_chats(data) == []
