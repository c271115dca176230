"""The tiny Llama 4 fixture must load through llama.cpp's real llama4 and mtmd paths."""

from __future__ import annotations

import base64
import io

import llama_cpp
import pytest

from tests.fixtures.tiny_llama4 import (
    CHAT_TEMPLATE,
    TOKENS_PER_TILE,
    write_tiny_llama4,
)


def _png_url(color: str, size: int = 56) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


def _image(color: str) -> dict:
    return {"type": "image_url", "image_url": {"url": _png_url(color)}}


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory):
    return write_tiny_llama4(tmp_path_factory.mktemp("tiny-llama4"))


@pytest.fixture
def text_llm(tiny_paths):
    llm = llama_cpp.Llama(str(tiny_paths[0]), n_ctx=2048, verbose=False)
    yield llm
    llm.close()


@pytest.fixture
def vision_llm(tiny_paths):
    model_path, mmproj_path = tiny_paths
    handler = llama_cpp.llama_chat_format.MTMDChatHandler(clip_model_path=str(mmproj_path), verbose=False)
    llm = llama_cpp.Llama(str(model_path), n_ctx=2048, chat_handler=handler, verbose=False)
    yield llm
    llm.close()


def test_text_model_loads_and_generates(text_llm):
    out = text_llm.create_completion("The cat is", max_tokens=4, temperature=0)
    assert out["usage"]["completion_tokens"] >= 1
    assert text_llm.metadata["general.architecture"] == "llama4"


def test_tokenizer_merges_and_special_tokens(text_llm):
    text = b"the house of the cat is in the garden"
    assert len(text_llm.tokenize(text, add_bos=False)) < len(text)
    header = text_llm.tokenize(b"<|header_start|>", add_bos=False, special=True)
    assert len(header) == 1
    eot = text_llm.token_eos()
    assert text_llm.detokenize([eot], special=True) == b"<|eot|>"
    vocab = llama_cpp.llama_model_get_vocab(text_llm.model)
    assert llama_cpp.llama_vocab_is_eog(vocab, eot)


def test_chat_template_renders_llama4_format():
    import jinja2

    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    parts = [_text("Look: "), {"type": "image"}, _text(" ok?")]
    rendered = template.render(
        bos_token="<|begin_of_text|>",
        add_generation_prompt=True,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}],
    )
    assert rendered == (
        "<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
        "<|header_start|>user<|header_end|>\n\nLook: <|image|> ok?<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n"
    )


def _prompt_tokens(llm, content: list[dict]) -> int:
    out = llm.create_chat_completion(
        messages=[{"role": "user", "content": content}], max_tokens=2, temperature=0
    )
    assert out["choices"][0]["message"]["role"] == "assistant"
    return out["usage"]["prompt_tokens"]


def test_mtmd_chat_with_images(vision_llm):
    one = _prompt_tokens(vision_llm, [_text("Compare"), _image("red"), _text("with")])
    two = _prompt_tokens(vision_llm, [_text("Compare"), _image("red"), _text("with"), _image("blue")])
    assert two - one >= TOKENS_PER_TILE


def test_seeds_change_weights_and_are_deterministic(tmp_path):
    first = write_tiny_llama4(tmp_path / "a", seed=0)
    again = write_tiny_llama4(tmp_path / "b", seed=0)
    other = write_tiny_llama4(tmp_path / "c", seed=1)
    for a, b, c in zip(first, again, other, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
