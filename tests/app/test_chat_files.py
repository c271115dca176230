"""Export and import in the page (app/chat_files.py) on a real store: the CLI's JSON
(every branch) and Markdown (one branch, images beside it) come out, an export imports
back as an equal chat, and a damaged, too large or over-budget file is one line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.chat_files import import_file, json_file, markdown_files
from config import Settings
from documents.parts import ChatMessage
from engine.types import EngineInputError, Final, ImagePart, TextPart, Usage
from sessions import Store
from sessions.transfer import export_text
from tests.conftest import png_bytes


@pytest.fixture
def runtime(tmp_path):
    with Store(tmp_path / "data") as store:
        yield SimpleNamespace(store=store, settings=Settings())


def answer(store: Store, session_id: str, parent_id: int, text: str) -> int:
    writer = store.start_answer(session_id, parent_id, "test-engine")
    writer.append(text)
    writer.finish(Final("stop", Usage(prompt_tokens=5, completion_tokens=3)))
    return writer.id


def image(color: str) -> ImagePart:
    return ImagePart(png_bytes(30, 20, color), "image/png", f"{color}.png", 30, 20)


@pytest.fixture
def branched(runtime):
    """A chat whose question was edited: the old branch has an image, the new one not."""
    store = runtime.store
    chat = store.create_session(title="Colour quiz", model="smollm2-135m")
    old = store.add_user_message(chat, None, ChatMessage("user", (image("red"), TextPart("which colour?"))))
    old_answer = answer(store, chat, old, "red")
    edited = store.add_user_message(chat, None, ChatMessage.text("user", "which shade?"))
    answer(store, chat, edited, "crimson")
    return chat, old_answer


def test_json_is_the_clis_export_of_every_branch(runtime, branched):
    chat, _ = branched
    path = Path(json_file(runtime, chat))
    assert path.name == "colour-quiz.json"
    assert path.read_text(encoding="utf-8") == export_text(runtime.store.export_json(chat))
    texts = [m["parts"] for m in json.loads(path.read_text())["messages"]]
    assert len(texts) == 4  # both branches


def test_markdown_is_the_branch_on_screen_with_its_image_beside_it(runtime, branched):
    chat, old_answer = branched
    document, *beside = map(Path, markdown_files(runtime, chat, old_answer))
    text = document.read_text(encoding="utf-8")
    assert document.name == "colour-quiz.md" and "which colour?" in text and "crimson" not in text
    assert [p.suffix for p in beside] == [".png"] and beside[0].name in text
    newest, *nothing = map(Path, markdown_files(runtime, chat, None))
    assert "crimson" in newest.read_text(encoding="utf-8") and nothing == []


def test_an_export_imports_back_as_an_equal_chat_of_its_owner(runtime, branched):
    chat, _ = branched
    new_id = import_file(runtime, json_file(runtime, chat), owner="ann")
    store = runtime.store
    assert new_id != chat and store.get_session(new_id).owner == "ann"
    assert [m.text for m in store.all_messages(new_id)] == [m.text for m in store.all_messages(chat)]
    assert store.get_session(new_id).title == "Colour quiz"


def test_bad_files_are_one_line_and_import_nothing(runtime, branched, tmp_path):
    chat, _ = branched
    before = len(runtime.store.list_sessions())
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json_file_text(runtime, chat)[:-200])
    with pytest.raises(EngineInputError, match="not a chat export") as refused:
        import_file(runtime, str(damaged), owner="")
    assert "\n" not in str(refused.value)

    runtime.settings = Settings(max_file_mb=1)
    large = tmp_path / "large.json"
    large.write_bytes(b" " * (1024 * 1024 + 1))
    with pytest.raises(EngineInputError, match=r"large\.json is too large to import"):
        import_file(runtime, str(large), owner="")

    runtime.settings = Settings(max_request_pixels=100)  # the image has 600
    with pytest.raises(EngineInputError, match="pixels") as over:
        import_file(runtime, json_file(runtime, chat), owner="")
    assert "\n" not in str(over.value)
    assert len(runtime.store.list_sessions()) == before


def json_file_text(runtime, chat: str) -> str:
    return Path(json_file(runtime, chat)).read_text(encoding="utf-8")


def test_old_export_folders_are_removed_by_the_next_export(runtime, branched):
    chat, _ = branched
    old = Path(json_file(runtime, chat)).parent
    hour_ago = time.time() - 3601
    os.utime(old, (hour_ago, hour_ago))
    fresh = Path(json_file(runtime, chat)).parent
    assert not old.exists() and fresh.is_dir()
