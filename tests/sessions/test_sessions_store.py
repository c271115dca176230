"""The session store: sessions, the message tree, attachments, search, export/import,
streaming answers. Every test gets its own data dir."""

from __future__ import annotations

import json
import re

import pytest

from documents.parts import ChatMessage
from engine.types import Final, ImagePart, SamplingParams, TextPart, Usage
from errors import UserError
from sessions import MessageNotFound, SessionNotFound, Store, chat_messages
from sessions import answer as answer_module
from tests.conftest import png_bytes


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "data") as opened:
        yield opened


def image(color: str = "red", name: str = "photo.png", size: int = 40) -> ImagePart:
    return ImagePart(png_bytes(size, size, color), "image/png", name, size, size)


def user(text: str) -> ChatMessage:
    return ChatMessage.text("user", text)


def answer(store: Store, session_id: str, parent_id: int, text: str, reason: str = "stop") -> int:
    writer = store.start_answer(session_id, parent_id, "test-engine", {"temperature": 0.6})
    writer.append(text)
    writer.finish(Final(reason, Usage(prompt_tokens=5, completion_tokens=3, decode_tps=12.5)))
    return writer.id


def blob_files(store: Store) -> list[str]:
    return sorted(p.name for p in store.blobs.root.rglob("*") if p.is_file())


# Sessions


def test_sessions_list_newest_updated_first_with_counts(store):
    first = store.create_session("first")
    second = store.create_session("second")
    store.add_user_message(first, None, user("bump the first one"))
    listed = store.list_sessions()
    assert [row.id for row in listed] == [first, second]
    assert [row.message_count for row in listed] == [1, 0]
    assert [row.id for row in store.list_sessions(limit=1, offset=1)] == [second]


def test_rename_and_update_session(store):
    session_id = store.create_session(model="a", settings={"temperature": 0.2})
    store.rename_session(session_id, "Renamed")
    store.update_session(session_id, model="b", settings={"temperature": 0.9, "max_tokens": 64})
    row = store.get_session(session_id)
    assert (row.title, row.model, row.settings) == ("Renamed", "b", {"temperature": 0.9, "max_tokens": 64})


def test_unknown_session_is_a_one_line_input_error(store):
    with pytest.raises(SessionNotFound) as info:
        store.get_session("nope")
    assert isinstance(info.value, UserError)
    assert "\n" not in str(info.value)
    for call in (
        lambda: store.rename_session("nope", "x"),
        lambda: store.add_user_message("nope", None, user("hi")),
        lambda: store.start_answer("nope", None, "e", {}),
        lambda: store.delete_session("nope"),
    ):
        with pytest.raises(SessionNotFound):
            call()


def test_owner_filters_listing_and_search(store):
    mine = store.create_session("mine", owner="alice")
    theirs = store.create_session("theirs", owner="bob")
    anonymous = store.create_session("anonymous")
    for session_id in (mine, theirs, anonymous):
        store.add_user_message(session_id, None, user("shared walrus word"))
    assert [row.id for row in store.list_sessions(owner="alice")] == [mine]
    assert [row.id for row in store.list_sessions()] == [anonymous]
    assert [hit.session_id for hit in store.search("walrus", owner="bob")] == [theirs]


def test_auto_title_from_first_user_message(store):
    long_text = "  Describe   this\nlighthouse " + "in great detail " * 10
    session_id = store.create_session()
    store.add_user_message(session_id, None, user(long_text))
    title = store.get_session(session_id).title
    assert title.startswith("Describe this lighthouse in great detail")
    assert "\n" not in title and len(title) <= 61 and title.endswith("…")
    store.add_user_message(session_id, None, user("a later edit does not retitle"))
    assert store.get_session(session_id).title == title

    images_only = store.create_session()
    store.add_user_message(images_only, None, ChatMessage("user", (image(),)))
    assert store.get_session(images_only).title == "Image chat"

    named = store.create_session("Kept")
    store.add_user_message(named, None, user("other words"))
    assert store.get_session(named).title == "Kept"


# The message tree


def test_regenerate_and_edit_make_branches_and_old_ones_stay(store):
    session_id = store.create_session()
    question = store.add_user_message(session_id, None, user("question"))
    first_answer = answer(store, session_id, question, "first answer")
    regenerated = answer(store, session_id, question, "second answer")
    edited = store.add_user_message(session_id, None, user("edited question"))
    edited_answer = answer(store, session_id, edited, "answer to edit")

    assert [row.text for row in store.branch(session_id)] == ["edited question", "answer to edit"]
    assert [row.id for row in store.branch(session_id, first_answer)] == [question, first_answer]
    assert store.siblings(first_answer) == [first_answer, regenerated]
    assert store.siblings(question) == [question, edited]
    # Moving to the other user turn shows its newest conversation.
    assert store.latest_leaf(question) == regenerated
    assert [row.text for row in store.branch(session_id, store.latest_leaf(question))] == [
        "question",
        "second answer",
    ]
    assert store.latest_leaf(edited) == edited_answer
    assert len(store.all_messages(session_id)) == 5


def test_parent_must_belong_to_the_session(store):
    one, other = store.create_session(), store.create_session()
    foreign = store.add_user_message(one, None, user("hi"))
    with pytest.raises(MessageNotFound):
        store.add_user_message(other, foreign, user("hijack"))
    with pytest.raises(MessageNotFound):
        store.branch(other, foreign)
    with pytest.raises(MessageNotFound):
        store.siblings(12345)
    assert store.branch(other) == []


def test_part_order_and_image_metadata_round_trip(store):
    red, blue = image("red", "red.png", 30), image("blue", "blue.png", 50)
    parts = (
        red,
        TextPart("between"),
        blue,
        TextPart("after"),
        ImagePart(red.data, "image/png", "again.png", 30, 30),
    )
    session_id = store.create_session()
    message_id = store.add_user_message(session_id, None, ChatMessage("user", parts))
    row = store.message(message_id)
    assert row.parts == parts
    assert row.text == "between\nafter"
    assert [a.name for a in row.attachments] == ["red.png", "blue.png", "again.png"]
    assert chat_messages([row]) == [ChatMessage("user", parts)]


def test_chat_messages_skip_failed_answers(store):
    session_id = store.create_session()
    question = store.add_user_message(session_id, None, user("q"))
    writer = store.start_answer(session_id, question, "e", {})
    writer.finish(Final("error", error="out of memory"))
    follow_up = store.add_user_message(session_id, writer.id, user("again"))
    rows = store.branch(session_id, follow_up)
    assert [r.status for r in rows] == ["complete", "error", "complete"]
    assert rows[1].error == "out of memory"
    assert [m.plain_text for m in store.chat_messages(rows)] == ["q", "again"]


# Attachments


def test_same_image_stored_once_and_removed_only_when_unused(store):
    shared = image("green")
    first, second = store.create_session(), store.create_session()
    store.add_user_message(first, None, ChatMessage("user", (shared, TextPart("one"))))
    store.add_user_message(first, None, ChatMessage("user", (shared, image("black"))))
    store.add_user_message(second, None, ChatMessage("user", (TextPart("two"), shared)))
    assert len(blob_files(store)) == 2
    assert store.db["attachments"].count == 2

    store.delete_session(first)
    assert len(blob_files(store)) == 1, "the black image only first used is gone"
    assert store.message(store.branch(second)[0].id).parts[1] == shared

    store.delete_session(second)
    assert blob_files(store) == []
    for table in ("sessions", "messages", "attachments", "message_attachments"):
        assert store.db[table].count == 0, table
    assert store.search("one") == []


# Search


def test_search_finds_a_word_from_an_old_session(store):
    old = store.create_session("Old chat")
    question = store.add_user_message(old, None, user("Tell me about the zeppelin hangar in Friedrichshafen"))
    for index in range(30):
        newer = store.create_session()
        store.add_user_message(newer, None, user(f"unrelated chat number {index}"))
    hits = store.search("zeppelin")
    assert len(hits) == 1
    hit = hits[0]
    assert (hit.session_id, hit.message_id, hit.session_title) == (old, question, "Old chat")
    assert "**zeppelin**" in hit.snippet


def test_search_sees_streamed_answers_and_survives_fts_syntax(store):
    session_id = store.create_session()
    question = store.add_user_message(session_id, None, user("q"))
    answer(store, session_id, question, "the answer mentions quokkas")
    assert [hit.role for hit in store.search("quokkas")] == ["assistant"]
    for awkward in ('"unbalanced', "NOT", "a AND OR", "col:thing", "*"):
        store.search(awkward)  # no FTS syntax error reaches the caller
    assert store.search("   ") == []


# Export and import


def build_branchy_session(store: Store) -> str:
    session_id = store.create_session("Export me", model="tiny", settings={"temperature": 0.3})
    parts = (image("red", "a.png"), TextPart("compare with"), image("blue", "b.png"))
    question = store.add_user_message(session_id, None, ChatMessage("user", parts))
    answer(store, session_id, question, "red and blue")
    answer(store, session_id, question, "cut short", reason="length")
    store.add_user_message(
        session_id, None, ChatMessage("user", (TextPart("edited"), image("red", "again.png")))
    )
    return session_id


def test_json_export_imports_back_into_an_equal_session(store, tmp_path):
    original = build_branchy_session(store)
    exported = store.export_json(original)
    text = json.dumps(exported)
    assert len(exported["attachments"]) == 2, "each image once"

    with Store(tmp_path / "elsewhere") as other:
        copy = other.import_json(text, owner="carol")
        assert copy != original
        assert other.export_json(copy) == exported
        assert other.get_session(copy).owner == "carol"

        def content(rows):
            return [(r.role, r.parts, r.status, r.finish_reason, r.completion_tokens) for r in rows]

        assert content(other.all_messages(copy)) == content(store.all_messages(original))
        assert content(other.branch(copy)) == content(store.branch(original))
        assert len(other.siblings(other.branch(copy)[0].id)) == 2


def test_import_refuses_damaged_documents(store):
    exported = store.export_json(build_branchy_session(store))
    first_image = next(iter(exported["attachments"].values()))
    first_image["data"] = first_image["data"][:-8] + "AAAAAAA="
    with pytest.raises(UserError, match="damaged"):
        store.import_json(exported)
    exported = store.export_json(build_branchy_session(store))
    del exported["messages"][1]["role"]
    with pytest.raises(UserError, match="damaged"):
        store.import_json(exported)
    with pytest.raises(UserError, match="not a chat"):
        store.import_json('{"hello": 1}')
    with pytest.raises(UserError, match="not JSON"):
        store.import_json("{{{")


def test_markdown_export_writes_images_next_to_it(store, tmp_path):
    session_id = build_branchy_session(store)
    first_question = store.siblings(store.branch(session_id)[0].id)[0]
    path = store.export_markdown(session_id, tmp_path / "out", leaf_id=store.latest_leaf(first_question))
    text = path.read_text()
    assert path.name == "export-me.md" and text.startswith("# Export me")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 2
    for link in links:
        assert (path.parent / link).read_bytes().startswith(b"\x89PNG")
    assert "compare with" in text and "red and blue" not in text and "cut short" in text


# Streaming answers


def test_stream_flushes_are_visible_to_another_store_mid_stream(store):
    session_id = store.create_session()
    question = store.add_user_message(session_id, None, user("q"))
    writer = store.start_answer(session_id, question, "e", {})
    with Store(store.data_dir) as reader:
        for index in range(answer_module.FLUSH_EVERY_APPENDS - 1):
            writer.append(f"t{index} ")
        assert reader.message(writer.id).text == "", "no write before the 32nd append"
        writer.append("last ")
        seen = reader.message(writer.id)
        assert seen.status == "streaming"
        assert seen.text.startswith("t0 t1") and seen.text.endswith("last ")
    writer.finish(Final("cancelled"))
    assert store.message(writer.id).status == "cancelled"


def test_stream_flushes_after_half_a_second(tmp_path):
    now = [0.0]
    with Store(tmp_path) as store:
        session_id = store.create_session()
        question = store.add_user_message(session_id, None, user("q"))
        writer = store.start_answer(session_id, question, "e", {})
        writer._clock, writer._last_flush = (lambda: now[0]), 0.0  # a clock the test moves
        writer.append("early ")
        now[0] = 0.3
        writer.append("still buffered ")
        assert store.message(writer.id).text == ""
        now[0] = 0.6
        writer.append("now written")
        assert store.message(writer.id).text == "early still buffered now written"


@pytest.mark.parametrize(
    ("final", "status"),
    [
        (Final("stop"), "complete"),
        (Final("length"), "complete"),
        (Final("cancelled"), "cancelled"),
        (Final("error", error="engine fell over"), "error"),
    ],
)
def test_finish_records_status_and_metrics(store, final, status):
    session_id = store.create_session()
    question = store.add_user_message(session_id, None, user("q"))
    writer = store.start_answer(session_id, question, "llama-4-scout", {"temperature": 0.1})
    writer.append("partial")
    writer.finish(Final(final.finish_reason, Usage(7, 1, 0.25, 100.0, 20.0, 0.3), final.error))
    row = store.message(writer.id)
    assert (row.status, row.finish_reason, row.error) == (status, final.finish_reason, final.error)
    assert (row.prompt_tokens, row.completion_tokens, row.ttft_s, row.decode_tps) == (7, 1, 0.25, 20.0)
    assert (row.text, row.engine_id, row.params) == ("partial", "llama-4-scout", {"temperature": 0.1})
    with pytest.raises(RuntimeError):
        writer.append("more")


def test_sampling_params_are_stored_as_json(store):
    session_id = store.create_session()
    writer = store.start_answer(session_id, None, "e", SamplingParams(max_tokens=64, seed=3))
    writer.finish(Final("stop"))
    params = store.message(writer.id).params
    assert (params["max_tokens"], params["seed"], params["temperature"]) == (64, 3, 0.6)


def test_writer_as_context_manager_records_an_escaping_error(store):
    session_id = store.create_session()
    question = store.add_user_message(session_id, None, user("q"))
    with pytest.raises(OSError), store.start_answer(session_id, question, "e", {}) as writer:
        writer.append("half")
        raise OSError("disk\nfull")
    row = store.message(writer.id)
    assert (row.status, row.text, row.error) == ("error", "half", "disk full")


def test_reopening_marks_streams_of_dead_processes_interrupted(tmp_path):
    with Store(tmp_path) as store:
        session_id = store.create_session()
        question = store.add_user_message(session_id, None, user("q"))
        dead = store.start_answer(session_id, question, "e", {})
        dead.append("cut off")
        dead.flush()
        live = store.start_answer(session_id, question, "e", {})
        # A pid that cannot exist stands for the crashed process.
        store.db["messages"].update(dead.id, {"writer": "999999999:1"})
        with Store(tmp_path) as reopened:
            assert reopened.message(dead.id).status == "interrupted"
            assert reopened.message(dead.id).text == "cut off"
            assert reopened.message(live.id).status == "streaming", "this process is alive"
