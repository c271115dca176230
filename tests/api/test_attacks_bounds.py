"""Attacks on the server's bounds, each refused with one line while memory stays bounded
and the server keeps serving the other user: oversized request bodies (declared, and
chunked past the cap), text fields past their limits on the page and the API, FTS5
syntax in searches, and context sizes (the server's alone on a shared page, bounded
on a local one).

One shared server (two logins, their API keys, small limits so the attacks stay
small) on the embedded model; the local-mode checks use the plain `app_url` app."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import httpx
import pytest
from gradio_client import Client

from config import Settings
from documents.parts import ChatMessage
from engine.spec import GB, ModelSpec
from errors import UserError
from models.fit import check_context
from sessions import Store
from tests.conftest import QUICK_RESPOND, REPO, start_app, stop_app

ANN, BOB = ("ann", "ann-pw"), ("bob", "bob-pw")
KEYS = {"ann": "sk-ann-0123456789", "bob": "sk-bob-0123456789"}
REQUEST_MB, TEXT_CHARS, FIELD_CHARS = 8, 5_000, 200
MB = 2**20
# Past the body cap by far: a server that read it whole would grow by this much.
ATTACK_MB = 200
RSS_BOUND_MB = 64  # what the server may grow by while refusing it (the cap is 8 MB)
NASTY_QUERIES = [
    'quokka"\n(',
    'quokka"\n:',
    'quokka "\n-',
    '"quokka',
    "NEAR(quokka island)",
    "quokka*",
    "^quokka",
    "body:quokka",
    "quokka\x00",
    "quokka AND OR NOT",
    "{quokka}",
    "quokka + - ( ) \" ' ` ; --",
    "quokka " + "x" * 10_000,  # 10 KB
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    data = tmp_path_factory.mktemp("bounds-data")
    proc, url = start_app(
        "--auth", ":".join(ANN), "--auth", ":".join(BOB),
        "--api-key", f"ann:{KEYS['ann']}", "--api-key", f"bob:{KEYS['bob']}",
        "--max-request-mb", str(REQUEST_MB), "--max-text-chars", str(TEXT_CHARS),
        "--max-field-chars", str(FIELD_CHARS), "--data-dir", str(data),
    )  # fmt: skip
    yield SimpleNamespace(url=url, port=urlparse(url).port, pid=proc.pid, data=data)
    stop_app(proc)


def one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text.strip() and "Traceback" not in text


def openai_error(reply: httpx.Response | dict, status: int, needle: str) -> str:
    body = reply if isinstance(reply, dict) else reply.json()
    if not isinstance(reply, dict):
        assert reply.status_code == status, reply.text
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert needle in error["message"] and one_line(error["message"]), error
    return error["message"]


def completion(app, user: str, **body) -> httpx.Response:
    body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Say hi."}], **body}
    headers = {"Authorization": f"Bearer {KEYS[user]}"}
    return httpx.post(f"{app.url}v1/chat/completions", json=body, headers=headers, timeout=120)


def assert_still_serves(app) -> None:
    """Bob, who did nothing wrong, still gets an answer from the API and his page."""
    reply = completion(app, "bob", max_tokens=4, temperature=0)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] >= 1
    bob = Client(app.url, auth=BOB, verbose=False)
    assert bob.predict("", api_name="/list_chats")["__type__"] == "update"


# Request bodies


def memory_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS, so the peak seen next is this attack's


def raw_post(port: int, path: str, headers: dict, megabytes: int, declared: int | None = None):
    """POST `megabytes` of body, chunked unless `declared` gives a Content-Length, while
    reading the answer as it comes (the server may answer and close mid-body).
    Returns (status, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = {"Transfer-Encoding": "chunked"} if declared is None else {"Content-Length": str(declared)}
    head = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", **framing, **headers}
    received = bytearray()

    def read():
        try:
            while piece := sock.recv(65536):
                received.extend(piece)
        except OSError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    chunk = b'{"messages": "' + b"a" * (MB - 14)
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode())
        for _ in range(megabytes):
            sock.sendall(chunk if declared is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server closed the connection: what it answered first is read below
    reader.join(timeout=60)
    sock.close()
    header, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = header.decode("latin-1").split("\r\n")
    found = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), found, body[: int(found.get("content-length", len(body)))]


API_PATH = "/v1/chat/completions"
PAGE_PATH = "/gradio_api/queue/join"


@pytest.mark.parametrize("path", [API_PATH, PAGE_PATH], ids=["api", "page"])
@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "declared"])
def test_a_200_mb_body_is_refused_in_bounded_memory(shared, path, declared):
    auth = {"Authorization": f"Bearer {KEYS['ann']}"} if path == API_PATH else {}
    reset_peak(shared.pid)
    before = memory_kb(shared.pid, "VmRSS")
    status, _, body = raw_post(
        shared.port, path, auth, ATTACK_MB if not declared else 1, ATTACK_MB * MB if declared else None
    )
    grew_mb = (memory_kb(shared.pid, "VmHWM") - before) / 1024
    assert status == 413
    line = f"the request body is over the {REQUEST_MB} MB limit"
    if path == API_PATH:
        openai_error(json.loads(body), 413, line)
    else:
        assert line in json.loads(body)["error"] and one_line(json.loads(body)["error"])
    assert grew_mb < RSS_BOUND_MB, f"the server grew by {grew_mb:.0f} MB refusing a {ATTACK_MB} MB body"
    assert_still_serves(shared)


def test_uploads_are_bounded_by_the_file_limit_not_the_body_cap(shared):
    notes = b"quokka notes\n" * ((REQUEST_MB + 2) * MB // 13)  # past the body cap
    with httpx.Client(base_url=shared.url, timeout=60) as browser:
        login = browser.post("login", data={"username": ANN[0], "password": ANN[1]})
        assert login.status_code == 200, login.text
        reply = browser.post("gradio_api/upload", files={"files": ("notes.txt", notes, "text/plain")})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()) == 1


# Text fields


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": [{"role": "user", "content": "hi"}] * 1001}, "1,001 messages, over the limit of 1,000"),
        ({"model": "m" * (FIELD_CHARS + 1)}, f"model is {FIELD_CHARS + 1} characters"),
        ({"stop": ["s" * (FIELD_CHARS + 1)]}, f"stop is {FIELD_CHARS + 1} characters"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4 stop sequences"),
        (
            {"messages": [{"role": "user", "content": "w" * (TEXT_CHARS + 1)}]},
            f"over the {TEXT_CHARS:,}-character limit",
        ),
    ],
    ids=["messages", "model-name", "stop-length", "stop-count", "text"],
)
def test_api_fields_past_their_limits(shared, body, needle):
    chats_before = ann_chats(shared)
    message = openai_error(completion(shared, "ann", **body), 400, needle)
    assert len(message) < 300  # the oversized value is not echoed back
    assert ann_chats(shared) == chats_before  # refused before anything was saved
    assert_still_serves(shared)


def ann_chats(app) -> list[tuple[str, int]]:
    with Store(app.data) as store:
        return [(s.id, s.message_count) for s in store.list_sessions(owner="ann")]


def send(client: Client, text: str, **fields):
    return client.predict(
        {"text": text, "files": []}, password=fields.pop("password", ""), **fields, api_name="/send"
    )


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"text": "q" * (TEXT_CHARS + 1)}, f"the message is {TEXT_CHARS + 1:,} characters"),
        ({"system": "s" * (TEXT_CHARS + 1)}, f"the system prompt is {TEXT_CHARS + 1:,} characters"),
        ({"password": "p" * (FIELD_CHARS + 1)}, f"the password is {FIELD_CHARS + 1} characters"),
    ],
    ids=["message", "system-prompt", "password"],
)
def test_page_send_refuses_fields_past_their_limits(shared, fields, needle):
    ann = Client(shared.url, auth=ANN, verbose=False)
    chats_before = ann_chats(shared)
    _, chat, notice = send(ann, fields.pop("text", "hello"), **fields)
    assert needle in notice and one_line(notice) and chat == []
    assert ann_chats(shared) == chats_before  # nothing saved, not even settings holding the text
    assert_still_serves(shared)


def test_page_answer_title_and_search_past_their_limits(shared):
    ann = Client(shared.url, auth=ANN, verbose=False)
    assert send(ann, "the quokka lives on Rottnest island")[2] == ""
    over = FIELD_CHARS + 1
    chat, notice = ann.predict(**QUICK_RESPOND | {"page_range": "1," * over}, api_name="/respond")
    assert f"the page range is {2 * over} characters" in notice and one_line(notice)
    assert [m["role"] for m in chat] == ["user"]  # nothing answered, the question still there
    chat, notice = ann.predict(**QUICK_RESPOND, api_name="/respond")  # the same turn, now within limits
    assert notice == "" and [m["role"] for m in chat] == ["user", "assistant"]
    _, notice = ann.predict("t" * over, api_name="/rename")
    assert f"the title is {over} characters" in notice and one_line(notice)
    found = ann.predict("s" * over, api_name="/search")
    assert f"the search is {over} characters" in found["label"] and found["choices"] == []
    status = ann.predict(None, "r" * over, api_name="/pull_model")[0]
    assert f"the repo is {over} characters" in status and one_line(status)
    with Store(shared.data) as store:
        titles = [s.title for s in store.list_sessions(owner="ann")]
    assert "the quokka lives on Rottnest island" in titles and "t" * over not in titles
    assert_still_serves(shared)


def test_page_search_takes_any_text_literally(shared):
    ann = Client(shared.url, auth=ANN, verbose=False)
    send(ann, "quokka facts for the search test")
    ann.predict(**QUICK_RESPOND, api_name="/respond")  # a chat is stored once it is answered
    for query in NASTY_QUERIES:
        found = ann.predict(query[:FIELD_CHARS], api_name="/search")
        assert "⚠️" not in found["label"] and " match" in found["label"], query
    assert ann.predict('"quokka', api_name="/search")["choices"]  # a stray quote: still the word
    assert_still_serves(shared)


# Context size


def context_setting(client: Client) -> dict:
    return next(
        c["props"]
        for c in client.config["components"]
        if c.get("props", {}).get("label") == "Context size (tokens)"
    )


def test_a_shared_page_shows_the_servers_context_and_ignores_another(shared):
    ann = Client(shared.url, auth=ANN, verbose=False)
    field = context_setting(ann)
    assert field["interactive"] is False and field["value"] == 8192
    send(ann, "What is the capital of France?")
    updates = list(ann.submit(**QUICK_RESPOND | {"n_ctx": 300}, api_name="/respond"))
    notices = [notice for _, notice in updates if notice]
    assert any(
        "context size 300 ignored: this server's is 8,192" in n and "of 8,192 tokens" in n for n in notices
    )
    chat, notice = updates[-1]
    assert notice == "" and chat[-1]["role"] == "assistant"
    with pytest.raises(Exception):  # noqa: B017 - below Gradio's own minimum: refused by Gradio
        ann.predict(**QUICK_RESPOND | {"n_ctx": 10}, api_name="/respond")
    # A chat saved with another size (before the server was shared) opens at the server's.
    with Store(shared.data) as store:
        old = store.create_session(
            "Old local chat", model="smollm2-135m", settings={"n_ctx": 300}, owner="ann"
        )
        store.add_user_message(old, None, ChatMessage.text("user", "an old question"))
    ann.predict("", api_name="/list_chats")
    opened = ann.predict(old, api_name="/open_chat")
    assert opened[2] == "Old local chat" and 300 not in opened
    assert_still_serves(shared)


def test_a_local_page_bounds_the_context_by_the_models_maximum(app_url):
    client = Client(app_url, verbose=False)
    assert context_setting(client)["interactive"] is not False
    client.predict({"text": "Name a colour.", "files": []}, api_name="/send")
    chat, notice = client.predict(**QUICK_RESPOND | {"n_ctx": 10**9}, api_name="/respond")
    assert "a context of 1,000,000,000 tokens is over SmolLM2" in notice and "maximum of 8,192" in notice
    assert one_line(notice) and [m["role"] for m in chat] == ["user"]
    chat, notice = client.predict(**QUICK_RESPOND | {"n_ctx": 4096}, api_name="/respond")
    assert notice == "" and [m["role"] for m in chat] == ["user", "assistant"]


def spec(**fields) -> ModelSpec:
    base = {"name": "m", "label": "M", "model_path": Path("/nonexistent/m.gguf"), "size_bytes": GB}
    base |= {"n_ctx": 4096, "max_context": 131072}
    return ModelSpec(**base | {"kv_bytes_per_token": 100_000} | fields)


def test_check_context_bounds_by_the_model_and_the_memory():
    settings = Settings()
    check_context(spec(), settings, 4096, budget=None)  # the server's own size
    check_context(spec(), settings, 8192, budget=3 * GB)  # 1 GB + 0.8 GB of KV fits in 3
    with pytest.raises(UserError, match="over M's maximum of 131,072"):
        check_context(spec(), settings, 131073, budget=None)
    with pytest.raises(UserError, match=r"does not fit in memory here .* at most 17,152 fits"):
        check_context(spec(), settings, 65536, budget=3 * GB)
    with pytest.raises(UserError, match="too small"):
        check_context(spec(), settings, 16, budget=None)
    # A smaller context than the server's always fits; a remote model holds its own memory.
    check_context(spec(), settings, 2048, budget=GB // 2)
    check_context(spec(backend="openai", endpoint="http://x/v1"), settings, 65536, budget=GB // 2)


# Search in the store and the CLI


def test_store_search_takes_any_text_literally(tmp_path):
    with Store(tmp_path) as store:
        session = store.create_session("Island animals")
        store.add_user_message(
            session, None, ChatMessage.text("user", "a quokka on the island, NEAR the body: text")
        )
        for query in NASTY_QUERIES:
            assert [hit.session_id for hit in store.search(query)] in ([session], []), query
        for query in ('quokka"\n(', "^quokka", "quokka*", "quokka\x00", '"quokka', "quokka NEAR"):
            assert [hit.session_id for hit in store.search(query)] == [session], query
        assert store.search('"island quokka"') == []  # a quoted phrase stays a phrase
        assert store.search('"quokka on the island"') != []
        assert store.search("body:quokka") == []  # no column filter: "body quokka" is not in it


@pytest.mark.parametrize("query", ['quokka"\n(', 'quokka"\n:', "NEAR(a b) OR *", "q" * 10_000])
def test_sessions_search_cli_never_ends_in_a_traceback(tmp_path, query):
    with Store(tmp_path) as store:
        session = store.create_session("Island animals")
        store.add_user_message(session, None, ChatMessage.text("user", "a quokka on the island"))
    result = subprocess.run(
        [sys.executable, "launch.py", "--data-dir", str(tmp_path), "sessions", "search", query],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (session in result.stdout) == query.startswith("quokka")
