"""The one request budget on the path the page, `ask` and `compare` share
(chat.question.read_question): checked from the images' headers before any is
decoded, so 40 GIFs that declare 6000x6000 pixels (about 30 KB each) are refused at
once, and the budget's limits come from the settings."""

from __future__ import annotations

import io
import time

import pytest

from chat.question import read_question
from config import Settings
from engine.budget import RequestBudget
from engine.types import EngineInputError

SIDE = 6000  # 36M pixels to decode, a ~30 KB file


@pytest.fixture(scope="module")
def big_gifs(tmp_path_factory) -> list:
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (SIDE, SIDE), 0).save(out, "GIF")
    folder = tmp_path_factory.mktemp("gifs")
    paths = [folder / f"big-{n}.gif" for n in range(40)]
    for path in paths:
        path.write_bytes(out.getvalue())
    return paths


def ask(library, images, *, vision: bool, budget: RequestBudget, text: str = "what is this?"):
    return read_question(
        library, text, images, mode="auto", vision=vision, password=None, max_pages=10,
        max_pixels=budget.max_image_pixels, max_chars=10_000_000, label="smollm2", budget=budget,
    )  # fmt: skip


def refused_fast(call) -> str:
    started = time.monotonic()
    with pytest.raises(EngineInputError) as caught:
        call()
    took = time.monotonic() - started
    assert took < 2, took  # decoding them first took tens of seconds
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_text_only_model_refuses_40_big_gifs_without_decoding(library, big_gifs):
    message = refused_fast(lambda: ask(library, big_gifs, vision=False, budget=RequestBudget()))
    assert message.startswith("smollm2 cannot see images")


def test_a_vision_model_refuses_too_many_images_before_decoding(library, big_gifs):
    message = refused_fast(lambda: ask(library, big_gifs, vision=True, budget=RequestBudget(max_images=10)))
    assert message == "request has 40 images; this server takes 10 (--max-request-images)"


def test_the_pixels_are_read_from_the_headers(library, big_gifs):
    per_image = RequestBudget(max_image_pixels=20_000_000)
    message = refused_fast(lambda: ask(library, big_gifs[:2], vision=True, budget=per_image))
    assert f"image 1 is {SIDE:,}x{SIDE:,} = {SIDE * SIDE:,} pixels" in message
    in_all = RequestBudget(max_images=40, max_pixels=100_000_000)
    message = refused_fast(lambda: ask(library, big_gifs[:3], vision=True, budget=in_all))
    assert f"request's images declare {3 * SIDE * SIDE:,} pixels; this server takes 100,000,000" in message


def test_the_text_in_all_and_nothing_stored(library):
    budget = RequestBudget(max_chars=1_000)
    message = refused_fast(lambda: ask(library, [], vision=False, budget=budget, text="x" * 5_000))
    assert message == "request has 5,000 characters; this server takes 1,000 (--max-request-chars)"
    assert library.store.list_sessions() == []


def test_images_within_budget_are_decoded_in_order(library, write_png):
    paths = [write_png(f"{n}.png", 20 + n, 20) for n in range(5)]
    turn = ask(library, paths, vision=True, budget=RequestBudget())
    assert [image.width for image in turn.message.images] == [20, 21, 22, 23, 24]


def test_the_budget_follows_the_settings():
    settings = Settings(max_request_chars=10, max_request_parts=3, max_request_images=2, max_image_pixels=5)
    assert RequestBudget.of(settings) == RequestBudget(10, 3, 2, 5, settings.max_request_pixels)


def test_a_missing_file_or_one_that_is_no_image_is_named_first(library, tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("not really a png")
    for path, needle in ((tmp_path / "gone.png", "image not found"), (text_file, "not an image")):
        message = refused_fast(lambda path=path: ask(library, [path], vision=False, budget=RequestBudget()))
        assert needle in message
