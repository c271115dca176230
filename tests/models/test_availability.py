"""Whether a remote model can answer now (models/availability.py), against servers on
loopback that list different models, a dead port and a missing or wrong key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.spec import ModelSpec
from models.availability import (
    KEY_REFUSED,
    NO_ENDPOINT,
    NO_KEY,
    NOT_SERVED,
    READY,
    UNREACHABLE,
    Checker,
)
from tests.fixtures.model_lists import ModelList, dead_url

SCOUT = "meta-llama/llama-4-scout"
MAVERICK = "meta-llama/llama-4-maverick"


def hosted(url: str, model: str, key_env: str = "TEST_PROVIDER_KEY", **more) -> ModelSpec:
    return ModelSpec(
        name=more.pop("name", model.split("/")[-1]),
        label=model,
        backend="openai",
        provider=more.pop("provider", "acme"),
        endpoint=url,
        remote_model=model,
        api_key_env=key_env,
        **more,
    )


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-test")
    return "sk-test"


def test_a_listed_model_is_ready_and_says_when_it_was_checked(key):
    with ModelList([MAVERICK, SCOUT, "qwen/qwen3"], key=key) as server:
        check = Checker().check(hosted(server.url, SCOUT))
    assert check.state == READY and check.ready and check.why == ""
    assert check.reachable is True and check.served is True and check.checked_at is not None
    assert check.as_dict()["checked_at"].endswith("+00:00")


def test_a_model_the_provider_no_longer_lists_names_what_it_does_serve(key):
    with ModelList([MAVERICK, "meta-llama/llama-3.3-70b", "qwen/qwen3"], key=key) as server:
        check = Checker().check(hosted(server.url, SCOUT, provider="acme"))
    assert check.state == NOT_SERVED and not check.ready
    assert check.reachable is True and check.served is False
    assert check.llama4 == (MAVERICK,)
    assert check.why == f"no longer served: acme does not list {SCOUT}; its Llama 4 models: {MAVERICK}"


def test_a_provider_with_no_llama4_left_says_so(key):
    with ModelList(["qwen/qwen3"], key=key) as server:
        check = Checker().check(hosted(server.url, SCOUT))
    assert check.state == NOT_SERVED and check.why.endswith("it lists no Llama 4 model")


def test_a_missing_key_names_its_variable_and_asks_nothing(monkeypatch):
    monkeypatch.delenv("TEST_PROVIDER_KEY", raising=False)
    with ModelList([SCOUT], key="sk-test") as server:
        check = Checker().check(hosted(server.url, SCOUT))
        assert server.listings == 0
    assert check.state == NO_KEY and "$TEST_PROVIDER_KEY" in check.why
    assert check.reachable is None and check.served is None and check.checked_at is None
    assert check.as_dict()["checked_at"] is None and check.as_dict()["availability"] == NO_KEY


def test_a_refused_key_is_not_ready(monkeypatch):
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-wrong")
    with ModelList([SCOUT], key="sk-right") as server:
        check = Checker().check(hosted(server.url, SCOUT))
    assert check.state == KEY_REFUSED and "$TEST_PROVIDER_KEY" in check.why
    assert check.reachable is True and check.served is None


def test_a_dead_loopback_port_says_how_to_start_a_server():
    url = dead_url()
    vllm = ModelSpec(
        "scout-vllm", "Scout on vLLM", backend="openai", endpoint=url, remote_model=SCOUT, n_ctx=1000
    )
    server = ModelSpec(
        "llama-server", "GGUF", backend="openai", endpoint=url, remote_model="llama4", tiles="llama.cpp"
    )
    checker = Checker()
    for spec, command in ((vllm, f"vllm serve {SCOUT} --max-model-len 1000"), (server, "llama-server -m")):
        check = checker.check(spec)
        assert check.state == UNREACHABLE and check.reachable is False and check.served is None
        assert check.why.startswith(f"not reachable: nothing answers at {url}")
        assert command in check.why and f"--port {url.split(':')[2].split('/')[0]}" in check.why


def test_a_remote_host_that_is_down_gets_no_start_recipe():
    # A name that cannot resolve: the listing fails without touching the network.
    spec = hosted("http://no-such-host.invalid/v1", SCOUT, key_env="")
    check = Checker().check(spec)
    assert check.state == UNREACHABLE and "vllm serve" not in check.why


def test_an_endpoint_without_its_model_lists_what_it_serves():
    with ModelList(["other-model"]) as server:
        spec = ModelSpec("mine", "Mine", backend="openai", endpoint=server.url, remote_model="llama4")
        check = Checker().check(spec)
    assert check.state == NOT_SERVED
    assert check.why == f"not served: {server.url} does not serve llama4; it serves other-model"


def test_no_endpoint_is_not_asked():
    check = Checker().check(ModelSpec("x", "X", backend="openai"))
    assert check.state == NO_ENDPOINT and check.reachable is None


def test_listings_are_cached_and_shared_by_threads(key):
    with ModelList([SCOUT, MAVERICK], key=key) as server:
        checker = Checker(ttl_s=600)
        specs = [hosted(server.url, SCOUT), hosted(server.url, MAVERICK)]
        with ThreadPoolExecutor(8) as pool:
            checks = list(pool.map(checker.check, specs * 8))
        assert all(c.ready for c in checks)
        assert server.listings == 1  # 16 checks, two models, one server: one request
        stale = Checker(ttl_s=0)
        stale.check(specs[0])
        stale.check(specs[0])
        assert server.listings == 3  # a listing past its time is asked again


def test_check_all_asks_every_server_at_once(key):
    meet = threading.Barrier(3)  # each listing waits until all three are in flight
    servers = [ModelList([SCOUT], key=key, meet=meet) for _ in range(3)]
    for server in servers:
        server.__enter__()
    try:
        specs = [hosted(s.url, SCOUT, name=f"m{i}") for i, s in enumerate(servers)]
        local = ModelSpec("local", "Local GGUF")
        checks = Checker().check_all([*specs, local])
    finally:
        for server in servers:
            server.__exit__()
    assert sorted(checks) == ["m0", "m1", "m2"]  # a local model is not asked
    assert all(check.ready for check in checks.values()), checks
