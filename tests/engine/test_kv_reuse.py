"""Follow-up turns reuse the KV cache (text and images) and a chat's KV state is saved
with it (llama-server's slot save/restore, engine/slot_state.py), on the real SmolLM2
and the tiny Llama 4.

A reused turn answers exactly as the same chat replayed turn by turn in a login that
never asked (`replayed`): restored, switched or warm, the KV is this chat's own. It is
not held to a cold read of the whole chat: the server reuses the last answer's KV as
decoded, one token at a time, which CPU kernels round slightly differently from a
prompt batch (a greedy answer can then differ at a near-tie).

A cold read is asked for as another login (`cache_scope`): the slot table never lets
one login reuse what another left in a slot, so the server reads it all."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

import pytest

from chat.metrics import metrics_footer
from chat.turns import turns_from_rows
from config import Settings
from engine import Final, ImagePart, Message, SamplingParams, TextDelta, TextPart, Usage
from engine.prefix import Ledger, batches, reusable_prefix
from engine.slot_state import SUFFIX, SlotStates, session_files
from models.catalogue import user_model
from models.engines import engine_for
from sessions import Store
from tests.conftest import png_bytes

GREEDY = SamplingParams(temperature=0, max_tokens=16, seed=3)
DOCUMENT = " ".join(
    f"Station {i} of the coastal railway serves the town of Port {i}, which has {i * 7} fishing boats."
    for i in range(1, 7)
)
NEW_TOKENS = 60  # an answer of 16 tokens and a short question, with their headers
_cold_logins = itertools.count()


@pytest.fixture
def kv_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def smol_spec(kv_settings):
    from models.catalogue import load_registry

    registry = load_registry(kv_settings)
    return registry.get(registry.default)


@pytest.fixture
def make_engine(kv_settings):
    engines = []

    def make(spec, settings: Settings = kv_settings):
        engine = engine_for(spec, settings)
        engine.load()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.unload()


def answer(engine, messages, session_key=None, scope="") -> tuple[str, Final]:
    events = list(engine.stream(messages, GREEDY, session_key=session_key, cache_scope=scope))
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


def replayed(engine, messages) -> tuple[str, Final]:
    """The chat's last answer as a new login gets it asking the same turns one by one,
    each reusing the slot the turn before left."""
    scope = f"replay-{next(_cold_logins)}"
    for end, message in enumerate(messages, start=1):
        if message.role == "user":
            text, final = answer(engine, messages[:end], f"{scope}-chat", scope=scope)
    return text, final


def cold_answer(engine, messages) -> tuple[str, Final]:
    """As a login that never asked: nothing of the others' is reused."""
    text, final = answer(engine, messages, scope=f"cold-{next(_cold_logins)}")
    assert final.usage.cached_tokens == 0
    return text, final


def chat(*turns: str, system: str = "You answer questions about the document.") -> list[Message]:
    roles = ("user", "assistant")
    return [Message.text("system", system)] + [
        Message.text(roles[i % 2], text) for i, text in enumerate(turns)
    ]


def then(messages: list[Message], answer_text: str, question: str) -> list[Message]:
    return [*messages, Message.text("assistant", answer_text), Message.text("user", question)]


def finished(engine) -> None:
    """What a process ending does: the slot saves in flight complete, the child stops."""
    engine.unload()


def state_files(settings: Settings) -> list:
    return sorted(settings.kv_dir.glob(f"*{SUFFIX}"))


def reused_all_of(final: Final, earlier: Final) -> bool:
    """The turn read only what came after `earlier`'s prompt (its answer and the new
    question): the server kept everything up to there, its own answer's tokens too."""
    usage = final.usage
    return (
        usage.cached_tokens >= earlier.usage.prompt_tokens
        and usage.prompt_tokens - usage.cached_tokens < NEW_TOKENS
    )


# -- text, on the embedded SmolLM2 ---------------------------------------------------


def test_follow_up_turns_reuse_the_prefix(make_engine, smol_spec):
    engine = make_engine(smol_spec)
    first = chat(f"{DOCUMENT}\n\nWhich station serves Port 3?")
    text1, final1 = answer(engine, first, "chat-a")
    assert final1.usage.cached_tokens == 0
    messages = then(first, text1, "How many boats does it have?")
    text2, final2 = answer(engine, messages, "chat-a")
    assert reused_all_of(final2, final1)
    _, cold = cold_answer(engine, messages)
    assert cold.usage.prompt_tokens == final2.usage.prompt_tokens  # the same conversation
    assert text2 == replayed(engine, messages)[0]

    messages += [Message.text("assistant", text2), Message.text("user", "And Port 12?")]
    text3, final3 = answer(engine, messages, "chat-a")  # after the cold turn, in another slot
    assert reused_all_of(final3, final2)
    assert text3 == replayed(engine, messages)[0]


def test_regenerate_reevaluates_only_the_last_token(make_engine, smol_spec):
    engine = make_engine(smol_spec)
    messages = chat("Name a colour of the sky.")
    first, final = answer(engine, messages)
    again, repeat = answer(engine, messages)
    assert again == first
    assert repeat.usage.cached_tokens == final.usage.prompt_tokens - 1  # its logits are read again


def test_another_login_reuses_nothing_of_a_chat(make_engine, smol_spec):
    engine = make_engine(smol_spec)
    messages = chat(f"{DOCUMENT}\n\nWhich station serves Port 2?")
    answer(engine, messages, "ann-chat", scope="ann")
    _, bob = answer(engine, messages, "bob-chat", scope="bob")  # the same text, another login
    assert bob.usage.cached_tokens == 0


def test_restart_restores_the_saved_state(make_engine, smol_spec, kv_settings):
    messages = chat(f"{DOCUMENT}\n\nWhich station serves Port 5?")
    first_process = make_engine(smol_spec)
    text1, final1 = answer(first_process, messages, "chat-r")
    finished(first_process)
    assert len(state_files(kv_settings)) == 1
    follow_up = then(messages, text1, "And Port 6?")

    restarted = make_engine(smol_spec)  # a new child: nothing in its slots
    text2, final2 = answer(restarted, follow_up, "chat-r")
    assert reused_all_of(final2, final1)
    assert text2 == replayed(restarted, follow_up)[0]


def test_a_saved_state_is_restored_only_for_its_login(make_engine, smol_spec, kv_settings):
    messages = chat(f"{DOCUMENT}\n\nWhich station serves Port 4?")
    first_process = make_engine(smol_spec)
    text, _ = answer(first_process, messages, "chat-l", scope="ann")
    finished(first_process)
    restarted = make_engine(smol_spec)
    _, final = answer(restarted, then(messages, text, "And Port 1?"), "chat-l", scope="bob")
    assert final.usage.cached_tokens == 0


def test_switching_chats_saves_one_and_restores_the_other(make_engine, smol_spec, kv_settings):
    one_slot = kv_settings.model_copy(update={"local_slots": 1})
    engine = make_engine(smol_spec, one_slot)
    about_a = chat("Tell me about apples.", system="You are a fruit expert.")
    about_b = chat("Tell me about the moon.", system="You are an astronomer.")
    text_a, final_a = answer(engine, about_a, "a")
    answer(engine, about_b, "b")  # chat b holds the only slot now
    follow_a = then(about_a, text_a, "Are they healthy?")
    text, final = answer(engine, follow_a, "a")
    assert reused_all_of(final, final_a)  # restored from its file, not read again
    assert text == replayed(engine, follow_a)[0]
    finished(engine)
    for chat_id in ("a", "b"):  # each chat's file, saved when it left the slot's hold
        assert [p.suffix for p in session_files(kv_settings.kv_dir, chat_id)] == [SUFFIX]


def test_state_for_another_context_size_is_ignored_and_deleted(make_engine, smol_spec, kv_settings):
    messages = chat("Name three rivers.")
    first_process = make_engine(smol_spec)
    text, _ = answer(first_process, messages, "chat-s")
    finished(first_process)
    [saved] = state_files(kv_settings)
    follow_up = then(messages, text, "Which is longest?")

    other = make_engine(replace(smol_spec, n_ctx=2048))  # same model and chat, other n_ctx
    assert not saved.exists()  # deleted when the model opened, never loaded into the wrong context
    _, final = answer(other, follow_up, "chat-s")
    assert final.usage.cached_tokens == 0


def test_damaged_state_file_is_ignored_and_deleted(make_engine, smol_spec, kv_settings):
    messages = chat("Name a planet.")
    first_process = make_engine(smol_spec)
    text, _ = answer(first_process, messages, "chat-d")
    finished(first_process)
    [saved] = state_files(kv_settings)
    data = bytearray(saved.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the KV data
    saved.write_bytes(bytes(data))
    follow_up = then(messages, text, "And another?")
    restarted = make_engine(smol_spec)
    text2, final = answer(restarted, follow_up, "chat-d")
    assert final.usage.cached_tokens == 0
    assert not saved.exists()
    assert text2 == cold_answer(restarted, follow_up)[0]  # read whole, as a cold read is


def test_a_state_larger_than_the_cap_is_not_kept(make_engine, smol_spec, kv_settings):
    tiny_cap = kv_settings.model_copy(update={"kv_cache_gb": 0.0001})  # 100 kB
    engine = make_engine(smol_spec, tiny_cap)
    answer(engine, chat(DOCUMENT), "chat-big")
    finished(engine)
    assert state_files(kv_settings) == []


def saved_by_the_server(states: SlotStates, session: str, size: int, scope: str = "") -> str:
    """What a slot save leaves: the server's file, then sealed with its hash."""
    (states.directory / states.writing_name(scope, session)).write_bytes(bytes(size))
    return states.seal(scope, session).name


def test_size_cap_evicts_the_least_recently_used_state(tmp_path):
    states = SlotStates(tmp_path, "model", "fingerprint", max_bytes=3_500)  # room for three
    for index, session in enumerate(("one", "two", "three")):
        saved_by_the_server(states, session, 1_000)
        os.utime(tmp_path / states.restorable("", session), ns=(10**18 + index, 10**18 + index))
    assert states.restorable("", "one") is not None  # used now: "two" is the least recently used
    saved_by_the_server(states, "four", 1_000)
    states.evict()
    kept = {session for session in ("one", "two", "three", "four") if states.restorable("", session)}
    assert kept == {"one", "three", "four"}
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= states.max_bytes


def test_states_of_other_model_files_and_unfinished_writes_are_deleted(tmp_path):
    old = SlotStates(tmp_path, "model", "old-file", 10**6)
    saved_by_the_server(old, "s", 10)
    (tmp_path / old.writing_name("", "t")).write_bytes(b"half")  # a crash mid-save
    other_model = SlotStates(tmp_path, "other-model", "its-file", 10**6)
    kept = saved_by_the_server(other_model, "s", 10)
    newer = SlotStates(tmp_path, "model", "new-file", 10**6)  # the GGUF was replaced
    assert newer.restorable("", "s") is None
    assert [p.name for p in tmp_path.iterdir()] == [kept]  # another model's file stays
    saved_by_the_server(newer, "s", 10)
    again = newer.restorable("", "s")
    assert again is not None and newer.restorable("bob", "s") is None  # and only for its login
    truncated = tmp_path / again
    truncated.write_bytes(truncated.read_bytes()[:-1])
    assert newer.restorable("", "s") is None and not truncated.exists()


# -- images, on the tiny Llama 4 -----------------------------------------------------


def image(size: int, color: str) -> ImagePart:
    return ImagePart(png_bytes(size, size, color), "image/png", f"{color}.png", size, size)


THREE = (image(56, "red"), image(200, "blue"), image(120, "green"))


def test_image_follow_up_reads_no_image_again(tiny_engine):
    first = [Message("user", (*THREE, TextPart("compare the three")))]
    text1, final1 = answer(tiny_engine, first, "vision-a")
    messages = then(first, text1, "which is largest?")
    text2, final2 = answer(tiny_engine, messages, "vision-a")
    # Every image sits in turn 1's prompt, and the server evaluates (encodes) only
    # what comes after the cached prefix: no image is encoded again.
    assert reused_all_of(final2, final1)
    _, cold = cold_answer(tiny_engine, messages)
    assert cold.usage.prompt_tokens == final2.usage.prompt_tokens
    assert text2 == replayed(tiny_engine, messages)[0]


def test_an_edit_before_the_images_reads_them_again(tiny_engine):
    answer(tiny_engine, [Message("user", (TextPart("first look"), *THREE))], "vision-e")
    edited = [Message("user", (TextPart("second look"), *THREE))]
    text, final = answer(tiny_engine, edited, "vision-e")
    assert final.usage.cached_tokens < 10  # the edit comes before the images: little to reuse
    scope = f"replay-{next(_cold_logins)}"
    answer(tiny_engine, [Message("user", (TextPart("first look"), *THREE))], "replayed-e", scope=scope)
    assert text == answer(tiny_engine, edited, "replayed-e", scope=scope)[0]


def test_image_chat_restored_in_a_new_engine(tiny_llama4, kv_settings, make_engine):
    spec = user_model(*tiny_llama4)
    first = [Message("user", (*THREE[:2], TextPart("what differs?")))]
    first_process = make_engine(spec)
    text1, final1 = answer(first_process, first, "vision-r")
    finished(first_process)
    restarted = make_engine(spec)
    messages = then(first, text1, "and the colours?")
    text2, final2 = answer(restarted, messages, "vision-r")
    assert reused_all_of(final2, final1)  # the images came back with the file, not re-encoded
    assert text2 == replayed(restarted, messages)[0]


# -- the prefix rules themselves ------------------------------------------------------


def test_prefix_never_splits_an_image_nor_leaves_a_lone_token():
    held = Ledger([5, 6])
    held.add_image(4, "img-a:0")
    held.add_text([7, 8, 9])
    same_image = Ledger([5, 6])
    same_image.add_image(4, "img-a:0")
    same_image.add_text([7, 8, 9, 10, 11])
    assert reusable_prefix(held.tokens, held.spans, same_image) == 9
    other_image = Ledger([5, 6])
    other_image.add_image(4, "img-b:0")  # same positions, another picture
    other_image.add_text([7, 8, 9, 10])
    assert reusable_prefix(held.tokens, held.spans, other_image) == 2
    text_after = Ledger([5, 6])
    text_after.add_image(4, "img-a:0")
    text_after.add_text([7, 8])
    assert reusable_prefix(held.tokens, held.spans, text_after) == 6  # the run [7, 8] as one batch
    assert [b - a for a, b in batches(1025, 512)] == [512, 511, 2]
    assert batches(1, 512) == [(0, 1)]


# -- what the user sees ------------------------------------------------------------------


def test_footer_shows_reused_and_new_tokens_live_and_after_reload(tmp_path):
    usage = Usage(prompt_tokens=3053, cached_tokens=3012, completion_tokens=20, ttft_s=0.2, decode_tps=9)
    live = metrics_footer(Final("stop", usage))
    assert "3053 + 20 tokens · cached 3,012 / new 41 · stop" in live
    assert "cached" not in metrics_footer(Final("stop", replace(usage, cached_tokens=0)))
    with Store(tmp_path) as store:
        session = store.create_session(model="m")
        question = store.add_user_message(session, None, Message.text("user", "and then?"))
        with store.start_answer(session, question, "m", GREEDY) as writer:
            writer.append("Then it rained.")
            writer.finish(Final("stop", usage))
        rows = store.branch(session)
        assert rows[-1].cached_tokens == 3012
        assert turns_from_rows(rows, store.blob_path)[-1].footer == live
