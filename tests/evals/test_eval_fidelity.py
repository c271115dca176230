"""Fidelity (evals/fidelity.py) on the embedded model: a byte-identical copy, a copy
requantized to Q2_K, a model with another tokenizer, and the windowing arithmetic."""

from __future__ import annotations

import shutil

import pytest

from evals.fidelity import FidelityError, run_fidelity, windows
from models.catalogue import hf_model, user_model
from models.engines import scoring_engine_for

TEXT = (
    "The Llama 4 herd of models are natively multimodal. Scout has 17 billion active "
    "parameters and 16 experts; Maverick has 128 experts. Both were trained on text, "
    "images and video, in two hundred languages, and they read images early, fused with "
    "the text. This report describes how the models were trained, how they were evaluated, "
    "and what they can and cannot do. "
) * 4


@pytest.fixture(scope="module")
def variants(smollm2, tmp_path_factory):
    """The embedded GGUF, a byte-identical copy of it, and a Q2_K requantization."""
    import llama_cpp

    folder = tmp_path_factory.mktemp("fidelity")
    original = smollm2.spec.model_path
    copy = shutil.copy(original, folder / "copy.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K
    params.allow_requantize = True
    q2k = folder / "q2k.gguf"
    assert llama_cpp.llama_model_quantize(str(original).encode(), str(q2k).encode(), params) == 0
    return {"ref": smollm2.spec, "copy": user_model(copy), "q2k": user_model(q2k)}


def _loader(specs, settings):
    def load(name):
        engine = scoring_engine_for(specs[name], settings)
        engine.load()
        return engine

    return load


def test_a_copy_matches_and_a_requantized_copy_strays(variants, settings):
    seen = []
    copy, q2k = run_fidelity(
        _loader(variants, settings), lambda e: e.unload(), "ref", ["copy", "q2k"], [(None, TEXT)], 128,
        lambda fraction, what: seen.append(what),
    )  # fmt: skip
    assert copy.tokens == q2k.tokens > 200
    assert copy.kl_mean < 1e-6 and copy.kl_p99 < 1e-6 and copy.top1_agreement == 1.0
    assert copy.ppl == copy.ppl_reference
    assert q2k.kl_mean > 0.01 and q2k.kl_p99 > q2k.kl_mean and q2k.top1_agreement < 0.95
    assert q2k.ppl != q2k.ppl_reference
    assert len(q2k.kl_curve) == q2k.tokens and max(q2k.kl_curve) >= q2k.kl_p99
    worst = q2k.passages[0]
    assert worst.kl_mean >= q2k.passages[-1].kl_mean and worst.text and worst.page is None
    assert set(q2k.summary()) == {
        "model", "reference", "tokens", "kl_mean", "kl_p99", "top1_agreement", "ppl", "ppl_reference"
    }  # fmt: skip
    assert any("window" in what for what in seen)


def test_passages_name_their_pages(variants, settings):
    pages = [(1, TEXT), (2, "A second page about experts and routing. " * 8), (3, TEXT)]
    (result,) = run_fidelity(_loader(variants, settings), lambda e: e.unload(), "ref", ["q2k"], pages, 128)
    assert {p.page for p in result.passages} <= {1, 2, 3} and all(p.page for p in result.passages)


def test_models_that_tokenize_differently_are_refused(variants, tiny_llama4, settings):
    specs = {**variants, "tiny": user_model(*tiny_llama4)}
    with pytest.raises(FidelityError, match="tokenize the document differently"):
        run_fidelity(_loader(specs, settings), lambda e: e.unload(), "ref", ["tiny"], [(None, TEXT)], 64)


def test_an_endpoint_is_refused_with_one_line(variants, settings):
    class Endpoint:
        def unload(self):
            pass

    def load(name):
        return Endpoint() if name == "remote" else _loader(variants, settings)(name)

    with pytest.raises(FidelityError, match="remote cannot give next-token log-probs"):
        run_fidelity(load, lambda e: e.unload(), "ref", ["remote"], [(None, TEXT)], 64)


def test_a_document_without_text_is_refused(variants, settings):
    with pytest.raises(FidelityError, match="no text to score"):
        run_fidelity(_loader(variants, settings), lambda e: e.unload(), "ref", ["copy"], [(1, "")], 64)


def test_transformers_backend_scores_a_copy_as_identical(tiny_llama4_hf, settings, tmp_path):
    copy = shutil.copytree(tiny_llama4_hf, tmp_path / "copy")
    specs = {"ref": hf_model(tiny_llama4_hf), "copy": hf_model(copy)}
    (result,) = run_fidelity(
        _loader(specs, settings), lambda e: e.unload(), "ref", ["copy"], [(None, TEXT)], 64
    )
    assert result.kl_mean < 1e-6 and result.top1_agreement == 1.0


@pytest.mark.parametrize("n_tokens", [1, 2, 7, 64, 65, 200, 1000])
@pytest.mark.parametrize("window", [8, 64, 100])
def test_every_target_is_scored_once_with_half_a_window_of_context(n_tokens, window):
    scored = []
    for start, end, first in windows(n_tokens, window):
        assert end - start <= window and start <= first <= end
        assert start == 0 or first - start >= window // 2 - 1
        scored += range(first, end)
    assert scored == list(range(n_tokens))
