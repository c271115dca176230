"""`ChatService.respond`, the one turn every front end runs: it waits in the model's
lane, leases the model, reads the history from the store, puts the system prompt
first, and stores the chat only once the model has taken the turn: a refusal, a dead
endpoint or a Stop while waiting leave nothing behind."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from chat.conversation import TurnRequest, Waiting, model_messages, system_prompt
from chat.service import Answered, ChatService, Prepared
from config import Settings
from documents.parts import ChatMessage
from engine.types import EngineInputError, EngineLoadError, ImagePart, SamplingParams, TextDelta
from errors import Fault, UserError
from models.catalogue import endpoint_model, load_registry
from models.manager import ModelManager
from sessions import Store
from sessions.library import DocumentLibrary
from tests.conftest import free_port, png_bytes

GREEDY = SamplingParams(max_tokens=16, temperature=0.0)


def a_service(tmp_path, **settings):
    settings = Settings(data_dir=tmp_path, **settings)
    registry = load_registry(settings)
    dead = endpoint_model(f"http://127.0.0.1:{free_port()}/v1", "dead-model", {})
    registry.add(replace(dead, name="dead"))
    models = ModelManager(registry, settings)
    with Store(tmp_path) as store:
        yield ChatService(store, DocumentLibrary(store), models)
    models.close()


@pytest.fixture
def service(tmp_path):
    yield from a_service(tmp_path)


@pytest.fixture
def one_slot_service(tmp_path):
    """The embedded model answering one request at a time (its llama-server's -np 1)."""
    yield from a_service(tmp_path, local_slots=1)


def ask(text: str, **fields) -> TurnRequest:
    return TurnRequest(model="smollm2-135m", question=ChatMessage.text("user", text), params=GREEDY, **fields)


def run(service: ChatService, request: TurnRequest, cancel: threading.Event | None = None):
    events = list(service.respond(request, cancel or threading.Event()))
    return events, next((e for e in events if isinstance(e, Answered)), None)


def test_a_turn_is_stored_once_answered_and_the_next_reads_its_history(service):
    events, done = run(service, ask("What is the capital of France?", owner="ann"))
    assert isinstance(events[0], Prepared) and done.question is not None
    first = done.question
    assert "Paris" in "".join(e.text for e in events if isinstance(e, TextDelta))
    rows = service.store.branch(first.session_id)
    assert [r.role for r in rows] == ["user", "assistant"] and rows[-1].id == done.answer_id
    assert service.store.owned_session(first.session_id, "ann").settings["system"]  # the model's own

    follow = ask("And of Italy?", owner="ann", session_id=first.session_id, parent_id=done.answer_id)
    _, again = run(service, follow)
    assert again.question.session_id == first.session_id
    assert [r.role for r in service.store.branch(first.session_id)] == ["user", "assistant"] * 2
    assert again.final.usage.prompt_tokens > done.final.usage.prompt_tokens  # the history was read


def test_another_login_cannot_continue_a_chat(service):
    _, done = run(service, ask("Hi", owner="ann"))
    chat = {"session_id": done.question.session_id, "parent_id": done.answer_id}
    with pytest.raises(UserError):
        run(
            service,
            ask("Hi again", owner="bob", **chat),
        )


def test_a_refused_turn_leaves_no_chat(service):
    image = ImagePart(png_bytes(), "image/png", "red.png")
    question = ChatMessage("user", (image, *ChatMessage.text("user", "what is this?").parts))
    with pytest.raises(EngineInputError, match="cannot see images"):
        run(service, replace(ask(""), question=question))
    assert service.store.list_sessions(owner="") == []


def test_a_dead_endpoint_leaves_no_chat(service):
    with pytest.raises(Fault):
        run(service, replace(ask("Hello"), model="dead"))
    assert service.store.list_sessions(owner="") == []
    assert issubclass(EngineLoadError, Fault) and issubclass(EngineInputError, UserError)


def test_regenerating_answers_the_stored_question_again_as_a_sibling(service):
    _, first = run(service, ask("Name a colour.", owner=""))
    saved = first.question
    again = TurnRequest(
        model="smollm2-135m",
        question=None,
        question_id=saved.message_id,
        session_id=saved.session_id,
        params=GREEDY,
    )
    _, second = run(service, again)
    assert second.question == saved
    assert service.store.siblings(second.answer_id) == [first.answer_id, second.answer_id]
    assert len(service.store.all_messages(saved.session_id)) == 3  # no second copy of the question


def test_a_waiting_turn_sees_its_place_and_stop_leaves_nothing(one_slot_service):
    service = one_slot_service
    cancel = threading.Event()
    with service.seated(["smollm2-135m"], threading.Event()) as holder:
        holder.wait()  # someone else answers with the model
        events = service.respond(ask("Hello"), cancel)
        waiting = next(events)
        assert isinstance(waiting, Waiting) and waiting.place == 1
        assert waiting.line().startswith("⏳ waiting for SmolLM2") and waiting.line().endswith("you are next")
        cancel.set()
        assert list(events) == []  # stopped in line: no event, no model work
    assert service.store.list_sessions(owner="") == []


def test_the_system_prompt_rule():
    user = ChatMessage.text("user", "hi")
    assert model_messages([], "Be brief.", user) == [ChatMessage.text("system", "Be brief."), user]
    assert model_messages([], "  ", user) == [user]
    own = ChatMessage.text("system", "mine")
    assert model_messages([own], "Be brief.", user) == [own, user]
    assert system_prompt(None, {"system": ""}, "model's") == ""  # a chat that chose none keeps none
    assert system_prompt(None, {}, "model's") == "model's"
    assert system_prompt("asked", {"system": "saved"}, "model's") == "asked"
