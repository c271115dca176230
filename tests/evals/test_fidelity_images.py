"""Fidelity on image prompts (evals/fidelity_images.py) on the tiny random-weight
Llama 4: the same weights agree, other weights stray, both variants' images take the
positions the image plan gives, and mismatched tokenizers or projectors are refused
from the headers alone."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.image_plan import plan_image
from evals.fidelity import FidelityError
from evals.fidelity_images import check_comparable, run_image_fidelity
from evals.image_suite import load_image_prompts
from models.catalogue import user_model
from models.engines import scoring_engine_for


@pytest.fixture(scope="module")
def specs(tiny_llama4, tiny_llama4_seed1):
    same = user_model(*tiny_llama4)
    return {"tiny": user_model(*tiny_llama4), "same": same, "seed1": user_model(*tiny_llama4_seed1)}


def test_builtin_prompts_have_images_and_text_twins():
    prompts = load_image_prompts()
    kinds = [p.kind for p in prompts]
    assert kinds.count("image") == kinds.count("text") >= 5
    for image, twin in zip(prompts[::2], prompts[1::2], strict=True):
        assert twin.name == image.name + "/text" and twin.answer == image.answer
        assert image.images[0].data.startswith(b"\x89PNG") and not twin.images
    assert len({p.images[0].data for p in prompts[::2]}) == len(prompts) // 2  # all drawn differently


def test_same_weights_agree_and_other_weights_stray(specs, settings):
    prompts = load_image_prompts()[:2]  # a bar chart and its text twin

    def load(name):
        engine = scoring_engine_for(specs[name], settings)
        engine.load()
        budgets.append(engine.tile_budget)
        return engine

    budgets, seen = [], []
    same, other = run_image_fidelity(
        load, lambda e: e.unload(), "tiny", ["same", "seed1"], prompts, lambda f, what: seen.append(what)
    )
    assert same.tokens == other.tokens > 10
    assert same.kl_mean < 1e-6 and same.top1_agreement == 1.0 and not same.worst
    assert other.kl_mean > 1e-4 and other.kl_p99 >= other.kl_mean
    assert set(other.by_kind) == {"image", "text"}
    assert other.by_kind["image"]["tokens"] + other.by_kind["text"]["tokens"] == other.tokens
    assert other.worst and other.worst[0].kl == max(g.kl for g in other.worst)
    assert {g.kind for g in other.worst} <= {"image", "text"}
    # Every model's image took the embeddings its tile plan gives (one image per run).
    image = prompts[0].images[0]
    plan = plan_image(image.width, image.height, budgets[0])
    assert same.image_tokens == other.image_tokens == same.image_tokens_reference
    assert same.image_tokens == plan.tiles * plan.budget.tokens_per_tile
    assert any("bar" in what for what in seen)
    row = other.summary()
    assert row["image_tokens"] == other.image_tokens and np.isfinite(row["ppl"])


def test_mismatched_tokenizers_refused_from_headers(specs, smollm2):
    check_comparable(specs, with_images=True)  # same tokenizer, same projector facts
    with pytest.raises(FidelityError, match="different tokenizers"):
        check_comparable({"tiny": specs["tiny"], "smol": smollm2.spec}, with_images=False)


def test_projectors_must_cut_images_alike(specs, tiny_llama4, tmp_path):
    from doctor.tiny_llama4 import _vision_kv, _vision_tensors, _write_gguf

    bigger = tmp_path / "mmproj-112.gguf"
    kv = {"general.type": "mmproj", **_vision_kv(), "clip.vision.image_size": 112}
    _write_gguf(bigger, "clip", kv, _vision_tensors(np.random.default_rng(0)))
    odd = {"tiny": specs["tiny"], "odd": user_model(tiny_llama4[0], bigger)}
    with pytest.raises(FidelityError, match="image_size"):
        check_comparable(odd, with_images=True)
    check_comparable(odd, with_images=False)  # text alone does not need the projectors
    blind = {"tiny": specs["tiny"], "blind": user_model(tiny_llama4[0])}
    with pytest.raises(FidelityError, match="blind has no projector"):
        check_comparable(blind, with_images=True)


def test_a_copied_file_reads_the_same(tiny_llama4, tmp_path):
    from engine.gguf_header import projector_identity, tokenizer_identity

    copy = shutil.copy(tiny_llama4[0], tmp_path / "copy.gguf")
    assert tokenizer_identity(copy) == tokenizer_identity(tiny_llama4[0])
    assert tokenizer_identity(copy)["tokenizer.ggml.tokens"].startswith("sha256:")
    assert projector_identity(tiny_llama4[1])["clip.projector_type"] == "llama4"
