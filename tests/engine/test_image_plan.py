"""The Llama 4 image plan (engine/image_plan.py): grids, token counts, canvases."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from engine import ImagePart, Message, TextPart
from engine.image_plan import (
    LLAMA_CPP,
    META,
    CanvasCache,
    image_tokens,
    plan_image,
    plan_messages,
    render_canvas,
)


def png(width: int, height: int, color=(200, 40, 40), exif_orientation: int | None = None) -> ImagePart:
    img = Image.new("RGB", (width, height), color)
    img.putpixel((0, 0), (0, 255, 0))  # a marker in the top-left corner
    buf = io.BytesIO()
    if exif_orientation is None:
        img.save(buf, format="PNG")
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(buf, format="JPEG", exif=exif, quality=95)
    return ImagePart(buf.getvalue(), "image/png", "x", width, height)


# Hand-checked against Meta's rule (least upscaling, else least downscaling, then the
# smallest canvas) over the 3x3 family (llama.cpp) and all grids of <= 16 tiles (Meta).
@pytest.mark.parametrize(
    ("size", "llama_cpp", "meta"),
    [
        ((4032, 3024), (3, 3), (3, 4)),  # a phone photo
        ((1920, 1080), (2, 3), (3, 5)),  # a screenshot
        ((1008, 1304), (3, 3), (4, 3)),  # a PDF page at 144 dpi
        ((200, 150), (1, 1), (1, 1)),  # an icon
        ((672, 336), (1, 2), (1, 2)),  # exactly two tiles
        ((5000, 300), (1, 3), (1, 15)),  # a banner: 1x15 needs the least upscaling
    ],
)
def test_grids_for_real_world_sizes(size, llama_cpp, meta):
    assert (plan_image(*size, LLAMA_CPP).rows, plan_image(*size, LLAMA_CPP).cols) == llama_cpp
    assert (plan_image(*size, META).rows, plan_image(*size, META).cols) == meta


def test_tokens_follow_metas_layout():
    # <|image_start|> <|image|> 144 embeddings <|image_end|>
    assert image_tokens(336, 336) == 147
    # two tiles, an x separator, a y separator, the overview: 3 * 144 + 2 + 3
    assert image_tokens(672, 336) == 437
    # 3x3: 10 tiles, 2 x separators in each of 3 rows, 3 y separators
    assert image_tokens(1008, 1008, LLAMA_CPP) == 10 * 144 + 9 + 3
    assert image_tokens(0, 10) == 0


def test_canvas_is_the_planned_size_with_the_picture_top_left_and_black_padding():
    canvas = render_canvas(png(500, 300), LLAMA_CPP)
    plan = plan_image(500, 300, LLAMA_CPP)
    with Image.open(io.BytesIO(canvas.data)) as img:
        assert img.size == (plan.canvas[1], plan.canvas[0]) == (canvas.width, canvas.height) == (672, 336)
        assert img.getpixel((0, 0))[1] > 100  # the marker survived, top-left
        assert img.getpixel((300, 100)) == (200, 40, 40)
        assert img.getpixel((plan.fitted[1] + 5, 100)) == (0, 0, 0)  # padding to the right


def test_small_images_are_upscaled_to_one_tile_without_distortion():
    plan = plan_image(100, 50)
    assert (plan.rows, plan.cols) == (1, 1) and plan.fitted == (168, 336)


def test_exif_orientation_is_applied_before_planning():
    canvas = render_canvas(png(600, 300, exif_orientation=6), META)  # stored sideways, shown upright
    assert (canvas.width, canvas.height) == (336, 672)


def test_plan_messages_replaces_only_images_and_reuses_canvases():
    image = png(700, 400)
    messages = [Message("user", (TextPart("look"), image)), Message.text("assistant", "ok")]
    once, twice = plan_messages(messages, LLAMA_CPP), plan_messages(messages, LLAMA_CPP)
    assert once[0].parts[0] == TextPart("look") and once[1] == messages[1]
    assert once[0].images[0].data == twice[0].images[0].data  # same bytes: KV reuse holds
    assert (once[0].images[0].width, once[0].images[0].height) == (1008, 672)
    assert plan_messages(messages, None) == messages


def test_canvas_cache_stays_within_its_bytes():
    cache = CanvasCache(max_bytes=1)
    first = cache.canvas(png(700, 400), META)
    cache.canvas(png(300, 700, color=(1, 2, 3)), META)
    assert cache._bytes == len(cache._items[next(iter(cache._items))].data)  # only the newest left
    assert first.width == 1008
