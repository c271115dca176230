"""Refusals before any work (evals/prechecks.py): mismatched tokenizers (GGUF headers,
transformers tokenizer files), an endpoint where fidelity needs log-probs, a missing
file, a remote model that cannot answer, a document with no text; each in seconds."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from engine.spec import ModelSpec
from engine.types import EngineInputError
from evals.fidelity import FidelityError, run_fidelity
from evals.prechecks import check_fidelity, check_runnable
from models.catalogue import hf_model, user_model


def test_gguf_tokenizers_that_differ_are_refused_within_two_seconds(smollm2, tiny_llama4):
    specs = {"smol": smollm2.spec, "tiny": user_model(*tiny_llama4)}
    started = time.monotonic()
    with pytest.raises(FidelityError, match="tiny and smol have different tokenizers"):
        check_fidelity(specs, with_images=False)
    assert time.monotonic() - started < 2.0
    check_fidelity({"smol": smollm2.spec, "same": smollm2.spec}, with_images=False)


def test_checkpoint_tokenizers_are_compared_by_their_files(tiny_llama4_hf, tmp_path):
    copy = shutil.copytree(tiny_llama4_hf, tmp_path / "copy")
    check_fidelity({"ref": hf_model(tiny_llama4_hf), "copy": hf_model(copy)}, with_images=False)
    tokenizer = copy / "tokenizer.json"
    data = json.loads(tokenizer.read_text())
    tokenizer.write_text(json.dumps(data, indent=4))  # saved another way: the same tokenizer
    check_fidelity({"ref": hf_model(tiny_llama4_hf), "copy": hf_model(copy)}, with_images=False)
    data["model"]["vocab"].popitem()
    tokenizer.write_text(json.dumps(data))
    with pytest.raises(FidelityError, match=r"copy and ref have different tokenizers \(tokenizer.json"):
        check_fidelity({"ref": hf_model(tiny_llama4_hf), "copy": hf_model(copy)}, with_images=False)


def test_an_endpoint_is_refused_before_anything_loads(smollm2):
    remote = ModelSpec(name="remote", label="remote", backend="openai", endpoint="http://127.0.0.1:9/v1")
    with pytest.raises(FidelityError, match="remote cannot give next-token log-probs"):
        check_fidelity({"smol": smollm2.spec, "remote": remote}, with_images=False)


def test_a_missing_file_is_named(smollm2, tmp_path):
    gone = user_model(shutil.copy(smollm2.spec.model_path, tmp_path / "gone.gguf"))
    (tmp_path / "gone.gguf").unlink()  # deleted after the server offered it
    with pytest.raises(EngineInputError, match=r"gone cannot run here: file not found: .*gone.gguf"):
        check_runnable({"smol": smollm2.spec, "gone": gone})


def test_a_remote_model_that_cannot_answer_is_refused_at_once(smollm2):
    down = ModelSpec(name="down", label="down", backend="openai", endpoint="http://127.0.0.1:9/v1")
    keyless = ModelSpec(
        name="keyless", label="keyless", backend="openai", endpoint="http://127.0.0.1:9/v1",
        api_key_env="L4P_TEST_NO_SUCH_KEY",
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(EngineInputError, match="down cannot answer now"):
        check_runnable({"smol": smollm2.spec, "down": down})
    with pytest.raises(EngineInputError, match="keyless cannot answer now: no key"):
        check_runnable({"keyless": keyless})
    assert time.monotonic() - started < 10.0  # the listing's own timeout, not a run


def test_a_document_without_text_is_refused_before_a_model_loads():
    loaded = []
    with pytest.raises(FidelityError, match="no text to score"):
        run_fidelity(loaded.append, lambda e: None, "ref", ["copy"], [(1, " "), (2, "")], 64)
    assert loaded == []
