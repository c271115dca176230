"""Whole turns through the chat service on a llama-server child
with the tiny Llama 4: a deleted chat takes its slot files with it; kill -9 of the
child mid-answer keeps the answer so far (stored, marked) and the next turn is served
by a restarted child. Random weights: nothing is compared with wording."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from chat.conversation import TurnRequest
from chat.runtime import build_runtime
from chat.service import Answered
from config import Settings
from documents.parts import ChatMessage
from engine.llama_server import CRASH_LINE, LlamaServerEngine
from engine.server_process import server_binary
from engine.slot_state import session_files
from engine.types import PromptProgress, SamplingParams, TextDelta
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(server_binary() is None, reason="llama-server is not built (make setup)")

GREEDY = SamplingParams(temperature=0, max_tokens=16)
LONG = SamplingParams(temperature=0, max_tokens=4000)


@pytest.fixture(scope="module")
def runtime(tiny_llama4, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data, model_path=tiny_llama4[0], local_slots=2, n_threads=1)
    runtime = build_runtime(settings)
    yield runtime
    runtime.models.close()
    runtime.store.close()


def engine_of(runtime) -> LlamaServerEngine:
    engine = runtime.models.loaded_engine(runtime.default_model)
    assert isinstance(engine, LlamaServerEngine)
    return engine


def turn(runtime, text: str, params=GREEDY, session_id=None, parent_id=None, on_text=None) -> Answered:
    request = TurnRequest(
        runtime.default_model,
        ChatMessage.text("user", text),
        params,
        session_id=session_id,
        parent_id=parent_id,
        owner="ann",
    )
    for event in runtime.service.respond(request, threading.Event()):
        if isinstance(event, TextDelta) and on_text is not None:
            on_text(event.text)
        if isinstance(event, Answered):
            return event
    raise AssertionError("the turn ended without an answer")


def saved_slots_settle(engine: LlamaServerEngine) -> None:
    """The slot is saved on a thread after the answer; it is taken until then."""
    deadline = time.monotonic() + 30
    while engine.slot_table.busy():
        assert time.monotonic() < deadline, "a slot was never given back"
        time.sleep(0.02)


def test_deleting_a_chat_deletes_its_slot_files(runtime):
    kept = turn(runtime, "Keep this chat, please.")
    gone = turn(runtime, "Forget this chat entirely.")
    saved_slots_settle(engine_of(runtime))
    kv = runtime.settings.kv_dir
    kept_files = session_files(kv, kept.question.session_id)
    gone_files = session_files(kv, gone.question.session_id)
    assert [p.suffix for p in gone_files] == [".slot"]  # the chat's KV state, as llama-server saved it
    assert [p.suffix for p in kept_files] == [".slot"]

    data_dir = str(runtime.settings.data_dir)
    deleted = subprocess.run(
        [
            sys.executable,
            "launch.py",
            "sessions",
            "delete",
            gone.question.session_id,
            "--yes",
            "--data-dir",
            data_dir,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert deleted.returncode == 0, deleted.stderr
    assert not [p for p in gone_files if p.exists()]
    assert all(p.exists() for p in kept_files)  # another chat's state stays
    runtime.store.delete_session(kept.question.session_id)  # the page's path: the same store call
    assert not [p for p in kept_files if p.exists()]


def test_kill_9_mid_answer_stores_the_answer_so_far_and_the_next_turn_is_served(runtime):
    if runtime.models.loaded_engine(runtime.default_model) is None:  # the test runs alone
        turn(runtime, "Wake up.")
    engine = engine_of(runtime)
    streamed: list[str] = []

    def kill_after_some_text(text: str) -> None:
        streamed.append(text)
        if len(streamed) >= 3 and engine.process.alive():
            engine.process.kill()

    starts = engine.process.starts
    # Random weights that go on for ~1500 tokens after this prompt (most end far sooner).
    crashed = turn(runtime, "Keep this chat, please.", LONG, on_text=kill_after_some_text)

    assert crashed.final.finish_reason == "error" and crashed.final.error == CRASH_LINE
    stored = runtime.store.message(crashed.answer_id)
    assert stored.status == "error" and stored.error == CRASH_LINE  # marked as cut short
    assert stored.text == "".join(streamed) and stored.text  # the answer so far is kept
    follow_up = turn(
        runtime, "And then?", session_id=crashed.question.session_id, parent_id=crashed.answer_id
    )
    assert follow_up.final.error is None and follow_up.final.finish_reason in ("stop", "length")
    assert runtime.store.message(follow_up.answer_id).text
    assert engine.process.starts == starts + 1 and engine.process.alive()


def test_a_long_prompt_s_reading_is_reported_through_the_service(runtime):
    request = TurnRequest(
        runtime.default_model, ChatMessage.text("user", "Read all of this. " * 300), GREEDY, owner="ann"
    )
    events = list(runtime.service.respond(request, threading.Event()))
    read = [e for e in events if isinstance(e, PromptProgress) and e.done is not None]
    assert read and read[-1].done == read[-1].total > 900  # the server's own figures
    texts = [i for i, e in enumerate(events) if isinstance(e, TextDelta)]
    assert all(events.index(read[-1]) < i for i in texts)  # while the model reads, before it answers
    assert isinstance(events[-1], Answered) and events[-1].final.error is None
