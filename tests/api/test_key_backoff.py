"""Guessing API keys backs off like logins: after several wrong keys from one address
the API answers 429 with Retry-After in OpenAI's error shape (even for the right key),
and the right key works again once the pause is over."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import start_app, stop_app

KEY = "sk-ann-0123456789"
ATTEMPTS, BACKOFF_S = 2, 2.0


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    data = tmp_path_factory.mktemp("key-backoff")
    proc, url = start_app(
        "--auth", "ann:ann-pw", "--api-key", f"ann:{KEY}", "--data-dir", str(data),
        "--login-attempts", str(ATTEMPTS), "--login-backoff-s", str(BACKOFF_S),
    )  # fmt: skip
    yield url.rstrip("/")
    stop_app(proc)


def models(url: str, key: str) -> httpx.Response:
    return httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_wrong_keys_back_off_and_the_right_key_works_after(url):
    assert models(url, KEY).status_code == 200
    statuses = [models(url, f"sk-guess-{n:08d}").status_code for n in range(ATTEMPTS * 4 + 1)]
    assert statuses[: ATTEMPTS * 4] == [401] * (ATTEMPTS * 4) and statuses[-1] == 429
    paused = models(url, KEY)
    assert paused.status_code == 429
    error = paused.json()["error"]
    assert error["type"] == "rate_limit_error" and "try again in" in error["message"]
    wait = int(paused.headers["retry-after"])
    assert 1 <= wait <= BACKOFF_S + 1
    time.sleep(wait + 0.2)
    assert models(url, KEY).status_code == 200
    # No key at all is a client's mistake, not a guess: it never pauses anyone.
    assert {httpx.get(url + "/v1/models", timeout=10).status_code for _ in range(10)} == {401}
    assert models(url, KEY).status_code == 200
