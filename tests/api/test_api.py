"""The OpenAI-compatible API on the page's port, called by real clients: the official
`openai` package, simonw's `llm` CLI (its OpenAI-compatible model config) and raw
httpx SSE. One server with a login, its key, the embedded model and the tiny Llama 4."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from sessions import Store
from tests.conftest import REPO, png_bytes, start_app, stop_app

KEY = "sk-zoe-0123456789"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def server(tiny_llama4, tmp_path_factory):
    model, mmproj = tiny_llama4
    data = tmp_path_factory.mktemp("api-data")
    proc, url = start_app(
        "--auth", "zoe:pw", "--api-key", f"zoe:{KEY}", "--extra-model", f"{model}:{mmproj}",
        "--data-dir", str(data),
    )  # fmt: skip
    yield {"base": url + "v1", "data": data}
    stop_app(proc)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["base"], api_key=KEY, max_retries=0)


def data_url(color: str, size: int = 56) -> dict:
    encoded = base64.b64encode(png_bytes(size, size, color)).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}


def test_the_openai_client_streams_an_answer_with_usage(client, server):
    stream = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # it streamed
    [reason] = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert reason == "stop" or (reason == "length" and usage.completion_tokens == 24)
    assert not chunks[-1].choices and usage.prompt_tokens > 10 and usage.completion_tokens > 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # The chat is saved, and belongs to the key's user.
    with Store(server["data"]) as store:
        (session,) = [s for s in store.list_sessions(owner="zoe") if s.title == QUESTION][:1]
        question, answer = store.branch(session.id)
    assert (question.text, answer.text, answer.status) == (QUESTION, text, "complete")
    assert answer.completion_tokens == usage.completion_tokens


def test_without_or_with_a_wrong_key_the_api_answers_401(server):
    for key in ("", "sk-wrong-0123456789"):
        nobody = openai.OpenAI(base_url=server["base"], api_key=key or "none", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            nobody.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    raw = httpx.get(server["base"] + "/models")
    assert raw.status_code == 401 and raw.json()["error"]["type"] == "invalid_request_error"


def test_models_lists_what_is_here_with_context_and_vision(client):
    models = {m.id: m for m in client.models.list().data}
    assert models["smollm2-135m"].vision is False and models["smollm2-135m"].context_length == 8192
    assert models["tiny-llama4"].vision is True


def test_two_images_cost_more_prompt_tokens_than_one_on_tiny_llama4(client):
    def prompt_tokens(*images: dict) -> int:
        reply = client.chat.completions.create(
            model="tiny-llama4",
            messages=[{"role": "user", "content": [*images, {"type": "text", "text": "compare"}]}],
            max_tokens=2,
            temperature=0,
        )
        assert reply.choices[0].finish_reason in ("stop", "length")  # random weights: any sample
        return reply.usage.prompt_tokens

    one, two = prompt_tokens(data_url("red")), prompt_tokens(data_url("red"), data_url("blue"))
    assert two > one > 0


def test_stop_seed_and_a_whole_answer(client):
    reply = client.chat.completions.create(
        model="smollm2-135m",
        messages=[
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0,
        seed=7,
        max_tokens=24,
        stop=["Paris"],
    )
    assert "Paris" not in reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert reply.object == "chat.completion" and reply.model == "smollm2-135m"


def asking(model: str, *content, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": list(content) or "hi"}], **extra}


def image_at(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (asking("nope"), 404, "unknown model"),
        ({"model": "smollm2-135m", "messages": []}, 400, "messages"),
        (asking("smollm2-135m", max_tokens=0), 400, "max_tokens"),
        (asking("smollm2-135m", data_url("red")), 400, "cannot see images"),
        (asking("tiny-llama4", image_at("http://example.com/a.png")), 400, "data:image"),
        (asking("tiny-llama4", image_at("data:image/png;base64,bm90IGFuIGltYWdl")), 400, "not an image"),
        (asking("smollm2-135m", n=2), 400, "n"),
    ],
    ids=[
        "unknown-model",
        "no-messages",
        "max-tokens-0",
        "image-to-text-model",
        "remote-url",
        "not-image",
        "n-2",
    ],
)
def test_bad_requests_get_openai_shaped_errors(server, body, status, needle):
    reply = httpx.post(server["base"] + "/chat/completions", json=body, headers=AUTH, timeout=120)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert needle in error["message"] and set(error) == {"message", "type", "param", "code"}
    as_json = {**AUTH, "Content-Type": "application/json"}  # any other type is a 415 (app/web_guard.py)
    broken = httpx.post(server["base"] + "/chat/completions", content=b"{", headers=as_json)
    assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]


def test_a_client_that_disconnects_cancels_the_run(server):
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 2000,
        "stream": True,
    }
    url = server["base"] + "/chat/completions"
    with httpx.stream("POST", url, json=body, headers=AUTH, timeout=120) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        chunks = (json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: {"))
        assert [next(chunks)["object"] for _ in range(3)] == ["chat.completion.chunk"] * 3
    # Leaving the block closed the connection mid-answer.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with Store(server["data"]) as store:
            stories = [s for s in store.list_sessions(owner="zoe") if s.title.startswith("Write a very long")]
            answer = store.branch(stories[0].id)[-1] if stories else None
        if answer is not None and answer.role == "assistant" and answer.status != "streaming":
            break
        time.sleep(0.2)
    assert answer.status == "cancelled" and answer.completion_tokens < 2000


def test_simonw_llm_streams_from_the_api(server, tmp_path):
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: playground\n  model_name: smollm2-135m\n  api_base: {server['base']}\n"
        "  api_key_name: playground\n"
    )
    (tmp_path / "keys.json").write_text(json.dumps({"playground": KEY}))
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    llm = [sys.executable, "-m", "llm"]
    result = subprocess.run(
        [*llm, "-m", "playground", "-o", "temperature", "0", "-o", "max_tokens", "24", QUESTION],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    (tmp_path / "keys.json").write_text(json.dumps({"playground": "sk-wrong-0123456789"}))
    refused = subprocess.run(
        [*llm, "-m", "playground", "hi"], capture_output=True, text=True, timeout=60, env=env
    )
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
