"""Saved chats from the command line: `ask` saves and continues sessions, `sessions ...`
lists, shows, searches, exports, imports and deletes them. Real subprocesses, each
test with its own data dir (the two-turn chat is made once and only read)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import interrupt_long_answer
from tests.conftest import REPO

FIRST = "What is the capital of France?"
SECOND = "And of Japan?"


def cli(
    data_dir: Path, *args: str, cwd: Path = REPO, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args, "--data-dir", str(data_dir)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def chat(tmp_path_factory) -> dict:
    """France, then Japan in the same session, greedy so the answers are stable. The
    Japan turn is also asked once without saving, which neither reads nor writes the
    chat's KV state: a cold prefill to compare the restored one with."""
    data = tmp_path_factory.mktemp("chat-data")
    first = last_json(ok(cli(data, "ask", "--json", "--temperature", "0", FIRST)))
    follow_up = ("ask", "--json", "--temperature", "0", "--session", first["session_id"], SECOND)
    cold = last_json(ok(cli(data, *follow_up, "--no-save")))
    second = last_json(ok(cli(data, *follow_up)))
    return {"data": data, "id": first["session_id"], "first": first, "second": second, "cold": cold}


def show_json(data: Path, session_id: str) -> dict:
    return json.loads(ok(cli(data, "sessions", "show", session_id, "--json")))


def test_ask_saves_a_session_and_continues_it(chat):
    first, second = chat["first"], chat["second"]
    assert "Paris" in first["text"]
    assert "Tokyo" in second["text"]  # the second answer saw the first turn
    assert second["session_id"] == first["session_id"] == chat["id"]
    assert (first["user_message_id"], first["answer_message_id"]) == (1, 2)
    assert (second["user_message_id"], second["answer_message_id"]) == (3, 4)

    shown = show_json(chat["data"], chat["id"])
    assert shown["session"]["title"] == FIRST and shown["session"]["model"] == "smollm2-135m"
    # The settings are kept under the names the UI restores when the chat is opened there.
    assert {"system", "temperature", "top_p", "max_tokens"} <= shown["session"]["settings"].keys()
    assert shown["session"]["settings"]["temperature"] == 0
    messages = shown["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [m["text"] for m in messages] == [FIRST, first["text"], SECOND, second["text"]]
    assert [m["parent_id"] for m in messages] == [None, 1, 2, 3]
    assert {m["status"] for m in messages} == {"complete"}
    assert messages[3]["completion_tokens"] == second["completion_tokens"]


def test_a_new_process_continues_from_the_saved_kv_state(chat):
    first, second, cold = chat["first"], chat["second"], chat["cold"]
    assert first["cached_tokens"] == 0 and cold["cached_tokens"] == 0
    # The first turn (its prompt and its answer) came back from disk in the new
    # process's llama-server; only the question was new.
    assert second["cached_tokens"] >= first["prompt_tokens"]
    assert second["prompt_tokens"] - second["cached_tokens"] < 40
    assert second["prompt_tokens"] == cold["prompt_tokens"]  # the same conversation, read whole
    # Not held to the cold read's words: the restored KV holds the first answer as it was
    # decoded (tests/engine/test_kv_reuse.py says why). The embedded model still knows.
    assert "Tokyo" in second["text"] and "Tokyo" in cold["text"]
    assert len(list((chat["data"] / "kv").glob("*.slot"))) == 1


def test_show_prints_a_transcript_with_metrics(chat):
    out = ok(cli(chat["data"], "sessions", "show", chat["id"]))
    lines = out.splitlines()
    assert lines[0] == FIRST and lines[1].startswith(f"session {chat['id']} · smollm2-135m")
    assert out.index(f"user: {FIRST}") < out.index(f"user: {SECOND}") < out.index("Tokyo")
    metrics = [line for line in lines if line.startswith("  [")]
    # The one metrics format of the page, after the model: ... tokens · why it stopped.
    ending = re.compile(r" tokens/s · \d+ \+ \d+ tokens · (cached [\d,]+ / new [\d,]+ · )?(stop|length)\]$")
    assert len(metrics) == 2 and all(ending.search(line) for line in metrics), out
    assert metrics[0].startswith("  [smollm2-135m · first token after ") and " · 28 + " in metrics[0]


def test_list_newest_first_with_counts(chat, tmp_path):
    out = ok(cli(chat["data"], "sessions", "list"))
    header, row = out.splitlines()
    assert header.split() == ["ID", "UPDATED", "MODEL", "MSGS", "TITLE"]
    assert row.startswith(chat["id"]) and "smollm2-135m" in row and row.endswith(f" 4  {FIRST}")
    rows = [json.loads(line) for line in ok(cli(chat["data"], "sessions", "list", "--json")).splitlines()]
    assert [(r["id"], r["message_count"], r["title"]) for r in rows] == [(chat["id"], 4, FIRST)]

    # --data-dir before the subcommand counts too (not reset by the subcommand's default).
    before = [sys.executable, "launch.py", "--data-dir", str(chat["data"]), "sessions", "list", "--json"]
    assert chat["id"] in ok(subprocess.run(before, cwd=REPO, capture_output=True, text=True, timeout=60))

    empty = cli(tmp_path, "sessions", "list")
    assert ok(empty) == "" and "No saved chats" in empty.stderr


def test_search_finds_the_session(chat):
    out = ok(cli(chat["data"], "sessions", "search", "France"))
    lines = out.splitlines()
    assert lines and all(line.startswith(f"{chat['id']}  {FIRST}  ") for line in lines)
    assert "user: What is the capital of **France**?" in out
    hits = [
        json.loads(line)
        for line in ok(cli(chat["data"], "sessions", "search", "Japan", "--json")).splitlines()
    ]
    assert {hit["session_id"] for hit in hits} == {chat["id"]}
    assert {hit["role"] for hit in hits} == {"user", "assistant"}

    none = cli(chat["data"], "sessions", "search", "zebra")
    assert ok(none) == "" and "No saved message matches" in none.stderr


def test_export_json_then_import_shows_the_same_chat(chat, tmp_path):
    exported = tmp_path / "chat.json"
    assert ok(
        cli(chat["data"], "sessions", "export", chat["id"], "--format", "json", "--out", str(exported))
    ).strip() == str(exported)
    assert json.loads(exported.read_text())["format"] == "llama4-playground/session"
    to_stdout = ok(cli(chat["data"], "sessions", "export", chat["id"], "--format", "json"))
    assert json.loads(to_stdout) == json.loads(exported.read_text())

    other = tmp_path / "other-data"
    new_id = ok(cli(other, "sessions", "import", str(exported))).strip()
    assert new_id and new_id != chat["id"]
    original = ok(cli(chat["data"], "sessions", "show", chat["id"]))
    copy = ok(cli(other, "sessions", "show", new_id))
    assert copy == original.replace(chat["id"], new_id)
    original_json, copy_json = show_json(chat["data"], chat["id"]), show_json(other, new_id)
    assert copy_json["messages"] == original_json["messages"]  # ids restart at 1 in a fresh store


def test_export_markdown_writes_the_file(chat, tmp_path):
    out = ok(cli(chat["data"], "sessions", "export", chat["id"], "--format", "md", "--out", str(tmp_path)))
    path = Path(out.strip())
    assert path.parent == tmp_path and path.suffix == ".md"
    text = path.read_text()
    assert f"# {FIRST}" in text and SECOND in text and "Tokyo" in text

    here = tmp_path / "here"
    here.mkdir()
    written = ok(cli(chat["data"], "sessions", "export", chat["id"], "--format", "md", cwd=here))
    assert Path(written.strip()) == here / path.name  # default: the current directory


def test_delete_needs_yes_without_a_terminal(chat, tmp_path):
    exported = ok(cli(chat["data"], "sessions", "export", chat["id"]))
    session_id = ok(cli(tmp_path, "sessions", "import", "-", input=exported)).strip()

    refused = cli(tmp_path, "sessions", "delete", session_id, stdin=subprocess.DEVNULL)
    assert "--yes" in one_error_line(refused)
    assert session_id in ok(cli(tmp_path, "sessions", "list"))

    ok(cli(tmp_path, "sessions", "delete", session_id, "--yes"))
    assert session_id not in ok(cli(tmp_path, "sessions", "list"))
    assert "No saved chat" in one_error_line(cli(tmp_path, "sessions", "show", session_id))


def test_delete_asks_on_a_terminal(chat, tmp_path):
    exported = tmp_path / "chat.json"
    ok(cli(chat["data"], "sessions", "export", chat["id"], "--out", str(exported)))
    session_id = ok(cli(tmp_path, "sessions", "import", str(exported))).strip()

    def delete_answering(reply: str) -> subprocess.CompletedProcess:
        leader, follower = pty.openpty()
        try:
            os.write(leader, reply.encode() + b"\n")
            return cli(tmp_path, "sessions", "delete", session_id, stdin=follower)
        finally:
            os.close(leader)
            os.close(follower)

    declined = delete_answering("n")
    assert declined.returncode == 1 and declined.stdout == ""
    assert f"Delete {FIRST!r} (4 messages)? [y/N] Not deleted." in declined.stderr
    assert session_id in ok(cli(tmp_path, "sessions", "list"))
    ok(delete_answering("y"))
    assert session_id not in ok(cli(tmp_path, "sessions", "list"))


def test_ask_no_save_keeps_nothing(tmp_path):
    summary = last_json(ok(cli(tmp_path, "ask", "--json", "--no-save", "--max-tokens", "4", "Hello")))
    assert summary["session_id"] is None and summary["answer_message_id"] is None
    assert ok(cli(tmp_path, "sessions", "list", "--json")) == ""


def test_image_turn_is_saved_and_a_text_model_refuses_to_continue(tmp_path, tiny_llama4, write_png):
    model, mmproj = tiny_llama4
    image = write_png("a.png")
    vision = ["--model-path", str(model), "--mmproj", str(mmproj), "--max-tokens", "4"]
    summary = last_json(ok(cli(tmp_path, "ask", *vision, "--json", "--image", str(image), "describe")))
    out = ok(cli(tmp_path, "sessions", "show", summary["session_id"]))
    assert "user: [image a.png 56x56] describe" in out and "tiny-llama4 · " in out

    # The stored branch has an image: the text-only default model refuses before saving anything.
    refused = cli(tmp_path, "ask", "--session", summary["session_id"], "and now?")
    assert "cannot see images" in one_error_line(refused)
    assert show_json(tmp_path, summary["session_id"])["session"]["message_count"] == 2

    export = ["sessions", "export", summary["session_id"], "--format", "md", "--out", str(tmp_path / "md")]
    md = Path(ok(cli(tmp_path, *export)).strip())
    image_file = next(md.parent.glob("*.png"))
    assert image_file.read_bytes() == image.read_bytes() and f"]({image_file.name})" in md.read_text()


def test_ctrl_c_stores_the_answer_as_cancelled(tmp_path):
    summary = interrupt_long_answer("--data-dir", str(tmp_path))
    answer = show_json(tmp_path, summary["session_id"])["messages"][-1]
    assert answer["id"] == summary["answer_message_id"]
    assert (answer["status"], answer["finish_reason"]) == ("cancelled", "cancelled")
    assert answer["text"] == summary["text"] and answer["completion_tokens"] < 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sessions", "show", "nope"], "No saved chat with id 'nope'"),
        (["sessions", "export", "nope", "--format", "md"], "No saved chat with id 'nope'"),
        (["sessions", "delete", "nope", "--yes"], "No saved chat with id 'nope'"),
        (["ask", "--session", "nope", "hi"], "No saved chat with id 'nope'"),
        (["sessions", "export", "nope", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["sessions", "import", "/nonexistent/chat.json"], "cannot read /nonexistent/chat.json"),
        (["sessions", "import", "launch.py"], "not a chat export"),
        (["sessions", "import", "pyproject.toml"], "not a chat export"),
        (["sessions", "list", "--limit", "0"], "--limit must be at least 1"),
        (["sessions"], "choose a sessions command"),
        (["sessions", "frob"], "invalid choice: 'frob'"),
    ],
    ids=[
        "show",
        "export",
        "delete",
        "ask",
        "format",
        "missing-file",
        "not-json",
        "not-export",
        "limit",
        "no-command",
        "unknown-command",
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    assert message in one_error_line(cli(tmp_path, *args))


def test_import_of_another_json_file_is_refused(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"hello": "world"}')
    assert "not a chat exported from the playground" in one_error_line(
        cli(tmp_path, "sessions", "import", str(other))
    )
