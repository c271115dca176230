"""What fits: the memory a model needs from its GGUF header and size, the largest
context a memory budget holds, the layers the free VRAM holds (`-ngl auto`)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from config import Settings
from engine.spec import GB
from models.catalogue import load_registry, user_model
from models.fit import ALL_LAYERS, CTX_STEP, fit, gguf_layout
from models.memory import COMPUTE_SHARE
from tests.conftest import REPO
from tests.fixtures import tiny_llama4 as tiny

TINY_KV = 2 * tiny.N_LAYER * tiny.N_HEAD_KV * tiny.HEAD_DIM * 2  # K and V, f16


def models_json(*args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "launch.py", "models", "--json", *args], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_gguf_header_gives_layers_and_kv_size(tiny_llama4, tmp_path):
    from tests.fixtures.split_gguf import write_tiny_llama4_split

    model, _ = tiny_llama4
    layout = gguf_layout(model)
    assert len(layout.layer_bytes) == tiny.N_LAYER and layout.kv_bytes_per_token == TINY_KV
    assert 0 < sum(layout.layer_bytes) + layout.other_bytes < model.stat().st_size
    # A split GGUF has the same layout, read over all of its parts.
    split = gguf_layout(write_tiny_llama4_split(tmp_path, parts=3)[0])
    assert split.layer_bytes == layout.layer_bytes and split.other_bytes == layout.other_bytes


def test_models_json_says_whether_the_tiny_gguf_fits_a_budget(tiny_llama4):
    model, mmproj = tiny_llama4
    weights = model.stat().st_size + mmproj.stat().st_size
    # Room for 1,100 tokens of KV cache: the largest context offered is 1,024 (a 256 step).
    budget_gb = (weights + TINY_KV * 1100) * (1 + COMPUTE_SHARE) / GB
    flags = ("--model-path", str(model), "--mmproj", str(mmproj), "--memory-budget-gb", f"{budget_gb:.9f}")
    row = next(r for r in models_json(*flags) if r["name"] == model.stem)
    assert row["n_ctx"] == tiny.CONTEXT_LENGTH and row["fits"] is False
    assert row["max_ctx_that_fits"] == 1024
    row = next(r for r in models_json(*flags, "-c", "1024") if r["name"] == model.stem)
    assert row["fits"] is True and row["n_gpu_layers_that_fit"] == 0  # no GPU counted here
    # The embedded model fits too; Maverick does not, not even its weights.
    rows = {r["name"]: r for r in models_json("--memory-budget-gb", "20")}
    assert rows["smollm2-135m"]["fits"] is True
    assert rows["maverick-q4_k_xl"]["fits"] is False and rows["maverick-q4_k_xl"]["max_ctx_that_fits"] == 0


@pytest.mark.parametrize(
    ("budget_gb", "fits", "max_ctx"),
    [(40, False, 4096), (60, True, 96512), (30, False, 0)],
)
def test_a_preset_not_on_disk_is_weighed_from_its_published_size(budget_gb, fits, max_ctx, tmp_path):
    scout = load_registry(Settings(models_dir=tmp_path)).get("scout-iq1_s")
    result = fit(scout, Settings(), budget=int(budget_gb * GB), vram=0)
    weights = scout.size_bytes + scout.mmproj_bytes
    expected = int((budget_gb * GB / (1 + COMPUTE_SHARE) - weights) // scout.kv_bytes_per_token)
    assert result.fits is fits and result.max_ctx_that_fits == max_ctx
    assert max_ctx == max(0, expected // CTX_STEP * CTX_STEP)
    assert result.n_gpu_layers == 0


def test_ngl_auto_offloads_the_layers_the_free_vram_holds(tiny_llama4):
    model, _ = tiny_llama4
    spec = replace(user_model(model), n_ctx=512)
    layout = gguf_layout(model)
    kv_layer = TINY_KV * 512 / tiny.N_LAYER  # dense and MoE blocks alternate: sizes differ
    first, second, third = layout.layer_bytes[:3]
    two_layers = int((first + second + 2 * kv_layer + third / 2) * (1 + COMPUTE_SHARE))
    settings, budget = Settings(), 10 * GB
    assert fit(spec, settings, budget=budget, vram=two_layers).n_gpu_layers == 2
    assert fit(spec, settings, budget=budget, vram=GB).n_gpu_layers == ALL_LAYERS
    assert fit(spec, settings, budget=budget, vram=0).n_gpu_layers == 0


def test_ngl_auto_runs_and_a_bad_value_is_one_line(tiny_llama4):
    model, _ = tiny_llama4
    ask = [sys.executable, "launch.py", "ask", "--model-path", str(model), "--no-save", "--max-tokens", "2"]
    ok = subprocess.run([*ask, "-ngl", "auto", "hi"], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*ask, "-ngl", "most", "hi"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "expected a number or auto" in bad.stderr
