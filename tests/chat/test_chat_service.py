"""The headless chat turn every front end runs: images placed, the question saved
before the model starts, the answer saved as it streams, usage at the end; Stop
switches per run."""

from __future__ import annotations

import threading

import pytest

from chat.question import place_images
from chat.runs import Runs
from chat.service import Answered, ChatService, Prepared
from chat.stops import StopScanner
from documents.parts import ChatMessage
from engine.types import ImagePart, SamplingParams, TextDelta, TextPart
from sessions import Store
from sessions.library import DocumentLibrary
from tests.conftest import png_bytes

GREEDY = SamplingParams(max_tokens=24, temperature=0.0)


@pytest.fixture
def service(tmp_path):
    with Store(tmp_path) as store:
        yield ChatService(store, DocumentLibrary(store))


def test_image_placement_follows_the_text():
    a, b = (ImagePart(png_bytes(color=c), "image/png", c) for c in ("red", "blue"))
    assert place_images("compare <image> with <IMAGE>!", [a, b]) == (
        TextPart("compare "),
        a,
        TextPart(" with "),
        b,
        TextPart("!"),
    )
    assert place_images("what is this?", [a, b]) == (a, b, TextPart("what is this?"))
    assert place_images("only <image>", [a, b]) == (TextPart("only "), a, b)  # extras go last


def test_a_turn_saves_the_question_first_then_streams_and_saves_the_answer(service, smollm2):
    question = ChatMessage.text("user", "What is the capital of France?")
    system = ChatMessage.text("system", smollm2.spec.system_prompt)
    saved = service.save_question(question, model=smollm2.name, owner="ann")
    events = service.answer(smollm2, [system, question], GREEDY, saved=saved)
    prepared = next(events)
    assert isinstance(prepared, Prepared) and prepared.report.context_used > 0
    # The model has not started: only the question is stored, and it belongs to ann.
    assert [row.role for row in service.store.branch(saved.session_id)] == ["user"]
    assert service.store.owned_session(saved.session_id, "ann").model == smollm2.name
    rest = list(events)
    text = "".join(e.text for e in rest if isinstance(e, TextDelta))
    done = rest[-1]
    assert isinstance(done, Answered) and "Paris" in text
    assert done.final.usage.prompt_tokens == prepared.report.context_used
    answer = service.store.message(done.answer_id)
    assert (answer.text, answer.status, answer.parent_id) == (text, "complete", saved.message_id)
    assert answer.completion_tokens == done.final.usage.completion_tokens > 0


def test_closing_the_turn_early_stores_the_answer_as_cancelled(service, smollm2):
    question = ChatMessage.text("user", "Write a long story about a dragon.")
    saved = service.save_question(question, model=smollm2.name)
    events = service.answer(smollm2, [question], SamplingParams(max_tokens=400, temperature=0.0), saved=saved)
    next(events)
    next(event for event in events if isinstance(event, TextDelta))
    events.close()  # a client that went away
    (_, answer) = service.store.branch(saved.session_id)
    assert answer.status == "cancelled" and answer.text


def test_stop_ends_the_runs_of_its_scope_only():
    runs = Runs()
    with runs.run("chat:tab1") as mine, runs.run("compare:tab1") as other, runs.run("chat:tab1") as second:
        assert runs.cancel("chat:tab1") == 2
        assert mine.is_set() and second.is_set() and not other.is_set()
    assert runs.live("chat:tab1") == 0 and runs.cancel("chat:tab1") == 0
    with runs.run("chat:tab1") as fresh:  # a new run starts with its own switch, not a set one
        assert not fresh.is_set()


def test_a_cancel_token_stops_the_stream_within_a_token(service, smollm2):
    question = ChatMessage.text("user", "Count from one to a thousand.")
    cancel = threading.Event()
    deltas = 0
    for event in service.answer(smollm2, [question], SamplingParams(max_tokens=400), cancel):
        if isinstance(event, TextDelta):
            deltas += 1
            cancel.set()
        elif isinstance(event, Answered):
            assert event.final.finish_reason == "cancelled" and event.answer_id is None
    assert deltas <= 2


def test_stop_strings_end_the_answer_before_them_even_across_pieces():
    scanner = StopScanner(["</end>", "STOP"])
    pieces = ["Hello <", "/e", "nd> never"]
    assert [scanner.feed(p) for p in pieces] == ["Hello ", "", ""] and scanner.hit
    plain = StopScanner(["STOP"])
    assert plain.feed("a ST") == "a " and plain.feed("ill") == "STill" and plain.flush() == ""
    assert plain.feed("ends ST") == "ends " and plain.flush() == "ST" and not plain.hit


def test_a_stop_string_ends_the_answer_with_finish_reason_stop(service, smollm2):
    system = ChatMessage.text("system", smollm2.spec.system_prompt)
    question = ChatMessage.text("user", "What is the capital of France?")
    saved = service.save_question(question, model=smollm2.name)
    events = list(service.answer(smollm2, [system, question], GREEDY, saved=saved, stop=["Paris"]))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    done = events[-1]
    assert "Paris" not in text and done.final.finish_reason == "stop"
    stored = service.store.message(done.answer_id)
    assert (stored.text, stored.status, stored.finish_reason) == (text, "complete", "stop")
