"""A Gradio session hash belongs to the login that first used it: another login that
sends the same hash (to read queue events, to join the queue, for heartbeats) gets a
403 with one line, and the owner goes on as before."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from app.session_binding import Bindings
from tests.conftest import start_app, stop_app

ANN, BOB = ("ann", "ann-secret-1"), ("bob", "bob-secret-2")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("binding")
    proc, url = start_app("--auth", ":".join(ANN), "--auth", ":".join(BOB), "--data-dir", str(data))
    yield SimpleNamespace(url=url.rstrip("/"))
    stop_app(proc)


def logged_in(server, login) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    reply = client.post("/login", data={"username": login[0], "password": login[1]})
    assert reply.status_code == 200, reply.text
    return client


def join(client: httpx.Client, session_hash: str) -> httpx.Response:
    body = {"data": [], "fn_index": 0, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    return client.post("/gradio_api/queue/join", json=body)


def first_status(client: httpx.Client, session_hash: str) -> int:
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as reply:
        return reply.status_code  # the owner's stream is left at once


def test_another_login_cannot_use_a_bound_session_hash(server):
    ann, bob = logged_in(server, ANN), logged_in(server, BOB)
    assert join(ann, "hash-of-ann").status_code != 403
    for reply in (
        join(bob, "hash-of-ann"),
        bob.get("/gradio_api/queue/data", params={"session_hash": "hash-of-ann"}),
        bob.get("/gradio_api/heartbeat/hash-of-ann"),
    ):
        assert reply.status_code == 403
        assert reply.text == "this session belongs to another login; reload the page"
    assert first_status(ann, "hash-of-ann") == 200  # the owner still reads its own events
    assert join(bob, "hash-of-bob").status_code != 403  # bob's own hash is his


def test_the_first_login_to_use_a_hash_owns_it():
    bindings = Bindings()
    assert bindings.claim("h", "ann") and bindings.claim("h", "ann")
    assert not bindings.claim("h", "bob")


def test_the_oldest_bindings_are_forgotten_past_the_limit():
    bindings = Bindings(limit=2)
    bindings.claim("a", "ann")
    bindings.claim("b", "ann")
    bindings.claim("c", "ann")  # "a" forgotten: a new page could take it
    assert bindings.claim("a", "bob") and not bindings.claim("c", "bob")
