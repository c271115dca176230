"""The one codec for message parts: every part kind goes into the store and the JSON
export and comes back equal; `sessions show` prints a chat with a PDF."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from documents.parts import ChatMessage, DocumentPart
from engine.types import ImagePart, TextPart
from sessions import Store
from sessions.parts import decode_parts, describe_part, encode_part, encode_parts, part_kind
from tests.conftest import REPO, png_bytes
from tests.fixtures.documents import text_pdf

PAGES = ["The turbine inspection found seven cracked blades.", "Training went as planned."]


def a_message(store: Store) -> ChatMessage:
    doc = store.ingest_document(text_pdf(PAGES), "report.pdf")
    return ChatMessage(
        "user",
        (
            DocumentPart(doc.sha256, "report.pdf", 2, text_pages=(1,), image_pages=(2,)),
            TextPart("compare "),
            ImagePart(png_bytes(56, 56, "red"), "image/png", "a.png", 56, 56),
            TextPart(" with "),
            ImagePart(png_bytes(64, 32, "blue"), "image/png", "b.png", 64, 32),
        ),
    )


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "data") as opened:
        yield opened


def test_every_part_kind_round_trips_through_the_codec():
    image = ImagePart(png_bytes(), "image/png", "x.png", 56, 56)
    parts = (TextPart("hi"), image, DocumentPart("ab" * 32, "r.pdf", 9, (1, 2), (5,)))
    text, encoded = encode_parts(parts)
    assert text == "hi"
    records = json.loads(encoded)
    assert [part_kind(r) for r in records] == ["text", "image", "document"]
    assert decode_parts(encoded, lambda position, record: image) == parts
    assert records[1] == encode_part(image) == {"image": records[1]["image"], "name": "x.png"}
    with pytest.raises(ValueError, match="unknown message part"):
        part_kind({"video": "x"})


def test_every_part_kind_round_trips_through_the_store_and_the_export(store):
    message = a_message(store)
    session = store.create_session(model="m")
    message_id = store.add_user_message(session, None, message)
    assert store.message(message_id).parts == message.parts

    copy = store.import_json(json.dumps(store.export_json(session)).encode())
    (row,) = store.branch(copy)
    assert row.parts == message.parts  # names, bytes, sizes and pages all came back
    assert [describe_part(p) for p in row.parts[::2]] == [
        "[document report.pdf, 2 pages; sent p. 1–2]",
        "[image a.png 56x56]",
        "[image b.png 64x32]",
    ]


def test_sessions_show_prints_a_chat_with_a_pdf(tmp_path):
    with Store(tmp_path) as store:
        session = store.create_session(model="m")
        store.add_user_message(session, None, a_message(store))

    def show(*extra: str) -> str:
        command = [sys.executable, "launch.py", "sessions", "show", session, "--data-dir", str(tmp_path)]
        result = subprocess.run([*command, *extra], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert (
        "user: [document report.pdf, 2 pages; sent p. 1–2] compare  [image a.png 56x56]  with  "
        "[image b.png 64x32]" in show()
    )
    (message,) = json.loads(show("--json"))["messages"]
    document = message["parts"][0]["document"]
    assert (document["name"], document["text_pages"], document["image_pages"]) == ("report.pdf", [1], [2])
    assert message["parts"][2]["image"]["width"] == 56 and "data" not in message["parts"][2]["image"]
