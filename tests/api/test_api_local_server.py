"""/v1 on a local model served by a llama-server child: kill -9
of the child mid-answer ends that stream with one error line, the playground lives on,
and the next request is answered by the restarted child."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from engine.llama_server import CRASH_LINE
from engine.server_process import server_binary
from sessions import Store
from tests.conftest import start_app, stop_app

pytestmark = pytest.mark.skipif(server_binary() is None, reason="llama-server is not built (make setup)")

KEY = "sk-zoe-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
LONG_ANSWER = "Keep this chat, please."  # greedy, the tiny model's random weights never end it
# One thread: two threads on two shared cores wait for each other at every op, and a
# token took seconds (the next request over 120 s) while other programs ran.
THREADS = "1"


@pytest.fixture(scope="module")
def server(tiny_llama4, tmp_path_factory):
    data = tmp_path_factory.mktemp("api-server-data")
    proc, url = start_app(
        "--auth", "zoe:pw", "--api-key", f"zoe:{KEY}", "--data-dir", str(data),
        "--model-path", str(tiny_llama4[0]), "-np", "2", "-t", THREADS,
    )  # fmt: skip
    yield {"proc": proc, "base": url + "v1", "data": data, "model": tiny_llama4[0].stem}
    stop_app(proc)


def llama_server_children(parent: int) -> list[int]:
    """The llama-server processes the playground started (their parent is it)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name, ppid = fields[0].split("(", 1)[1], int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and name.startswith("llama-server"):
            found.append(int(stat.parent.name))
    return found


def model_name(server) -> str:
    models = httpx.get(server["base"] + "/models", headers=AUTH, timeout=30).json()["data"]
    assert server["model"] in [m["id"] for m in models]
    return server["model"]  # the tiny Llama 4, not the embedded model listed first


def test_kill_9_of_the_model_process_mid_answer_is_one_line_and_the_next_request_is_served(server):
    model = model_name(server)
    body = {"model": model, "messages": [{"role": "user", "content": LONG_ANSWER}]}
    body |= {"max_tokens": 4000, "temperature": 0, "stream": True}
    url = server["base"] + "/chat/completions"
    chunks, killed = [], []
    with httpx.stream("POST", url, json=body, headers=AUTH, timeout=120) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunks.append(json.loads(line[6:]))
            if len(chunks) == 3:
                killed = llama_server_children(server["proc"].pid)
                assert len(killed) == 1, "one model, one child"
                os.kill(killed[0], signal.SIGKILL)
    texts = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")]
    assert "".join(texts)  # what came before the crash
    assert chunks[-1]["error"]["message"] == CRASH_LINE  # the stream's end: one line, no traceback

    again = httpx.post(url, json=body | {"stream": False, "max_tokens": 8}, headers=AUTH, timeout=120)
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["finish_reason"] in ("stop", "length")
    assert server["proc"].poll() is None  # the playground never went down
    restarted = llama_server_children(server["proc"].pid)
    assert restarted and restarted != killed
    with Store(server["data"]) as store:
        answers = [store.branch(s.id)[-1] for s in store.list_sessions(owner="zoe")]
    (cut_short,) = [a for a in answers if a.status == "error"]  # the other one was answered
    assert cut_short.error == CRASH_LINE and cut_short.text == "".join(texts)


def test_a_model_that_fails_to_load_is_one_line_and_the_playground_serves_on(tiny_llama4, tmp_path):
    whole = tiny_llama4[0].read_bytes()
    broken = tmp_path / "broken-llama4.gguf"
    broken.write_bytes(whole[:-4096])  # the header intact, the last tensors cut short
    proc, url = start_app(
        "--auth", "zoe:pw", "--api-key", f"zoe:{KEY}", "--data-dir", str(tmp_path / "data"),
        "--model-path", str(broken), "-np", "1", "-t", THREADS,
    )  # fmt: skip
    try:
        models = httpx.get(url + "v1/models", headers=AUTH, timeout=30).json()["data"]
        other = next(m["id"] for m in models if m["id"] != broken.stem)
        body = {"model": broken.stem, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
        refused = httpx.post(url + "v1/chat/completions", json=body, headers=AUTH, timeout=120)
        assert refused.status_code == 503, refused.text
        line = refused.json()["error"]["message"]
        assert line.startswith("llama-server could not load") and "\n" not in line
        assert "not within the file bounds" in line  # the cause, from the child's log
        assert "Traceback" not in line and proc.poll() is None
        served = httpx.post(
            url + "v1/chat/completions", json=body | {"model": other}, headers=AUTH, timeout=120
        )
        assert served.status_code == 200, served.text  # the playground serves its other models
    finally:
        stop_app(proc)


def test_a_v1_turn_reuses_the_logins_prefix_and_writes_no_kv_file(server):
    """An OpenAI client sends the whole history again: its turn is stored as a chat, but
    no slot file is written for it (nobody would restore it); the prefix is still
    reused from the slot the same key's last request left."""
    url = server["base"] + "/chat/completions"
    first = [{"role": "user", "content": "Describe a lighthouse keeper's day. " * 8}]
    body = {"model": server["model"], "messages": first, "max_tokens": 4, "temperature": 0}
    one = httpx.post(url, json=body, headers=AUTH, timeout=120).json()
    follow = [*first, {"role": "assistant", "content": one["choices"][0]["message"]["content"]}]
    follow.append({"role": "user", "content": "And at night?"})
    two = httpx.post(url, json=body | {"messages": follow}, headers=AUTH, timeout=120).json()
    assert two["usage"]["prompt_tokens_details"]["cached_tokens"] >= one["usage"]["prompt_tokens"] - 1
    assert not list((server["data"] / "kv").glob("*.slot"))
