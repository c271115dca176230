"""Real processes: one killed with SIGKILL mid-answer, several writing at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from documents.parts import ChatMessage
from sessions import Store
from sessions import connection as connection_module
from tests.conftest import REPO

# Streams an answer slowly, forever, announcing once some of it must be on disk.
STREAMER = """
import sys, time
from documents.parts import ChatMessage
from sessions import Store
from sessions.answer import FLUSH_EVERY_APPENDS

store = Store(sys.argv[1])
session_id = store.create_session()
question = store.add_user_message(session_id, None, ChatMessage.text("user", "tell me about lighthouses"))
writer = store.start_answer(session_id, question, "fake-engine", {"temperature": 0.6})
print(session_id, question, writer.id, flush=True)
count = 0
while True:
    writer.append(f"word{count} ")
    count += 1
    if count == FLUSH_EVERY_APPENDS + 1:
        print("flushed", flush=True)
    time.sleep(0.005)
"""

WRITER = """
import sys
from documents.parts import ChatMessage
from sessions import Store

store = Store(sys.argv[1])
session_id, tag, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # everyone starts writing at the same moment
for index in range(count):
    store.add_user_message(session_id, None, ChatMessage.text("user", f"{tag} {index}"))
"""


def python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_answer_keeps_the_turn_and_the_partial_answer(tmp_path):
    child = python(STREAMER, str(tmp_path))
    try:
        session_id, question, answer = child.stdout.readline().split()
        assert child.stdout.readline().strip() == "flushed"
        with Store(tmp_path) as watcher:
            # A live writer in another process is not mistaken for a crash.
            mid_stream = watcher.message(int(answer))
            assert mid_stream.status == "streaming" and mid_stream.text.startswith("word0 ")
            # Kill it once a second flush has landed (polling: busy machines are slow).
            deadline = time.monotonic() + 30
            while len(watcher.message(int(answer)).text.split()) <= 32 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    with Store(tmp_path) as store:
        rows = store.branch(session_id)
        assert [row.id for row in rows] == [int(question), int(answer)]
        assert rows[0].text == "tell me about lighthouses"
        assert rows[1].status == "interrupted"
        assert rows[1].text.startswith("word0 word1 ") and len(rows[1].text.split()) > 32
        assert [r["integrity_check"] for r in store.db.query("PRAGMA integrity_check")] == ["ok"]


def test_threads_and_processes_writing_at_once_lose_nothing(tmp_path):
    per_writer = 100
    go = threading.Event()
    with Store(tmp_path) as store:
        session_id = store.create_session("contended")

        def thread_writes(tag: str) -> None:
            with Store(tmp_path) as own:
                go.wait(30)
                for index in range(per_writer):
                    own.add_user_message(session_id, None, ChatMessage.text("user", f"{tag} {index}"))

        processes = [python(WRITER, str(tmp_path), session_id, f"proc{n}", str(per_writer)) for n in range(2)]
        threads = [threading.Thread(target=thread_writes, args=(f"thread{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        go.set()
        for thread in threads:
            thread.join(timeout=120)
        for process in processes:
            assert process.wait(timeout=120) == 0

        texts = {row.text for row in store.all_messages(session_id)}
        tags = [f"proc{n}" for n in range(2)] + [f"thread{n}" for n in range(4)]
        expected = {f"{tag} {index}" for tag in tags for index in range(per_writer)}
        assert texts == expected
        assert store.get_session(session_id).message_count == len(expected)


def test_processes_opening_a_new_data_dir_at_once_all_succeed(tmp_path):
    data_dir = tmp_path / "fresh"
    opener = "import sys\nfrom sessions import Store\nStore(sys.argv[1]).create_session()"
    processes = [python(opener, str(data_dir)) for _ in range(5)]
    assert [process.wait(timeout=60) for process in processes] == [0] * 5
    with Store(data_dir) as store:
        assert len(store.list_sessions()) == 5


def test_one_store_shared_by_threads(tmp_path):
    with Store(tmp_path) as store:
        session_id = store.create_session()

        def write(tag: str) -> None:
            for index in range(40):
                parent = store.add_user_message(session_id, None, ChatMessage.text("user", f"{tag} {index}"))
                writer = store.start_answer(session_id, parent, "e", {})
                writer.append("ok")
                writer.flush()
                store.branch(session_id, writer.id)

        threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert store.get_session(session_id).message_count == 4 * 40 * 2


def test_write_waits_out_a_lock_held_longer_than_the_busy_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(connection_module, "BUSY_TIMEOUT_S", 0.05)
    with Store(tmp_path) as store, Store(tmp_path) as holder:
        session_id = store.create_session()
        held = threading.Event()

        def hold_write_lock() -> None:
            def work() -> None:
                held.set()
                time.sleep(0.6)

            holder._conn.write(work)

        thread = threading.Thread(target=hold_write_lock)
        thread.start()
        held.wait(5)
        started = time.monotonic()
        store.add_user_message(session_id, None, ChatMessage.text("user", "waited"))
        assert time.monotonic() - started > 0.3, "the lock really was held"
        thread.join()
        assert store.branch(session_id)[0].text == "waited"


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="pid start times come from /proc")
def test_a_restarted_process_with_a_reused_pid_is_not_the_old_writer():
    pid, start = connection_module.process_identity().split(":")
    assert connection_module.writer_is_alive(f"{pid}:{start}")
    assert not connection_module.writer_is_alive(f"{pid}:{int(start) - 1}")
    assert not connection_module.writer_is_alive(None)
