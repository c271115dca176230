"""Web attacks on the local server, as a page in the next browser tab would make them:
DNS rebinding (a foreign Host), cross-site requests (a foreign Origin, a text/plain
"simple" POST), on every route that does something. The real server on loopback,
plain HTTP through httpx with the headers a browser would send."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import httpx
import pytest

from app.web_guard import allowed_names
from config import Settings
from tests.conftest import start_app, stop_app

EVIL = "http://evil.example"
CHAT = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
# Every kind of state-changing route the app has: the API, Gradio's queue, uploads,
# direct runs, the login form.
WRITES = [
    "/v1/chat/completions",
    "/gradio_api/queue/join",
    "/gradio_api/upload",
    "/gradio_api/run/predict",
    "/gradio_api/call/respond",
    "/login",
]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    data = tmp_path_factory.mktemp("web-local")
    proc, url = start_app("--data-dir", str(data))
    yield SimpleNamespace(url=url.rstrip("/"), port=urlparse(url).port, data=data)
    stop_app(proc)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """Served under a public name through a proxy, with one other tool allowed."""
    data = tmp_path_factory.mktemp("web-proxied")
    proc, url = start_app(
        "--data-dir", str(data), "--allowed-host", "playground.test", "--allowed-host", "*.team.test",
        "--allowed-origin", "https://tool.test:8443",
    )  # fmt: skip
    yield SimpleNamespace(url=url.rstrip("/"), port=urlparse(url).port, data=data)
    stop_app(proc)


def chats_stored(data: Path) -> int:
    db = data / "playground.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]


def one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text.strip() and "Traceback" not in text


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example",
        "attacker.localhost.example:{port}",
        "192.168.1.50:{port}",
        "[fe80::1]:{port}",
        "",
    ],
)
@pytest.mark.parametrize("path", ["/", "/v1/models", "/gradio_api/info", "/config"])
def test_a_foreign_host_gets_421_everywhere(local, host, path):
    reply = httpx.get(local.url + path, headers={"Host": host.format(port=local.port)}, timeout=10)
    assert reply.status_code == 421, (host, path, reply.text[:200])
    if path.startswith("/v1/"):
        error = reply.json()["error"]
        assert "host name" in error["message"] and one_line(error["message"])
    else:
        assert one_line(reply.text) and "host name" in reply.text
    assert "Llama" not in reply.text  # nothing of the page or the catalogue


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.:{port}", "[::1]:{p}"])
def test_the_names_the_server_was_started_for_work(local, host):
    headers = {"Host": host.format(port=local.port, p=local.port)}
    assert httpx.get(local.url + "/", headers=headers, timeout=10).status_code == 200
    assert httpx.get(local.url + "/v1/models", headers=headers, timeout=10).status_code == 200


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize(
    "origin_headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame, a data: page
        {"Origin": "http://localhost:3000"},  # another local app: still another origin
        {"Origin": "http://127.0.0.1"},  # the right host on another port
        {"Referer": f"{EVIL}/page.html"},  # an old browser that sends only a Referer
    ],
)
def test_a_foreign_origin_is_refused_on_every_state_changing_route(local, path, origin_headers):
    before = chats_stored(local.data)
    headers = {"Content-Type": "application/json", **origin_headers}
    reply = httpx.post(local.url + path, content=b'{"data": []}', headers=headers, timeout=10)
    assert reply.status_code == 403, (path, origin_headers, reply.text[:200])
    text = reply.json()["error"]["message"] if path.startswith("/v1/") else reply.text
    assert one_line(text) and "may not make requests" in text
    assert chats_stored(local.data) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_writing_methods_are_held_to_the_origin_too(local, method):
    reply = httpx.request(method, local.url + "/gradio_api/queue/join", headers={"Origin": EVIL}, timeout=10)
    assert reply.status_code == 403


def test_a_cross_origin_read_is_refused(local):
    """fetch() from another origin names it in Origin even for a GET."""
    for path in ("/v1/models", "/gradio_api/info", "/config"):
        assert httpx.get(local.url + path, headers={"Origin": EVIL}, timeout=10).status_code == 403


def test_a_link_from_another_site_still_opens_the_page(local):
    """A navigation carries only a Referer: following a link to the app is fine."""
    reply = httpx.get(local.url + "/", headers={"Referer": f"{EVIL}/links.html"}, timeout=10)
    assert reply.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_the_api_takes_json_bodies_only(local, content_type):
    """A cross-site form or `fetch(..., {mode: "no-cors"})` can send only these: no
    chat is stored for them, even from a client that sends no Origin."""
    before = chats_stored(local.data)
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(CHAT)
    reply = httpx.post(local.url + "/v1/chat/completions", content=body, headers=headers, timeout=30)
    assert reply.status_code == 415, reply.text[:200]
    error = reply.json()["error"]
    assert "application/json" in error["message"] and one_line(error["message"])
    assert chats_stored(local.data) == before


def test_the_same_origin_and_plain_clients_still_work(local):
    """The page's own requests name its origin; API clients name none."""
    same = {"Origin": f"http://127.0.0.1:{local.port}"}
    reply = httpx.post(local.url + "/v1/chat/completions", json=CHAT, headers=same, timeout=120)
    assert reply.status_code == 200, reply.text[:200]
    reply = httpx.post(local.url + "/v1/chat/completions", json=CHAT, timeout=120)
    assert reply.status_code == 200, reply.text[:200]
    localhost = {"Origin": f"http://localhost:{local.port}", "Host": f"localhost:{local.port}"}
    assert httpx.get(local.url + "/v1/models", headers=localhost, timeout=10).status_code == 200


def test_allowed_hosts_and_origins(proxied):
    get = lambda host, **h: httpx.get(proxied.url + "/v1/models", headers={"Host": host, **h}, timeout=10)  # noqa: E731
    assert get("playground.test").status_code == 200
    assert get("a.team.test").status_code == 200
    assert get("team.test").status_code == 421  # "*.team.test" names the subdomains
    assert get("evil.example").status_code == 421
    # Behind a proxy that sets Host to the upstream: the public page's Origin is allowed.
    public = {"Origin": "https://playground.test"}
    assert get(f"127.0.0.1:{proxied.port}", **public).status_code == 200
    assert get(f"127.0.0.1:{proxied.port}", Origin="https://tool.test:8443").status_code == 200
    assert get(f"127.0.0.1:{proxied.port}", Origin="https://tool.test").status_code == 403  # another port
    assert get(f"127.0.0.1:{proxied.port}", Origin=EVIL).status_code == 403


def test_a_server_on_every_interface_answers_to_its_addresses_not_to_names():
    names = allowed_names(Settings(host="0.0.0.0", auth=["a:b"]))
    assert names.host_allowed("192.168.1.20") and names.host_allowed("10.0.0.7")
    assert names.host_allowed("localhost")
    assert not names.host_allowed("evil.example")
    one = allowed_names(Settings(host="192.168.1.20", auth=["a:b"]))
    assert one.host_allowed("192.168.1.20") and not one.host_allowed("10.0.0.7")
    shared = allowed_names(Settings(share=True, auth=["a:b"]))
    assert shared.host_allowed("abc123.gradio.live") and not shared.host_allowed("gradio.live.evil.example")
