"""The llama.cpp backend on the embedded SmolLM2: real answers, streaming, metrics,
cancellation and refusals."""

from __future__ import annotations

import threading

import pytest

from engine import Final, ImagePart, Message, PromptProgress, SamplingParams, TextDelta
from engine.protocol import Engine
from errors import UserError
from tests.conftest import png_bytes

QUESTION = "What is the capital of France?"


def ask(engine, text: str, **params) -> tuple[str, Final, list]:
    spec = engine.spec
    messages = [Message.text("system", spec.system_prompt), Message.text("user", text)]
    events = list(engine.stream(messages, spec.sampling_params(**params)))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    return "".join(deltas), events[-1], events


def test_engine_satisfies_protocol(smollm2):
    assert isinstance(smollm2, Engine)
    assert smollm2.capabilities.vision is False
    assert smollm2.capabilities.n_ctx == 8192


def test_answers_a_factual_question(smollm2):
    text, final, _ = ask(smollm2, QUESTION)
    assert "Paris" in text
    assert final.finish_reason == "stop"


def test_stream_is_deltas_then_exactly_one_final(smollm2):
    _, _, events = ask(smollm2, "Name three colours.", max_tokens=20)
    reading = [e for e in events if isinstance(e, PromptProgress)]
    assert events[: len(reading)] == reading and reading[-1].done == reading[-1].total
    assert len(events) - len(reading) > 3
    assert all(isinstance(e, TextDelta) for e in events[len(reading) : -1])
    assert isinstance(events[-1], Final)


def test_usage_counts_and_timings(smollm2):
    spec = smollm2.spec
    messages = [Message.text("system", spec.system_prompt), Message.text("user", QUESTION)]
    expected_prompt = smollm2.count_tokens(messages)
    *_, final = smollm2.stream(messages, spec.sampling_params(max_tokens=64))
    usage = final.usage
    assert usage.prompt_tokens == expected_prompt > 10
    assert 0 < usage.completion_tokens <= 64
    assert 0 < usage.ttft_s < usage.total_s
    assert usage.prompt_tps > 0 and usage.decode_tps > 0


def test_max_tokens_ends_with_length(smollm2):
    text, final, _ = ask(smollm2, "Write a long story about a dragon.", max_tokens=5)
    assert final.finish_reason == "length"
    assert final.usage.completion_tokens == 5
    assert text


def test_cancel_stops_within_a_token(smollm2):
    cancel = threading.Event()
    messages = [Message.text("user", "Write a long story about a dragon and a knight.")]
    events = []
    for event in smollm2.stream(messages, SamplingParams(max_tokens=400, temperature=0), cancel):
        events.append(event)
        if sum(isinstance(e, TextDelta) for e in events) == 3:
            cancel.set()
    final = events[-1]
    assert final.finish_reason == "cancelled"
    assert final.usage.completion_tokens <= 4


def test_same_seed_same_answer(smollm2):
    first, _, _ = ask(smollm2, "Tell me a fun fact.", temperature=0.9, seed=7, max_tokens=30)
    second, _, _ = ask(smollm2, "Tell me a fun fact.", temperature=0.9, seed=7, max_tokens=30)
    assert first == second


def test_follow_up_turn_sees_history(smollm2):
    spec = smollm2.spec
    history = [Message.text("system", spec.system_prompt), Message.text("user", QUESTION)]
    one_turn = smollm2.count_tokens(history)
    history += [
        Message.text("assistant", "The capital of France is Paris."),
        Message.text("user", "And Japan?"),
    ]
    *_, final = smollm2.stream(history, spec.sampling_params(max_tokens=20))
    assert final.usage.prompt_tokens > one_turn
    assert final.finish_reason in ("stop", "length")


def test_text_only_model_refuses_images(smollm2):
    image = ImagePart(png_bytes(), "image/png", "red.png")
    messages = [Message("user", (image, *Message.text("user", "what is this?").parts))]
    with pytest.raises(UserError, match="cannot see images; choose a vision model"):
        list(smollm2.stream(messages, SamplingParams()))


def test_prompt_larger_than_context_is_refused(settings):
    from dataclasses import replace

    from models.catalogue import load_registry
    from models.engines import engine_for

    registry = load_registry(settings)
    engine = engine_for(replace(registry.get(registry.default), n_ctx=256), settings)
    try:
        with pytest.raises(UserError, match=r"the prompt is \d+ tokens but .* takes 256;"):
            list(engine.stream([Message.text("user", "word " * 400)], SamplingParams()))
    finally:
        engine.unload()


def test_empty_conversation_is_refused(smollm2):
    with pytest.raises(UserError, match="empty"):
        list(smollm2.stream([], SamplingParams()))
