"""The one request budget (engine/budget.py) and the fair decode pool
(engine/decode_pool.py): each limit refused with one line naming the figure and the
limit, sizes read from headers only, and two owners' decodes interleaved."""

from __future__ import annotations

import io
import threading
import time

import pytest

from engine.budget import RequestBudget, check_request, declared_size
from engine.decode_pool import FairPool
from engine.types import EngineInputError
from tests.conftest import png_bytes


def gif(side: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (side, side), 0).save(out, "GIF")
    return out.getvalue()


def refusal(budget: RequestBudget, *args, **kwargs) -> str:
    with pytest.raises(EngineInputError) as caught:
        check_request(budget, *args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_each_limit_names_the_figure_and_the_limit():
    budget = RequestBudget(max_chars=2_000_000, max_parts=4, max_images=2, max_pixels=10_000)
    message = refusal(budget, ["x" * 1_000_000] * 12)
    assert message.startswith("request has 12,000,000 characters; this server takes 2,000,000")
    assert "request has 5 parts; this server takes 4" in refusal(budget, ["a"] * 5)
    three = [png_bytes(10, 10)] * 3
    assert "request has 3 images; this server takes 2" in refusal(budget, ["a"], three)
    assert "images declare 20,000 pixels; this server takes 10,000" in refusal(
        budget, ["a"], [png_bytes(100, 100), png_bytes(100, 100)]
    )
    assert check_request(budget, ["a"], [png_bytes(50, 40)]) == 2000


def test_one_image_over_the_per_image_cap_is_named_by_its_header():
    budget = RequestBudget(max_image_pixels=1_000_000)
    message = refusal(budget, [], [png_bytes(10, 10), gif(2000)])
    assert "image 2 is 2,000x2,000 = 4,000,000 pixels; this server takes 1,000,000 per image" in message


def test_sizes_come_from_the_first_bytes_only(tmp_path):
    data = gif(6000)
    assert declared_size(data[:200]) == (6000, 6000)  # the rest of the file is never read
    path = tmp_path / "big.gif"
    path.write_bytes(data)
    assert declared_size(path) == (6000, 6000)
    assert declared_size(b"not an image") == (0, 0)
    assert declared_size(tmp_path / "missing.png") == (0, 0)


def test_a_text_only_model_is_refused_before_any_image_is_opened(tmp_path):
    missing = [tmp_path / f"never-{n}.gif" for n in range(40)]  # opening one would say "not found"
    message = refusal(RequestBudget(), ["hi"], missing, vision=False, label="smollm2", hint="pick another")
    assert message == "smollm2 cannot see images; pick another"


def test_the_fair_pool_interleaves_two_owners():
    pool = FairPool(workers=1)
    gate, ran = threading.Event(), []

    def task(name: str):
        def run():
            gate.wait(10)
            ran.append(name)
            return name

        return run

    first = [pool.submit("alice", task(f"a{n}")) for n in range(6)]  # a0 starts, held at the gate
    time.sleep(0.05)
    second = [pool.submit("bob", task(f"b{n}")) for n in range(2)]
    gate.set()
    assert [f.result(10) for f in first + second] == [*(f"a{n}" for n in range(6)), "b0", "b1"]
    # bob's two wait behind one of alice's each, never behind all six
    assert ran.index("b1") < ran.index("a5") and ran.index("b0") <= 2, ran


def test_map_keeps_order_and_raises_the_first_failure():
    pool = FairPool(workers=3)
    assert pool.map("me", lambda n: n * n, range(10)) == [n * n for n in range(10)]

    def fail_on_three(n: int) -> int:
        if n == 3:
            raise EngineInputError("image 3 is damaged")
        return n

    with pytest.raises(EngineInputError, match="image 3"):
        pool.map("me", fail_on_three, range(8))


def test_the_model_tightens_the_budget_and_is_named():
    from config import Settings
    from engine.spec import ModelSpec

    settings = Settings(max_request_chars=2_000_000, max_request_images=20)
    small = ModelSpec("tiny", "Tiny", n_ctx=4096, max_images=4)
    budget = RequestBudget.of(settings, small)
    assert budget.max_chars == 4096 * 32 and budget.max_images == 4
    message = refusal(budget, ["x" * 200_000])
    assert message == "request has 200,000 characters; this server takes 131,072 (4,096-token context)"
    assert "request has 5 images; this server takes 4 (Tiny's limit)" in refusal(budget, [], [b""] * 5)
    big = ModelSpec("big", "Big", n_ctx=1_000_000)
    assert RequestBudget.of(settings, big).max_chars == 2_000_000  # the setting is tighter
