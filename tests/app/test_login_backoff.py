"""Logins back off: after a few wrong passwords a user name is paused (429 with
Retry-After, one line, logged), another user still logs in, a guesser's address is
paused after several names, and the right password works again once the pause is
over. The real server's login form (Gradio's POST /login), a short pause setting."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest

from api.login_throttle import LoginThrottle
from tests.conftest import start_app, stop_app

ANN, BOB = ("ann", "ann-pw-1"), ("bob", "bob-pw-2")
ATTEMPTS, BACKOFF_S = 3, 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("logins")
    proc, url = start_app(
        "--auth", ":".join(ANN), "--auth", ":".join(BOB), "--data-dir", str(data),
        "--login-attempts", str(ATTEMPTS), "--login-backoff-s", str(BACKOFF_S),
    )  # fmt: skip
    app = SimpleNamespace(url=url.rstrip("/"), proc=proc)
    yield app
    stop_app(proc)


def login(server, user: str, password: str, multipart: bool = False) -> httpx.Response:
    form = {"username": user, "password": password}
    if multipart:  # as the page's own form sends it
        files = {name: (None, value) for name, value in form.items()}
        return httpx.post(server.url + "/login", files=files, timeout=10)
    return httpx.post(server.url + "/login", data=form, timeout=10)


def test_a_user_is_paused_after_failed_logins_and_let_in_after(server):
    for _ in range(ATTEMPTS):
        assert login(server, "ann", "guess").status_code == 400
    paused = login(server, *ANN)  # even the right password, while paused
    assert paused.status_code == 429
    wait = int(paused.headers["retry-after"])
    assert 1 <= wait <= BACKOFF_S + 1
    line = paused.json()["detail"]
    assert "too many failed attempts" in line and "\n" not in line
    assert login(server, *BOB, multipart=True).status_code == 200  # bob is not ann
    time.sleep(wait + 0.2)
    assert login(server, *ANN, multipart=True).status_code == 200
    # The count started over: the next wrong password is a plain 400 again.
    assert login(server, "ann", "guess").status_code == 400
    assert login(server, *ANN).status_code == 200


def test_an_address_guessing_many_names_is_paused(server):
    time.sleep(BACKOFF_S * 2 + 0.2)  # whatever the test before left paused
    statuses = [login(server, f"user{n}", "guess").status_code for n in range(ATTEMPTS * 4 + 1)]
    first_pause = statuses.index(429)  # the address's earlier failures count too
    assert 1 <= first_pause <= ATTEMPTS * 4
    assert set(statuses[:first_pause]) == {400} and set(statuses[first_pause:]) == {429}
    assert login(server, *BOB).status_code == 429  # from that address, for now


def test_failures_are_logged(server):
    stop_app(server.proc)
    log = server.proc.stdout.read()
    assert "page login: failed for 'ann' from 127.0.0.1" in log
    assert "paused 2 s" in log
    assert "guess" not in log  # never the password


def test_the_pause_doubles_and_is_bounded():
    now = [0.0]
    throttle = LoginThrottle(2, 10, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed("ann", "1.2.3.4")
    assert throttle.wait_s("ann", "9.9.9.9") == 10
    throttle.failed("ann", "1.2.3.4")
    assert throttle.wait_s("ann", "9.9.9.9") == 20
    for _ in range(20):
        throttle.failed("ann", "1.2.3.4")
    assert throttle.wait_s("ann", "9.9.9.9") == 900
    now[0] += 901
    assert throttle.wait_s("ann", "9.9.9.9") == 0
    throttle.succeeded("ann")
    assert throttle.wait_s("ann", "9.9.9.9") == 0


def test_a_flood_of_names_keeps_the_state_bounded():
    from api import login_throttle

    throttle = LoginThrottle(3, 1)
    for n in range(login_throttle.MAX_ENTRIES + 500):
        throttle.failed(f"name{n}", "5.6.7.8")
    assert len(throttle._counts) <= login_throttle.MAX_ENTRIES + 2
