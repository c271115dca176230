"""The figures in assets/models.toml are right: every local preset's KV bytes per token
is recomputed from the architecture it carries (and the embedded model's from its own
GGUF header), the architectures are the checkpoints' own, retired hosted presets are
never offered, and a pull finds a repo's mmproj by pattern when the preset's name for it
is not in the repo (tests/fixtures/hf_hub.py on loopback)."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from config import Settings
from tests.conftest import REPO

TOML = tomllib.loads((REPO / "assets" / "models.toml").read_text())
PRESETS = TOML["models"]
LOCAL = {
    name: entry
    for name, entry in PRESETS.items()
    if entry.get("backend", "llama.cpp") != "openai" and "retired" not in entry
}
# config.json figures of the checkpoints (num_hidden_layers, num_key_value_heads, head_dim).
CONFIGS = {"SmolLM2-135M": (30, 3, 64), "Llama-4-Scout": (48, 8, 128), "Llama-4-Maverick": (48, 8, 128)}


def kv_bytes(layers: int, kv_heads: int, head_dim: int) -> int:
    return layers * kv_heads * head_dim * 2 * 2  # K and V, f16


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_every_local_preset_s_kv_bytes_follow_from_its_architecture(name):
    entry = LOCAL[name]
    arch = (entry["layers"], entry["kv_heads"], entry["head_dim"])
    assert entry["kv_bytes_per_token"] == kv_bytes(*arch), name
    assert arch == CONFIGS[family_of(name, entry)], name


def family_of(name: str, entry: dict) -> str:
    """'Llama 4 Scout 17B-16E ...' -> 'Llama-4-Scout'."""
    text = f"{entry.get('label', '')} {name}".lower().replace(" ", "-")
    return next(key for key in CONFIGS if key.lower() in text)


def test_the_embedded_model_s_figure_matches_its_gguf_header():
    from engine.gguf import gguf_kv_bytes_per_token
    from models.catalogue import load_registry

    spec = load_registry(Settings()).get("smollm2-135m")
    assert spec.kv_bytes_per_token == 23040 == gguf_kv_bytes_per_token(spec.model_path)


def test_scout_quant_figures():
    q3, q4 = PRESETS["scout-q3_k_xl"], PRESETS["scout-q4_k_xl"]
    assert q3["hf_file"] == "Llama-4-Scout-17B-16E-Instruct-UD-Q3_K_XL.gguf"
    assert q4["size_gb"] == 62.0
    assert q4["hf_file"] == "UD-Q4_K_XL/Llama-4-Scout-17B-16E-Instruct-UD-Q4_K_XL-00001-of-00002.gguf"


def test_retired_hosted_presets_are_never_offered_and_say_so():
    from errors import UserError
    from models.catalogue import load_registry
    from models.providers import choose

    retired = {name for name, entry in PRESETS.items() if "retired" in entry}
    assert {"groq-scout", "llama-api-maverick", "together-maverick"} <= retired
    registry = load_registry(Settings())
    assert not retired & set(registry.specs)
    with pytest.raises(UserError, match=r"^groq: retired \(2026-07: Groq decommissioned Llama 4 Scout\)"):
        choose(registry.specs, "groq", retired=registry.retired)
    for entry in (PRESETS[name] for name in retired):
        assert entry["retired"][:4].isdigit()  # "YYYY-MM: why"


def test_pull_takes_the_repo_s_mmproj_by_pattern_when_the_preset_s_name_is_absent(tiny_llama4, tmp_path):
    from hub.pull import plan_preset, run
    from models.catalogue import load_registry
    from tests.fixtures.hf_hub import FakeHub

    model, mmproj = tiny_llama4
    hub = FakeHub()
    hub.add_repo("unsloth/tiny-llama4-GGUF", {"tiny-llama4-Q8_0.gguf": model, "mmproj-F16.gguf": mmproj})
    registry_file = tmp_path / "models.toml"
    registry_file.write_text(
        """
[models.tiny]
family = "llama4"
file = "tiny-llama4-Q8_0.gguf"
mmproj = "mmproj-tiny-llama4-F16.gguf"
hf_repo = "unsloth/tiny-llama4-GGUF"
hf_file = "tiny-llama4-Q8_0.gguf"
hf_mmproj = "mmproj-Llama-4-Tiny-NOT-IN-THE-REPO-F16.gguf"
"""
    )
    settings = Settings(data_dir=tmp_path, registry_file=registry_file)
    spec = load_registry(settings).get("tiny")
    hub.start()
    try:
        plan = plan_preset(spec, endpoint=hub.url)
        assert [f.remote.path for f in plan.files] == ["tiny-llama4-Q8_0.gguf", "mmproj-F16.gguf"]
        run(plan, settings.resolved_models_dir, endpoint=hub.url)
    finally:
        hub.stop()
    landed = spec.mmproj_path
    assert landed.is_file() and landed.name == "mmproj-tiny-llama4-F16.gguf"
    assert hashlib.sha256(landed.read_bytes()).digest() == hashlib.sha256(mmproj.read_bytes()).digest()
    assert load_registry(settings).get("tiny").available
