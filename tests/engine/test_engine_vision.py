"""The real llama.cpp llama4 + mtmd path on the tiny generated Llama 4, through its
llama-server child: images cost the tokens we count for them, stream, stop. Where the
image embeddings sit is read in process (`tiny_in_process`), from the libmtmd the server
links. Random weights: no wording checks."""

from __future__ import annotations

import threading

from engine import Final, ImagePart, Message, PromptProgress, SamplingParams, TextDelta, TextPart
from tests.conftest import png_bytes

GREEDY = SamplingParams(temperature=0, max_tokens=8)


def image(width: int = 56, height: int = 56, color: str = "red") -> ImagePart:
    return ImagePart(png_bytes(width, height, color), "image/png", f"{color}.png", width, height)


def user(*parts) -> Message:
    return Message("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


def test_vision_capabilities(tiny_engine):
    caps = tiny_engine.capabilities
    assert caps.vision is True
    assert "image/png" in caps.accepted_mime


def test_each_image_adds_prompt_tokens(tiny_engine):
    none = tiny_engine.count_tokens([user("compare")])
    one = tiny_engine.count_tokens([user(image(), "compare")])
    two = tiny_engine.count_tokens([user(image(), image(color="blue"), "compare")])
    assert none < one < two
    assert two - one == one - none  # same-size images cost the same


def test_images_reach_the_encoder_in_message_order(tiny_in_process):
    small, large = image(56, 56), image(200, 200, "blue")  # one tile vs a 3x3 grid + overview

    def image_chunks(*parts):
        list(tiny_in_process.stream([user(*parts)], GREEDY))
        return tiny_in_process.last_plan.image_tokens

    forward = image_chunks("first", small, "then", large, "compare them")
    backward = image_chunks("first", large, "then", small, "compare them")
    assert len(forward) == 2 and forward[0] < forward[1]
    assert backward == forward[::-1]


def test_images_across_turns_keep_their_order(tiny_in_process):
    turns = [
        user(image(200, 200), "what is this?"),
        Message.text("assistant", "a square"),
        user(image(56, 56), "and this?"),
    ]
    list(tiny_in_process.stream(turns, GREEDY))
    sizes = tiny_in_process.last_plan.image_tokens
    assert len(sizes) == 2 and sizes[0] > sizes[1]


def test_multimodal_stream_reports_usage(tiny_engine):
    messages = [user(image(), image(color="green"), "describe both")]
    events = list(tiny_engine.stream(messages, GREEDY))
    final = events[-1]
    assert isinstance(final, Final) and final.error is None
    assert all(isinstance(e, PromptProgress | TextDelta) for e in events[:-1])
    assert final.usage.prompt_tokens == tiny_engine.count_tokens(messages)  # the server's count is ours
    assert 0 < final.usage.completion_tokens <= GREEDY.max_tokens
    assert final.finish_reason in ("stop", "length")


def test_text_turn_after_an_image_turn(tiny_engine):
    list(tiny_engine.stream([user(image(), "look")], GREEDY))
    *_, final = tiny_engine.stream([user("now just text")], GREEDY)
    assert final.error is None
    assert final.usage.prompt_tokens == tiny_engine.count_tokens([user("now just text")])


def test_images_and_text_between_them_are_counted_as_the_server_reads_them(tiny_engine):
    conversations = [
        [user("a", image(200, 200), "b", "c", image(120, 56), "ünï\tcode")],
        [
            Message.text("system", "You describe pictures."),
            user(image(300, 100)),
            Message.text("assistant", "ok"),
            user("x", image(56, 300)),
        ],
    ]
    for messages in conversations:
        *_, final = tiny_engine.stream(messages, SamplingParams(temperature=0, max_tokens=1))
        assert final.usage.prompt_tokens == tiny_engine.count_tokens(messages)
    assert tiny_engine._local_counter.agrees  # counted here, never handed back to the server


def test_greedy_answers_are_reproducible_with_images(tiny_engine):
    messages = [user(image(), "again")]

    def answer():
        return "".join(e.text for e in tiny_engine.stream(messages, GREEDY) if isinstance(e, TextDelta))

    assert answer() == answer()


def test_cancel_on_the_vision_path(tiny_engine):
    cancel = threading.Event()
    cancel.set()  # pressed before the first token: nothing is generated
    *_, final = tiny_engine.stream([user(image(), "go")], SamplingParams(max_tokens=50), cancel)
    assert final.finish_reason == "cancelled"
    assert final.usage.completion_tokens <= 1
