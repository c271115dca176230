"""Model presets, user models and memory estimates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from config import Settings
from engine.gguf import read_gguf_facts
from engine.spec import GB
from errors import UserError
from models.catalogue import load_registry, user_model


@pytest.fixture
def registry(tmp_path):
    return load_registry(Settings(models_dir=tmp_path))


def test_default_is_the_embedded_model(registry):
    spec = registry.get(registry.default)
    assert spec.available and not spec.vision
    assert spec.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert spec.n_ctx == 8192


def test_scout_presets_carry_published_facts(registry, tmp_path):
    scout = registry.get("scout-q4_k_xl")
    assert scout.vision and scout.is_llama and not scout.available
    assert scout.max_context == 10_000_000 and scout.n_ctx < scout.max_context
    assert scout.size_bytes == int(62.0 * GB)  # the repo's figure (issue 25), not the first upload's 65.6
    assert scout.missing_files()[0].parent == tmp_path
    assert registry.get("maverick-q4_k_xl").max_context == 1_000_000


def test_memory_estimate_grows_with_context(registry):
    scout = registry.get("scout-q2_k_xl")
    small, large = scout.estimated_memory(8192), scout.estimated_memory(131072)
    assert large - small == scout.kv_bytes_per_token * (131072 - 8192)
    assert small > scout.size_bytes


def test_user_model_reads_its_gguf(tiny_llama4):
    model, mmproj = tiny_llama4
    spec = user_model(model, mmproj)
    assert spec.vision and spec.is_llama and spec.available
    assert spec.max_context == 4096
    facts = read_gguf_facts(model)
    assert facts["architecture"] == "llama4" and facts["block_count"] == 4
    # KV per token from the header: 2 x 4 layers x 2 kv heads x 16 dims x 2 bytes
    assert spec.estimated_memory(1000) - spec.estimated_memory(1) == 512 * 999


def test_resolve_prefers_model_path_and_applies_ctx(tiny_llama4, tmp_path):
    model, mmproj = tiny_llama4
    settings = Settings(models_dir=tmp_path, model_path=model, mmproj=mmproj, n_ctx=1024)
    spec = load_registry(settings).resolve(settings)
    assert spec.model_path == model and spec.n_ctx == 1024


def test_unknown_model_names_the_known_ones(registry):
    with pytest.raises(UserError, match="smollm2-135m"):
        registry.get("gpt-17")


def test_sampling_defaults_and_overrides(registry):
    spec = registry.get(registry.default)
    assert spec.sampling_params().temperature == 0.0
    assert spec.sampling_params(temperature=0.7, seed=None).temperature == 0.7
    scout = replace(registry.get("scout-iq1_s"))
    params = scout.sampling_params()
    assert (params.temperature, params.top_p, params.min_p) == (0.6, 0.9, 0.01)


def test_endpoint_presets_list_without_a_server(registry):
    maverick = registry.get("maverick-fp8-vllm")
    assert maverick.is_remote and maverick.vision and maverick.available
    assert maverick.max_images == 10 and maverick.n_ctx == 430_000
    assert maverick.estimated_memory() == 0 and maverick.status.startswith("served at http://")
    assert registry.get("maverick-fp8-hf").backend == "transformers"
    assert not registry.get("maverick-fp8-hf").available


def test_endpoint_flags_borrow_a_presets_limits(tmp_path):
    url = "http://gpu-box:8000/v1/"
    by_name = Settings(models_dir=tmp_path, endpoint=url, model="maverick-fp8-vllm")
    spec = load_registry(by_name).resolve(by_name)
    assert spec.endpoint == "http://gpu-box:8000/v1" and spec.max_images == 10
    by_id = Settings(
        models_dir=tmp_path, endpoint=url, model="meta-llama/Llama-4-Scout-17B-16E-Instruct", n_ctx=50_000
    )
    spec = load_registry(by_id).resolve(by_id)
    assert spec.name == "scout-bf16-vllm" and spec.n_ctx == 50_000
    ad_hoc = Settings(models_dir=tmp_path, endpoint=url, model="my-text-model", max_images=None)
    spec = load_registry(ad_hoc).resolve(ad_hoc)
    assert spec.remote_model == "my-text-model" and not spec.vision  # no images it might ignore


@pytest.mark.parametrize(
    ("endpoint", "model", "message"),
    [("gpu-box:8000", "m", "must be an http"), ("http://gpu-box:8000/v1", None, "needs --model")],
)
def test_bad_endpoint_flags_are_one_line(tmp_path, endpoint, model, message):
    with pytest.raises(UserError, match=message):
        load_registry(Settings(models_dir=tmp_path, endpoint=endpoint, model=model))


def test_no_two_models_share_a_label_in_the_pickers(smollm2, tmp_path):
    """Two files with the same model inside (a copy, another folder's quant) read apart."""
    import shutil

    from config import Settings
    from models.catalogue import load_registry, user_model

    first = shutil.copy(smollm2.spec.model_path, tmp_path / "first.gguf")
    second = shutil.copy(smollm2.spec.model_path, tmp_path / "second.gguf")
    registry = load_registry(Settings(data_dir=tmp_path / "data", extra_models=[str(first), str(second)]))
    labels = [spec.label for spec in registry.specs.values()]
    assert len(labels) == len(set(labels)), labels
    assert registry.get("second").label.endswith("(second)")
    registry.add(user_model(shutil.copy(first, tmp_path / "third.gguf")))
    assert registry.get("third").label.endswith("(third)")
    assert len({spec.label for spec in registry.specs.values()}) == len(registry.specs)
