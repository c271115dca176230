"""The transformers backend on the tiny random Llama 4 checkpoint, loaded through
create_engine exactly as a real checkpoint directory is: Meta's chat template, the
real 336 px tiling, streaming from a worker thread, Stop. Random weights: pipeline
facts only, no wording checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from engine import (
    EngineLoadError,
    Final,
    Message,
    PromptProgress,
    SamplingParams,
    TextDelta,
)
from engine.image_plan import META, image_tokens, tile_grid
from errors import UserError
from models.catalogue import hf_model
from tests.conftest import REPO
from tests.engine.test_engine_vision import image, user

TOKENS_PER_TILE = META.tokens_per_tile  # the HF fixture has Scout's 336 px tiles

GREEDY = SamplingParams(temperature=0, max_tokens=8)


@pytest.fixture(scope="module")
def hf_engine(tiny_llama4_hf, settings):
    from models.engines import engine_for

    engine = engine_for(hf_model(tiny_llama4_hf), settings)
    engine.load()
    yield engine
    engine.unload()


def token_id(engine, token: str) -> int:
    return engine._processor.tokenizer.convert_tokens_to_ids(token)


def test_checkpoint_is_a_vision_llama4_spec(tiny_llama4_hf):
    spec = hf_model(tiny_llama4_hf)
    assert spec.backend == "transformers" and spec.vision and spec.is_llama and spec.available
    assert spec.file_bytes() == (tiny_llama4_hf / "model.safetensors").stat().st_size
    assert type(spec).__name__ == "ModelSpec" and spec.status == "on disk"


def test_two_image_message_streams_on_cpu(hf_engine):
    small, wide = image(56, 56, "red"), image(700, 400, "blue")  # one tile; a 2x3 grid + global
    messages = [user(small, "and", wide, "compare them")]
    events = list(hf_engine.stream(messages, GREEDY))
    final = events[-1]
    assert isinstance(final, Final) and final.error is None, final
    assert all(isinstance(e, PromptProgress | TextDelta) for e in events[:-1])
    assert final.finish_reason in ("stop", "length")
    assert 0 < final.usage.completion_tokens <= GREEDY.max_tokens
    assert final.usage.prompt_tokens == hf_engine.count_tokens(messages)
    assert final.usage.ttft_s > 0 and final.usage.total_s >= final.usage.ttft_s

    sent = hf_engine.last_inputs
    assert tuple(sent["pixel_values"].shape) == (1 + 6 + 1, 3, 336, 336)
    ids = sent["input_ids"][0].tolist()
    assert ids.count(token_id(hf_engine, "<|patch|>")) == 8 * TOKENS_PER_TILE
    # The one-tile image comes first, before the text between them, then the grid.
    starts = [i for i, t in enumerate(ids) if t == token_id(hf_engine, "<|image_start|>")]
    ends = [i for i, t in enumerate(ids) if t == token_id(hf_engine, "<|image_end|>")]
    assert len(starts) == 2 and ends[0] - starts[0] == TOKENS_PER_TILE + 2
    between = hf_engine._processor.tokenizer.decode(ids[ends[0] + 1 : starts[1]])
    assert between == "and"


@pytest.mark.parametrize("size", [(56, 56), (700, 400), (2000, 300), (1500, 1500)])
def test_image_token_arithmetic_matches_the_processor(hf_engine, size):
    text_only = hf_engine.count_tokens([user("look")])
    with_image = hf_engine.count_tokens([user(image(*size), "look")])
    assert with_image - text_only == image_tokens(*size)


def test_tiling_is_capped_at_16_tiles():
    assert tile_grid(56, 56) == (1, 1)
    assert tile_grid(700, 400) == (2, 3)
    rows, cols = tile_grid(8000, 8000)
    assert rows * cols == 16


def test_stop_before_the_first_token_generates_at_most_one(hf_engine):
    cancel = threading.Event()
    cancel.set()  # the stopping criterion runs after every token, the first included
    *_, final = hf_engine.stream([user("tell a long story")], SamplingParams(max_tokens=400), cancel)
    assert final.finish_reason == "cancelled"
    assert final.usage.completion_tokens <= 1


def test_stop_mid_answer_ends_it_early(hf_engine):
    cancel = threading.Event()
    params = SamplingParams(temperature=0, max_tokens=400)
    events = []
    for event in hf_engine.stream([user("tell a long story")], params, cancel):
        events.append(event)
        if isinstance(event, TextDelta):
            cancel.set()
    final = events[-1]
    assert final.finish_reason == "cancelled"
    # TextIteratorStreamer holds text back to word boundaries, so some tokens were in flight.
    assert final.usage.completion_tokens < params.max_tokens


def test_seeded_sampling_repeats(hf_engine):
    params = SamplingParams(temperature=1.0, top_p=1.0, min_p=0.0, max_tokens=12, seed=7)

    def text():
        return "".join(e.text for e in hf_engine.stream([user("again")], params) if isinstance(e, TextDelta))

    assert text() == text()


def test_prompt_over_the_context_is_refused_before_generating(tiny_llama4_hf, settings):
    from models.engines import engine_for

    engine = engine_for(replace(hf_model(tiny_llama4_hf), n_ctx=256), settings)
    with pytest.raises(UserError, match="256-token context"):
        next(engine.stream([user(image(700, 400), "compare")], GREEDY))
    *_, final = engine.stream([user("short")], GREEDY)  # the engine still answers
    assert final.error is None
    engine.unload()


def test_fp8_checkpoint_says_what_it_needs(tiny_llama4_hf, tmp_path, settings):
    from models.engines import engine_for

    fp8 = tmp_path / "Llama-4-Maverick-17B-128E-Instruct-FP8"
    shutil.copytree(tiny_llama4_hf, fp8)
    config = json.loads((fp8 / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}
    (fp8 / "config.json").write_text(json.dumps(config))
    engine = engine_for(hf_model(fp8), settings)
    with pytest.raises(EngineLoadError, match="FP8") as caught:
        engine.load()
    assert "CUDA GPU" in str(caught.value) and "\n" not in str(caught.value)


def test_not_a_checkpoint_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"no config\.json"):
        hf_model(tmp_path)


def test_cli_ask_with_hf_path_and_two_images(tiny_llama4_hf, write_png):
    first, second = write_png("a.png"), write_png("b.png", 700, 400, "blue")
    args = ["--hf-path", str(tiny_llama4_hf), "--max-tokens", "6", "--json", "--no-save"]
    result = subprocess.run(
        [sys.executable, "launch.py", "ask", *args, "--image", str(first), "--image", str(second), "compare"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model"] == tiny_llama4_hf.name
    assert summary["prompt_tokens"] > image_tokens(56, 56) + image_tokens(700, 400)
    assert "Loading weights" not in result.stderr  # progress bars stay off the terminal


@pytest.mark.gpu
def test_two_images_on_cuda_in_bf16(tiny_llama4_hf, settings):
    import torch

    from models.engines import engine_for

    engine = engine_for(hf_model(tiny_llama4_hf), settings)
    engine.load()
    try:
        assert engine._model.device.type == "cuda" and engine._model.dtype == torch.bfloat16
        messages = [user(image(56, 56), image(700, 400, "blue"), "compare")]
        *_, final = engine.stream(messages, GREEDY)
        assert final.error is None and final.usage.completion_tokens > 0
    finally:
        engine.unload()


def test_messages_keep_their_order_across_turns(hf_engine):
    turns = [
        user(image(700, 400), "what is this?"),
        Message.text("assistant", "a wide picture"),
        user(image(56, 56), "and this?"),
    ]
    list(hf_engine.stream(turns, GREEDY))
    patches = hf_engine.last_inputs["pixel_values"].shape[0]
    assert patches == 7 + 1  # the grid + global tile of turn 1, then the single tile of turn 3


def test_canvas_choice_equals_transformers_own(monkeypatch):
    """Our tiling picks the same canvas as transformers' Llama 4 processor. Its module
    imports torchvision at the top; the functions compared use only torch, so a stand-in
    module lets it import on machines without torchvision."""
    import importlib.util
    import types

    import torch
    import transformers

    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.v2"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "torchvision.transforms.v2.functional", types.ModuleType("functional"))
    source = Path(transformers.__file__).parent / "models/llama4/image_processing_llama4.py"
    spec = importlib.util.spec_from_file_location("transformers.models.llama4._l4p_reference", source)
    reference = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, reference)  # its decorators look itself up
    spec.loader.exec_module(reference)
    from transformers.image_utils import SizeDict

    from engine.image_plan import best_canvas, supported_canvases

    theirs_all = reference.find_supported_resolutions(16, SizeDict(height=336, width=336))
    assert tuple(map(tuple, theirs_all)) == supported_canvases(16, 336)
    resolutions = torch.tensor(theirs_all)
    for height in (20, 56, 335, 336, 337, 500, 1000, 2000, 5000):
        for width in (20, 100, 336, 700, 1344, 3000, 9000):
            theirs = tuple(reference.get_best_fit((height, width), resolutions).tolist())
            assert best_canvas((height, width), supported_canvases(16, 336)) == theirs, (height, width)
