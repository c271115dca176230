"""Bad input to /v1/chat/completions: malformed JSON, NaN, a lone surrogate, 10,000-deep
nesting, absurd numbers. Each is a 400 with one line in OpenAI's error shape, no chat
is stored (not even an empty one), and the server goes on serving."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest

from tests.conftest import chats_stored, start_app, stop_app

GOOD = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def body(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


BAD = {
    "malformed": (b'{"messages": [', "not JSON"),
    "not an object": (b"[1, 2, 3]", "Input should be"),
    "NaN": (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "not JSON"),
    "lone surrogate": (
        b'{"messages": [{"role": "user", "content": "a \\ud800 b"}], "max_tokens": 2}',
        "lone surrogate",
    ),
    "lone low surrogate in a name": (b'{"model": "\\udc00", "messages": []}', "lone surrogate"),
    "10000 deep": (b'{"messages": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
    "deep in an ignored field": (b'{"user": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, "nested too"),
    "seed 1e300": (body(seed=1e300), "seed"),
    "seed 2**70": (body(seed=2**70), "seed"),
    "max_tokens 1e30": (body(max_tokens=1e30), "max_tokens"),
    "max_completion_tokens 2**40": (body(max_completion_tokens=2**40), "max_completion_tokens"),
    "temperature 1e30": (body(temperature=1e30), "temperature"),
    "n 1e10": (body(n=10**10), "n"),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("bad-json")
    proc, url = start_app("--data-dir", str(data))
    yield SimpleNamespace(url=url.rstrip("/"), data=data)
    stop_app(proc)


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_400_and_nothing_is_stored(app, name):
    raw, needle = BAD[name]
    before = chats_stored(app.data)
    headers = {"Content-Type": "application/json"}
    reply = httpx.post(app.url + "/v1/chat/completions", content=raw, headers=headers, timeout=30)
    assert reply.status_code == 400, reply.text[:300]
    error = reply.json()["error"]
    assert needle in error["message"], error
    assert "\n" not in error["message"] and len(error["message"]) < 300
    assert chats_stored(app.data) == before
    assert httpx.get(app.url + "/v1/models", timeout=10).status_code == 200  # still serving
