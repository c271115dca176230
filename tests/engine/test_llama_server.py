"""Local GGUF through a llama-server child on the tiny Llama 4:
many users at once, a crash mid-answer, Stop, images, a load that runs out of memory.
Random weights: answers are compared with each other, never with wording."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from config import Settings
from engine import Final, Message, PromptProgress, SamplingParams, TextDelta
from engine.llama_server import CRASH_LINE, LlamaServerEngine
from engine.server_process import server_binary
from engine.types import EngineInputError, EngineLoadError
from models.catalogue import user_model
from models.engines import engine_for
from tests.engine.test_engine_vision import image, user

pytestmark = pytest.mark.skipif(server_binary() is None, reason="llama-server is not built (make setup)")

GREEDY = SamplingParams(temperature=0, max_tokens=24)
QUESTIONS = [f"Question {i}: what comes after {i * 7}?" for i in range(8)]
# Greedy, the tiny model's random weights answer this to max_tokens (4000): a kill
# always lands mid-answer ("Write a very long story." ends after ~410 tokens, which
# an idle machine streams before the test's kill).
ENDLESS = "Keep this chat, please."


@pytest.fixture(scope="module")
def server_engine(tiny_llama4, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    settings = Settings(local_slots=8, data_dir=data, n_threads=1)
    engine = engine_for(user_model(*tiny_llama4), settings)
    assert isinstance(engine, LlamaServerEngine)
    engine.load()
    yield engine
    engine.unload()


def answer(engine, messages, params=GREEDY, cancel=None) -> tuple[str, Final]:
    text, final = "", None
    for event in engine.stream(messages, params, cancel):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Final):
            final = event
    return text, final


def slots(engine) -> list[dict]:
    request = urllib.request.Request(
        f"{engine.process.url}/slots", headers={"Authorization": f"Bearer {engine.process.key}"}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.load(reply)


def test_eight_users_at_once_get_the_answers_each_gets_alone(server_engine):
    alone = [answer(server_engine, [Message.text("user", q)]) for q in QUESTIONS]
    with concurrent.futures.ThreadPoolExecutor(len(QUESTIONS)) as pool:
        together = list(pool.map(lambda q: answer(server_engine, [Message.text("user", q)]), QUESTIONS))
    for (text_alone, final_alone), (text_together, final_together) in zip(alone, together, strict=True):
        assert final_alone.error is None and final_together.error is None
        assert final_together.finish_reason in ("stop", "length")
        assert text_together == text_alone
    assert len({text for text, _ in alone}) > 1  # the questions do get different answers


def test_the_server_holds_the_slots_and_context_it_was_given(server_engine):
    held = slots(server_engine)
    assert len(held) == 8
    assert all(slot["n_ctx"] == server_engine.spec.n_ctx for slot in held)


def test_a_follow_up_turn_reuses_the_first_turns_prompt(server_engine):
    first = [Message.text("user", "Tell me about lighthouses and the sea. " * 20)]
    text, final = answer(server_engine, first)
    follow = [*first, Message.text("assistant", text), Message.text("user", "And then?")]
    _, again = answer(server_engine, follow)
    assert again.usage.cached_tokens >= final.usage.prompt_tokens - 1


def test_the_prompt_reading_is_reported_with_the_servers_figures(server_engine):
    events = list(server_engine.stream([Message.text("user", "Read all of this. " * 300)], GREEDY))
    read = [e for e in events if isinstance(e, PromptProgress) and e.done is not None]
    assert read and read[-1].done == read[-1].total > 900


def stop_mid_answer(engine) -> float:
    """Seconds from Stop until no slot of the server is generating (its own /slots)."""
    cancel = threading.Event()
    long = replace(GREEDY, max_tokens=4000)
    events = engine.stream([Message.text("user", "Keep this chat, please.")], long, cancel)
    for event in events:
        if isinstance(event, TextDelta):
            break
    assert any(slot["is_processing"] for slot in slots(engine))  # still generating
    stopped = time.perf_counter()
    cancel.set()
    final = next(e for e in events if isinstance(e, Final))
    assert final.finish_reason == "cancelled"
    while any(slot["is_processing"] for slot in slots(engine)):
        assert time.perf_counter() - stopped < 10, "a slot still generates after Stop"
        time.sleep(0.01)
    return time.perf_counter() - stopped


def test_stop_ends_the_answer_and_frees_the_slot_at_once(server_engine):
    # Closing the stream's connection stops the server's task. The fastest of three
    # stops: other programs on a loaded 2-core machine can delay any one of them.
    freed_s = min(stop_mid_answer(server_engine) for _ in range(3))
    assert freed_s < 0.5, f"the slot was freed {freed_s:.2f} s after Stop at best"
    assert max(decoded(slot) for slot in slots(server_engine)) < 4000


def decoded(slot: dict) -> int:
    """Tokens the slot generated for its last task."""
    state = slot.get("next_token") or {}
    state = state[0] if isinstance(state, list) else state
    return int(state.get("n_decoded", 0))


def test_kill_9_mid_answer_keeps_the_partial_answer_and_restarts(server_engine):
    long = replace(GREEDY, max_tokens=4000)
    events = server_engine.stream([Message.text("user", ENDLESS)], long)
    partial = ""
    for event in events:
        if isinstance(event, TextDelta):
            partial += event.text
            if len(partial) > 10:
                break
    starts = server_engine.process.starts
    server_engine.process.kill()
    rest = list(events)
    final = rest[-1]
    assert isinstance(final, Final) and final.finish_reason == "error" and final.error == CRASH_LINE
    assert partial  # what was streamed stays the caller's
    text, after = answer(server_engine, [Message.text("user", QUESTIONS[0])])
    assert after.error is None and text
    assert server_engine.process.starts == starts + 1 and server_engine.process.alive()


def test_images_reach_the_server_and_cost_what_in_process_counts(server_engine, tiny_in_process):
    for parts in ((image(56, 56), "what is this?"), ("compare", image(200, 200), image(56, 56, "blue"), "!")):
        messages = [user(*parts)]
        _, final = answer(server_engine, messages)
        assert final.error is None
        # The same patched mtmd lays the image out the same way in both engines.
        assert final.usage.prompt_tokens == tiny_in_process.count_tokens(messages)
        assert 0 < final.usage.decode_tps < 100_000  # the server's own rate, not chunk arrival


def test_unload_stops_the_child(tiny_llama4, tmp_path):
    settings = Settings(local_slots=1, data_dir=tmp_path)
    engine = engine_for(user_model(tiny_llama4[0]), settings)
    engine.load()
    child = engine.process._child
    assert engine.process.alive()
    engine.unload()
    assert child.poll() is not None and not engine.loaded
    assert (tmp_path / "logs" / f"llama-server-{engine.name}.log").stat().st_size > 0


def test_out_of_memory_at_load_is_one_line_with_needed_and_free(tiny_llama4, tmp_path):
    # 64 slots of 2^20 positions: a KV cache of ~32 GB, in a child allowed 4 GB (capped,
    # so that the allocation fails inside llama.cpp, never the machine's OOM killer).
    spec = replace(user_model(tiny_llama4[0]), n_ctx=2**20)
    engine = LlamaServerEngine(spec, log_dir=tmp_path, slots=64, address_space=4 * 2**30)
    with pytest.raises(EngineLoadError) as error:
        engine.load()
    line = str(error.value)
    assert "\n" not in line and line.startswith("not enough memory to load")
    assert "GB of RAM" in line and "needs about" in line
    assert not engine.process.alive()


def test_a_missing_binary_is_one_line(tiny_llama4, tmp_path, monkeypatch):
    monkeypatch.setenv("L4P_LLAMA_SERVER", str(tmp_path / "none"))
    engine = LlamaServerEngine(user_model(tiny_llama4[0]), log_dir=tmp_path)
    with pytest.raises(EngineLoadError, match="llama-server is not installed"):
        engine.load()


CHILD_OWNER = """
import sys, threading, time
from pathlib import Path
from engine.llama_server import LlamaServerEngine
from models.catalogue import user_model

engine = LlamaServerEngine(user_model(Path(sys.argv[1])), log_dir=Path(sys.argv[2]), slots=1)
loader = threading.Thread(target=engine.load)  # loads run on worker threads that end
loader.start()
loader.join()
time.sleep(0.5)
print(engine.process.pid, engine.process.alive(), flush=True)
time.sleep(600)
"""


def test_the_child_outlives_the_loading_thread_but_not_the_playground(tiny_llama4, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    owner = subprocess.Popen(
        [sys.executable, "-c", CHILD_OWNER, str(tiny_llama4[0]), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    pid, alive = owner.stdout.readline().split()
    assert alive == "True"  # the thread that loaded it has ended; the child has not
    owner.send_signal(signal.SIGKILL)  # no atexit runs
    owner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(int(pid), signal.SIGKILL)
    raise AssertionError("llama-server outlived the process that started it")


def test_a_turn_counts_its_prompt_here_exactly_as_the_server_reads_it(server_engine, monkeypatch):
    asked = []
    count_on_server = server_engine._count_on_server
    monkeypatch.setattr(
        server_engine, "_count_on_server", lambda wire: asked.append(wire) or count_on_server(wire)
    )
    conversations = [
        [Message.text("user", f"Count me, at {time.time_ns()}.")],
        [
            Message.text("system", "You are terse. <|eot|> is not a turn's end here."),
            Message.text("user", "Hello there, émigré 🦙!"),
            Message.text("assistant", "Hi."),
            Message.text("user", "Again,\n\twith spaces   and a tab."),
        ],
    ]
    for messages in conversations:
        counted = server_engine.count_tokens(messages)  # fitting the context
        _, final = answer(server_engine, messages)  # then the same prompt streams
        assert counted == final.usage.prompt_tokens  # what the server says it read
    assert not asked  # no round trip to a server busy decoding for others
    assert server_engine._local_counter.agrees


def test_a_count_here_that_the_server_contradicts_hands_counting_to_the_server(
    tiny_llama4, tmp_path, monkeypatch
):
    settings = Settings(local_slots=1, data_dir=tmp_path, n_threads=1)
    engine = engine_for(user_model(tiny_llama4[0]), settings)
    engine.load()
    try:
        from engine import llamacpp

        counter, tokens = engine._local_counter, llamacpp.prompt_tokens
        monkeypatch.setattr(llamacpp, "prompt_tokens", lambda llm, text: [*tokens(llm, text), 0])
        messages = [Message.text("user", "Count me twice.")]
        assert engine.count_tokens(messages) == answer(engine, messages)[1].usage.prompt_tokens + 1
        assert not counter.agrees
        # From now on the server counts, exactly.
        assert engine.count_tokens(messages) == answer(engine, messages)[1].usage.prompt_tokens
    finally:
        engine.unload()


def test_a_saved_chat_s_follow_up_after_a_reload_reads_only_its_new_tokens(tiny_llama4, tmp_path):
    settings = Settings(local_slots=2, data_dir=tmp_path, n_threads=1)
    spec = user_model(*tiny_llama4)
    first = [Message.text("user", "Tell me about lighthouses and the sea. " * 20)]

    def turn(messages, session_key):
        engine = engine_for(spec, settings)
        engine.load()
        try:
            text, final = "", None
            for event in engine.stream(messages, GREEDY, session_key=session_key, cache_scope="ann"):
                text += event.text if isinstance(event, TextDelta) else ""
                final = event if isinstance(event, Final) else final
            deadline = time.monotonic() + 10
            while engine.slot_table.busy() and time.monotonic() < deadline:
                time.sleep(0.02)  # the slot is saved on a thread after the answer
            return text, final
        finally:
            engine.unload()

    text, opened = turn(first, "chat-1")
    assert list(tmp_path.glob("kv/*.slot")), "the slot was not saved"
    follow = [*first, Message.text("assistant", text), Message.text("user", "And then?")]
    restored_text, restored = turn(follow, "chat-1")  # a new child: only the saved file knows
    cold_text, cold = turn(follow, "chat-2")  # the same conversation, nothing saved for it
    assert restored.usage.cached_tokens >= opened.usage.prompt_tokens - 1
    assert not cold.usage.cached_tokens
    assert restored_text == cold_text  # greedy: the restored state is the one computed afresh


def stream_until_killed(engine, kill) -> tuple[str, Final]:
    """A long answer, `kill` called once some text came; (text before the kill, final)."""
    long = replace(GREEDY, max_tokens=4000)
    partial, final, killed = "", None, False
    for event in engine.stream([Message.text("user", ENDLESS)], long):
        if isinstance(event, TextDelta) and not killed:
            partial += event.text
            if len(partial) > 10:
                kill()
                killed = True
        final = event if isinstance(event, Final) else final
    return partial, final


def test_a_killed_child_slow_to_exit_is_still_a_crash_and_is_restarted(server_engine, monkeypatch):
    """On a loaded machine a child killed with -9 went on looking alive for over a second
    after its stream broke: the answer still ends with the crash line, and the next
    request is served by a restarted child."""
    process, killed_at = server_engine.process, []
    real_alive = process.alive
    monkeypatch.setattr(
        process, "alive", lambda: real_alive() or bool(killed_at and time.monotonic() < killed_at[0] + 2.5)
    )
    starts = process.starts
    partial, final = stream_until_killed(
        server_engine, lambda: (process.kill(), killed_at.append(time.monotonic()))
    )
    assert partial and final.finish_reason == "error" and final.error == CRASH_LINE
    text, after = answer(server_engine, [Message.text("user", QUESTIONS[2])])
    assert after.error is None and text
    assert process.starts == starts + 1 and real_alive()


def test_a_child_hung_while_saving_a_chat_gives_the_slot_back_within_the_bound(server_engine, monkeypatch):
    """A child that stops answering (here SIGSTOP) while a chat's slot is being saved:
    the save gives up after CONTROL_TIMEOUT_S and the slot is free again, not held for
    the 10 minutes an answer may take to start."""
    import os
    import signal

    from engine import llama_server

    monkeypatch.setattr(llama_server, "CONTROL_TIMEOUT_S", 1.0)
    table, pid = server_engine.slot_table, None
    events = server_engine.stream(
        [Message.text("user", QUESTIONS[3])], GREEDY, session_key="chat-hung", cache_scope="ann"
    )
    try:
        for event in events:
            if isinstance(event, Final):
                assert event.error is None
                pid = server_engine.process.pid
                os.kill(pid, signal.SIGSTOP)  # before the save: it starts as the stream ends
        deadline = time.monotonic() + 15
        while any(table._busy) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(table._busy), "a slot stayed taken by a save to a hung child"
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
    text, after = answer(server_engine, [Message.text("user", QUESTIONS[4])])
    assert after.error is None and text


def test_a_restart_that_runs_out_of_memory_is_one_line_and_a_later_one_serves(server_engine, monkeypatch):
    """The child died, and memory ran short meanwhile: the request that finds it down
    gets the out-of-memory line (needed against free), not a traceback or a wait; once
    memory is back the next request restarts it."""
    process = server_engine.process
    # As at load: a KV cache of ~32 GB in a child allowed 4 GB (the allocation fails
    # inside llama.cpp, never the machine's OOM killer).
    huge = list(process.args)
    huge[huge.index("--ctx-size") + 1] = str(2**26)
    process.kill()
    with monkeypatch.context() as short:
        short.setattr(process, "args", huge)
        short.setattr(process, "address_space", 4 * 2**30)
        with pytest.raises(EngineInputError) as error:
            answer(server_engine, [Message.text("user", QUESTIONS[5])])
    line = str(error.value)
    assert "\n" not in line and line.startswith("not enough memory to load")
    assert "GB of RAM" in line and "is free" in line and not process.alive()
    text, final = answer(server_engine, [Message.text("user", QUESTIONS[6])])
    assert final.error is None and text and process.alive()


def test_two_answers_in_flight_when_the_child_dies_both_end_in_one_line_and_free_their_slots(server_engine):
    process, starts = server_engine.process, server_engine.process.starts
    both_streaming = threading.Barrier(3)

    def one() -> tuple[str, Final]:
        return stream_until_killed(server_engine, lambda: both_streaming.wait(60))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = [pool.submit(one) for _ in range(2)]
        both_streaming.wait(60)  # both have text: kill the child under them
        process.kill()
        results = [a.result(timeout=120) for a in answers]
    assert all(text and final.error == CRASH_LINE for text, final in results)
    assert not any(server_engine.slot_table._busy)  # no slot left taken by a dead answer
    text, after = answer(server_engine, [Message.text("user", QUESTIONS[7])])
    assert after.error is None and text
    assert process.starts == starts + 1  # two broken streams, one restart
