"""Lanes (chat/lanes.py): a model's requests wait in its own line, first come first
served, and see their place; other models never wait on them; an endpoint takes
several at once. Then through a running server: /v1 requests reach an endpoint
together, a local model answers one at a time while a user waiting on it sees their
place, and a chat on another model does not wait at all."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from chat.lanes import LaneLimit, Lanes, place_line
from tests.conftest import start_app, stop_app
from tests.fixtures.scripted_openai import Script, ScriptedServer

ONE_LOCAL = LaneLimit(1)


def lanes(limits: dict[str, LaneLimit] | None = None) -> Lanes:
    return Lanes(lambda name: (limits or {}).get(name, ONE_LOCAL))


def first_place(seat):
    """The first (model, place) a seat reports, or None when it got in at once."""
    places = seat.places()
    return next(places, None), places


def test_a_second_request_on_the_same_model_waits_and_sees_its_place():
    line = lanes()
    first = line.seat(["a"])
    assert first.wait() and first.admitted
    second = line.seat(["a"])
    reported, places = first_place(second)
    assert reported == ("a", 1) and not second.admitted
    first.release()
    assert list(places) == [] and second.admitted  # it goes on as soon as the first is done
    second.release()
    assert line.busy("a") == 0 and line.waiting("a") == 0


def test_requests_on_another_model_do_not_wait():
    line = lanes()
    holding = line.seat(["a"])
    assert holding.wait()
    other = line.seat(["b"])
    assert next(other.places(), None) is None and other.admitted
    other.release()
    holding.release()


def test_an_endpoint_takes_its_limit_at_once_and_the_next_waits():
    line = lanes({"remote": LaneLimit(3)})
    seats = [line.seat(["remote"]) for _ in range(3)]
    assert all(seat.wait() for seat in seats)
    assert line.busy("remote") == 3
    fourth = line.seat(["remote"])
    assert first_place(fourth)[0] == ("remote", 1)
    for seat in seats:
        seat.release()
    fourth.release()


def test_waiting_requests_go_in_the_order_they_came():
    line = lanes()
    holder = line.seat(["a"])
    holder.wait()
    order: list[int] = []
    started = []

    def wait_then_note(index: int) -> None:
        seat = line.seat(["a"])
        places = seat.places()
        next(places)  # in line now
        started[index].set()
        for _ in places:
            pass
        order.append(index)
        seat.release()

    threads = []
    for index in range(4):
        started.append(threading.Event())
        threads.append(threading.Thread(target=wait_then_note, args=(index,)))
        threads[-1].start()
        assert started[index].wait(10)  # each joins after the one before
    assert [line._place("a", t) for t in list(line._lanes["a"].waiting)] == [1, 2, 3, 4]
    holder.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3]


def test_stop_while_waiting_leaves_the_line_without_running():
    line = lanes()
    holder = line.seat(["a"])
    holder.wait()
    cancel = threading.Event()
    waiting = line.seat(["a"], cancel)
    places = waiting.places()
    assert next(places) == ("a", 1)
    cancel.set()
    assert list(places) == [] and not waiting.admitted
    assert line.waiting("a") == 0  # nobody behind it waits for it
    holder.release()
    assert line.busy("a") == 0


def test_a_comparison_holds_every_lane_it_uses_and_never_deadlocks_another():
    line = lanes()
    results = []

    def compare(names: list[str]) -> None:
        with line.hold(names) as admitted:
            results.append((tuple(names), admitted, line.busy("a"), line.busy("b")))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(compare, names) for names in (["a", "b"], ["b", "a"]) * 10]
        for job in jobs:
            job.result(timeout=20)
    assert len(results) == 20 and all(admitted and a == 1 and b == 1 for _, admitted, a, b in results)


def test_the_place_reads_as_people_ahead():
    assert place_line("Scout", 1) == "⏳ waiting for Scout: you are next"
    assert place_line("Scout", 3) == "⏳ waiting for Scout: 2 requests ahead of you"


def test_a_model_answering_someone_is_not_unloaded_under_them(tiny_llama4):
    """Room for one model only: a load of another waits while the first is leased
    (answering someone), then takes its place."""
    from config import Settings
    from engine import Message
    from engine.spec import GB
    from engine.types import SamplingParams
    from models.catalogue import load_registry
    from models.manager import ModelManager
    from models.memory import model_cost

    extra = [f"{tiny_llama4[0]}:{tiny_llama4[1]}"]
    registry = load_registry(Settings(extra_models=extra))
    first, other = registry.get("smollm2-135m"), registry.get("tiny-llama4")
    room = max(model_cost(first), model_cost(other)) + 1
    manager = ModelManager(registry, Settings(extra_models=extra, memory_budget_gb=room / GB))
    loaded_other = threading.Event()

    def load_other() -> None:
        manager.acquire([other])
        loaded_other.set()

    try:
        with manager.leased([first]) as (engine,):
            thread = threading.Thread(target=load_other)
            thread.start()
            assert not loaded_other.wait(1.0)  # it waits for the leased model
            answer = list(engine.stream([Message.text("user", "Hi")], SamplingParams(max_tokens=4)))
            assert answer[-1].finish_reason in ("stop", "length") and engine.loaded
        thread.join(60)
        assert loaded_other.is_set() and manager.loaded_names == ["tiny-llama4"]
    finally:
        manager.close()


# -- through a running server -------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint():
    with ScriptedServer(Script(model="scripted", first_s=0.05, gate=8, gate_timeout_s=15)) as server:
        yield server


def _ask_v1(url: str, model: str, key: str, text: str = "hi") -> str:
    import openai

    client = openai.OpenAI(base_url=url + "v1", api_key=key, max_retries=0, timeout=60)
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content


def test_v1_requests_reach_an_endpoint_together(endpoint):
    """Eight clients at once: the scripted server holds each until eight are in (up to
    15 s), so under one lock for everything it would see one at a time."""
    proc, url = start_app("--endpoint", endpoint.url, "--model", "scripted", "--api-key", "sk-lanes-1")
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _ask_v1(url, "scripted", "sk-lanes-1"), range(8)))
    finally:
        stop_app(proc)
    assert answers == ["Hello there, friend."] * 8
    assert endpoint.script.most_live == 8


def test_endpoint_concurrency_flag_caps_what_the_server_sees():
    script = Script(model="scripted", first_s=0.2, gate=0)
    with ScriptedServer(script) as server:
        proc, url = start_app(
            "--endpoint", server.url, "--model", "scripted", "--api-key", "sk-lanes-2",
            "--endpoint-concurrency", "2",
        )  # fmt: skip
        try:
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: _ask_v1(url, "scripted", "sk-lanes-2"), range(6)))
        finally:
            stop_app(proc)
    assert len(answers) == 6 and script.served == 6
    assert script.most_live <= 2


def test_page_user_waits_in_the_local_models_lane_while_another_model_answers(endpoint):
    """User 1 streams a long answer from the embedded model; user 2 on the same model
    sees their place (its llama-server has one slot here: -np 1); user 3 on the endpoint
    gets a whole answer meanwhile."""
    from gradio_client import Client

    endpoint.script.gate = 0
    proc, url = start_app("--endpoint", endpoint.url, "--model", "scripted", "--parallel", "1")
    try:
        local = "smollm2-135m"  # its own context: the field holds the default (endpoint) model's
        one, two, three = (Client(url, verbose=False) for _ in range(3))
        long_story = {"text": "Write a very long story about a dragon and a castle.", "files": []}
        one.predict(long_story, local, api_name="/send")
        first = one.submit(local, n_ctx=8192, api_name="/respond")
        for chat, _ in first:  # user 1 is answering now
            if len(chat) == 2 and len(str(chat[-1]["content"])) > 40:
                break
        two.predict({"text": "Hi", "files": []}, local, api_name="/send")
        second = two.submit(local, n_ctx=8192, api_name="/respond")
        notices = []
        for _, notice in second:
            notices.append(notice)
            if "waiting for" in notice:
                break
        three.predict({"text": "Hi", "files": []}, "scripted", api_name="/send")
        other_chat, _ = three.submit(api_name="/respond").result(timeout=60)
        assert "Hello there, friend." in str(other_chat[-1]["content"])
        assert not first.done()  # the endpoint's answer came while user 1 still streamed
        assert any("you are next" in notice for notice in notices)
        one.predict(api_name="/stop")
        first.result(timeout=60)
        chat, notice = second.result(timeout=120)
        assert chat[-1]["role"] == "assistant" and "waiting" not in notice
    finally:
        stop_app(proc)
