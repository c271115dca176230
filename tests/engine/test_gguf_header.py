"""GGUF headers read by walking the key/value section (engine/gguf_header.py): the
same values gguf-py's reader finds, without decoding the vocabulary."""

from __future__ import annotations

import pytest

from engine.gguf import read_gguf_facts
from engine.gguf_header import header_values, tokenizer_identity
from engine.types import EngineInputError


def test_the_walk_finds_what_gguf_py_finds(tiny_llama4):
    from gguf import GGUFReader

    for path in tiny_llama4:
        fields = GGUFReader(str(path), "r").fields
        walked = header_values(path)
        scalars = {
            k: f.contents() for k, f in fields.items() if not k.startswith("GGUF.") and len(f.types) == 1
        }
        assert {k: walked[k] for k in scalars} == pytest.approx(scalars)
    assert read_gguf_facts(tiny_llama4[0])["architecture"] == "llama4"


def test_the_vocabulary_is_hashed_and_a_changed_one_differs(tiny_llama4, tmp_path):
    import hashlib

    from gguf import GGUFReader

    tokens = GGUFReader(str(tiny_llama4[0]), "r").fields["tokenizer.ggml.tokens"]
    identity = tokenizer_identity(tiny_llama4[0])
    assert identity["tokenizer.ggml.tokens"].startswith("sha256:")
    assert identity["tokenizer.ggml.model"] == "gpt2" and len(tokens.contents()) > 100
    changed = tmp_path / "changed.gguf"
    data = bytearray(tiny_llama4[0].read_bytes())
    at = data.index(b"<|image_start|>")
    data[at : at + 15] = b"<|image_begin|>"[:15]
    changed.write_bytes(bytes(data))
    assert tokenizer_identity(changed)["tokenizer.ggml.tokens"] != identity["tokenizer.ggml.tokens"]
    assert hashlib.sha256(b"").hexdigest() not in identity.values()


def test_not_a_gguf_is_one_line(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\xff" * 40)
    with pytest.raises(EngineInputError, match="not a readable GGUF"):
        header_values(junk)
