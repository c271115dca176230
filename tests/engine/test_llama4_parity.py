"""Llama 4 parity: our llama.cpp path against Meta's reference, transformers'
`Llama4ForConditionalGeneration` + `Llama4Processor` with Meta's chat template, on one
tiny random-weight Llama 4 written both ways (tests/fixtures/llama4_pair.py says what
that proves and what it cannot).

For each conversation:
- the sequence llama.cpp evaluates (token ids, and where image embeddings sit and
  how many) is the reference's `input_ids` (its <|patch|> positions are the
  embeddings), and llama.cpp renders Meta's chat template;
- the next-token logits agree (f32 weights: cosine >= 0.9999, the same top 5);
- greedy continuations are the same token for token through the llama-server child
  that serves local GGUFs, llama.cpp in process, our transformers backend, and our
  OpenAI backend against `python -m llama_cpp.server` running the build we patch, and
  equal the reference's own `generate`;
- the llama-server child counts each prompt as llama.cpp in process evaluates it.

The sequence and the logits are read in process (`cpp`): llama-server hands out
neither, and it links the same patched libllama and libmtmd.

The reference sees the images our plan hands every backend (engine/image_plan.py):
each on its planned canvas. On llama.cpp as llama-cpp-python 0.3.36 ships it, these
tests fail: no tile separators or <|image|>, and each tile's embeddings transposed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from documents.reader import render_page
from engine import ImagePart, Message, SamplingParams, TextDelta, TextPart
from engine.image_plan import TileBudget, image_tokens, plan_image, plan_messages
from engine.prefix import IMAGE_POSITION
from models.catalogue import endpoint_model, hf_model, user_model
from models.engines import engine_for, scoring_engine_for
from tests.conftest import free_port
from tests.engine.test_engine_openai import KEY, KEY_ENV, _wait_for
from tests.fixtures import documents as make
from tests.fixtures.llama4_pair import TILE, write_llama4_pair

NEW_TOKENS = 16
GREEDY = SamplingParams(temperature=0, max_tokens=NEW_TOKENS)


def gradient(width: int, height: int, phase: int = 0) -> ImagePart:
    """A smooth picture: resampling it (the overview tile) gives nearly the same
    pixels under any bilinear filter, so logits can be held to a tight bound."""
    from PIL import Image

    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    rgb = np.stack(np.broadcast_arrays(255 * x, 255 * y, 127 + 127 * np.sin(3 * (x + y) + phase)), axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, format="PNG")
    return ImagePart(buf.getvalue(), "image/png", f"gradient-{width}x{height}.png", width, height)


def pdf_page() -> ImagePart:
    """A rendered PDF page, sized for the tiny model's tiles as pages are for Scout's."""
    return render_page(make.text_pdf([make.page_sentence(1)]), 1, name="page.pdf", max_side_px=3 * TILE)


def user(*parts) -> Message:
    return Message("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


CASES = {
    "text only": [user("What is the capital of France?")],
    "system prompt": [Message.text("system", "You answer in one word."), user("Name a colour.")],
    "one tile": [user(gradient(TILE, TILE), "What is in the picture?")],
    "2x1 and 2x2 with text between": [
        user("Compare", gradient(2 * TILE, TILE), "with", gradient(2 * TILE, 2 * TILE, phase=2), "please.")
    ],
    "two turns, images in turn 1": [
        user(gradient(TILE, TILE), gradient(2 * TILE, TILE, phase=1), "What differs?"),
        Message.text("assistant", "The second one is wider."),
        user("And which is brighter?"),
    ],
    "PDF page as an image": [user(pdf_page(), "Summarise the page.")],
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_llama4_pair(tmp_path_factory.mktemp("llama4-pair"))


@pytest.fixture(scope="module")
def cpp(pair, settings):
    """llama.cpp in this process, where the evaluated sequence and logits can be read."""
    engine = scoring_engine_for(user_model(pair.model_path, pair.mmproj_path), settings)
    engine.load()
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def local(pair, settings):
    """The GGUF as the playground serves it: its llama-server child."""
    engine = engine_for(user_model(pair.model_path, pair.mmproj_path), settings)
    engine.load()
    yield engine
    engine.unload()


class Reference:
    """Meta's processor and model, straight from transformers."""

    def __init__(self, path):
        import torch
        from transformers import AutoProcessor, Llama4ForConditionalGeneration

        from engine.llama4_processor import register

        register()  # the PIL port of Meta's tiling where torchvision is missing
        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = Llama4ForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
        self.patch = self.processor.tokenizer.convert_tokens_to_ids("<|patch|>")

    def inputs(self, messages: list[Message]) -> dict:
        inputs = self.processor.apply_chat_template(
            [_hf_message(m) for m in messages],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        inputs.pop("aspect_ratios", None)
        return dict(inputs)

    def sequence(self, messages: list[Message]) -> list[int]:
        ids = self.inputs(messages)["input_ids"][0].tolist()
        return [IMAGE_POSITION if token == self.patch else token for token in ids]

    def logits(self, messages: list[Message]) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(**self.inputs(messages)).logits[0, -1].numpy()

    def greedy(self, messages: list[Message]) -> tuple[str, int]:
        inputs = self.inputs(messages)
        with self.torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
        new = out[0, inputs["input_ids"].shape[-1] :].tolist()
        eos = set(self.model.generation_config.eos_token_id)
        new = new[: next((i for i, t in enumerate(new) if t in eos), len(new))]
        return _comparable(self.processor.tokenizer.decode(new, skip_special_tokens=True), len(new))


def _hf_message(message: Message) -> dict:
    from PIL import Image

    if not message.images:
        return {"role": message.role, "content": message.plain_text}
    content = [
        {"type": "image", "image": Image.open(io.BytesIO(p.data)).convert("RGB")}
        if isinstance(p, ImagePart)
        else {"type": "text", "text": p.text}
        for p in message.parts
    ]
    return {"role": message.role, "content": content}


@pytest.fixture(scope="module")
def reference(pair):
    return Reference(pair.hf_dir)


@pytest.fixture(scope="module")
def hf_engine(pair, settings):
    engine = engine_for(hf_model(pair.hf_dir), settings)
    engine.load()
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def server_engine(pair, settings, tmp_path_factory):
    """Our OpenAI backend against llama_cpp.server serving the same GGUF pair."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("parity-server") / "server.log", "w+")  # noqa: SIM115
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(pair.model_path)]
    command += ["--clip_model_path", str(pair.mmproj_path), "--chat_format", "mtmd"]
    command += ["--model_alias", "tiny-llama4-pair", "--n_ctx", "2048", "--api_key", KEY]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_for(url, proc)
        os.environ[KEY_ENV] = KEY
        spec = endpoint_model(url, "tiny-llama4-pair", {}, KEY_ENV, max_images=4, tiles="llama.cpp")
        engine = engine_for(spec, settings)
        # A real server's Llama 4 takes 336 px tiles; this tiny one takes 56.
        engine.tile_budget = replace(engine.tile_budget, tile=TILE)
        engine.load()
        yield engine
        engine.unload()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def planned(cpp, messages: list[Message]) -> list[Message]:
    return plan_messages(messages, cpp.tile_budget)


def answer(engine, messages: list[Message]) -> tuple[str, int]:
    events = list(engine.stream(messages, GREEDY))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return _comparable(text, events[-1].usage.completion_tokens)


def _comparable(text: str, tokens: int) -> tuple[str, int]:
    """Random weights emit byte tokens that are not whole UTF-8: we show U+FFFD for
    them, llama_cpp.server drops them. The tokens are the same either way."""
    return text.replace("\ufffd", ""), tokens


@pytest.mark.parametrize("case", CASES)
def test_llama_cpp_evaluates_the_reference_sequence(cpp, reference, case):
    messages = CASES[case]
    expected = reference.sequence(planned(cpp, messages))
    assert cpp.prompt_sequence(messages) == expected


def test_llama_cpp_renders_metas_chat_template(cpp, reference):
    assert cpp._llm.metadata["tokenizer.chat_template"] == reference.processor.chat_template


@pytest.mark.parametrize("case", CASES)
def test_next_token_logits_agree_with_the_reference(cpp, reference, case):
    messages = CASES[case]
    ours, theirs = cpp.next_token_logits(messages), reference.logits(planned(cpp, messages))
    assert ours.shape == theirs.shape
    cosine = float(ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs)))
    assert cosine >= 0.9999, f"{case}: cosine {cosine:.6f}"
    assert np.argsort(-ours)[:5].tolist() == np.argsort(-theirs)[:5].tolist()


@pytest.mark.parametrize("case", CASES)
def test_greedy_continuations_are_the_same_through_every_backend(
    local, cpp, hf_engine, server_engine, reference, case
):
    messages = CASES[case]
    expected = reference.greedy(planned(cpp, messages))
    assert answer(local, messages) == expected
    assert answer(cpp, messages) == expected
    assert answer(hf_engine, messages) == expected
    # llama_cpp.server keeps generating past max_tokens while the text so far ends in
    # an incomplete UTF-8 sequence (random weights emit lone bytes), so it may add a
    # token or two after the same sixteen.
    served, _ = answer(server_engine, messages)
    assert served.startswith(expected[0]) and len(served) <= len(expected[0]) + 4, served


@pytest.mark.parametrize("case", CASES)
def test_the_served_model_counts_what_llama_cpp_evaluates(local, cpp, case):
    messages = CASES[case]
    counted = local.count_tokens(messages)
    assert counted == cpp.count_tokens(messages) == len(cpp.prompt_sequence(messages))
    *_, final = local.stream(messages, SamplingParams(temperature=0, max_tokens=1))
    assert final.usage.prompt_tokens == counted  # and the server read as many


# -- the plan is what each backend evaluates ----------------------------------------

SIZES = {
    "tiny": (9, 7),
    "one tile": (TILE, TILE),
    "just over a tile": (TILE + 1, TILE),
    "wide": (700, 60),
    "tall": (50, 400),
    "huge": (4032, 3024),
    "PDF page": (pdf_page().width, pdf_page().height),
}


def _grid(sequence: list[int], cpp) -> tuple[int, int]:
    """(rows, cols) from the separators llama.cpp put in: one <|tile_y_separator|> per
    row, <|tile_x_separator|> between tiles of a row."""
    x_sep, y_sep = (cpp._llm.tokenize(t.encode(), add_bos=False, special=True)[0] for t in _SEPARATORS)
    rows = sequence.count(y_sep)
    return (rows, sequence.count(x_sep) // rows + 1) if rows else (1, 1)


_SEPARATORS = ("<|tile_x_separator|>", "<|tile_y_separator|>")


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_llama_cpp_cuts_the_planned_grid_and_costs_what_the_budget_says(local, cpp, size):
    budget = cpp.tile_budget
    assert budget == TileBudget(tile=TILE, max_tiles=9, max_side=3)  # from the mmproj header
    assert local.tile_budget == budget
    text = cpp.count_tokens([user("hi")])
    with_image = [user(gradient(*size), "hi")]
    plan = plan_image(*size, budget)
    assert cpp.count_tokens(with_image) - text == image_tokens(*size, budget) == plan.tokens
    assert local.count_tokens(with_image) - local.count_tokens([user("hi")]) == plan.tokens
    assert _grid(cpp.prompt_sequence(with_image), cpp) == (plan.rows, plan.cols)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_transformers_costs_what_the_budget_says_with_metas_sixteen_tiles(hf_engine, size):
    budget = hf_engine.tile_budget
    assert budget == TileBudget(tile=TILE, max_tiles=16, max_side=16)
    text = hf_engine.count_tokens([user("hi")])
    assert hf_engine.count_tokens([user(gradient(*size), "hi")]) - text == image_tokens(*size, budget)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_the_plan_picks_the_grid_metas_processor_picks(reference, size):
    """Given the raw image, Meta's processor chooses the grid our plan chooses for it."""
    from PIL import Image

    raw = Image.open(io.BytesIO(gradient(*size).data)).convert("RGB")
    chosen = reference.processor.image_processor(raw)["aspect_ratios"][0].tolist()
    plan = plan_image(*size, TileBudget(tile=TILE))
    assert chosen == [plan.rows, plan.cols]


@pytest.mark.parametrize(
    "size", [SIZES["one tile"], SIZES["wide"], SIZES["huge"]], ids=["one tile", "wide", "huge"]
)
def test_endpoint_estimate_of_an_image_is_what_the_server_evaluates(server_engine, size):
    """Without a /tokenize route our OpenAI backend estimates; an image's share of that
    estimate is what llama_cpp.server reports it evaluated for the planned canvas (asked
    without streaming: that server sends no usage in a stream)."""
    with_image, text_only = [user(gradient(*size), "hi")], [user("hi")]
    estimated = server_engine.count_tokens(with_image) - server_engine.count_tokens(text_only)
    served = _served_prompt_tokens(server_engine, with_image) - _served_prompt_tokens(
        server_engine, text_only
    )
    assert estimated == served == image_tokens(*size, server_engine.tile_budget)


def _served_prompt_tokens(engine, messages) -> int:
    import openai

    list(engine.stream(messages, SamplingParams(temperature=0, max_tokens=1)))  # what we send
    client = openai.OpenAI(base_url=engine.spec.endpoint, api_key=KEY)
    reply = client.chat.completions.create(
        model=engine.spec.remote_model, messages=engine.last_request["messages"], max_tokens=1, temperature=0
    )
    return reply.usage.prompt_tokens
