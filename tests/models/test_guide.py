"""The first run's advice (models/guide.py): the biggest Llama 4 quant that fits the
memory budget, or none; a hosted preset whose key is set before one whose key is not;
nothing at all once a Llama 4 runs."""

from __future__ import annotations

import pytest

from config import Settings
from models.catalogue import load_registry
from models.guide import next_step

KEYS = ("OPENROUTER_API_KEY", "DEEPINFRA_API_KEY", "SAMBANOVA_API_KEY")


@pytest.fixture
def no_keys(monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


def step_for(budget_gb: float | None, tmp_path, running: str = "smollm2-135m"):
    settings = Settings(data_dir=tmp_path, memory_budget_gb=budget_gb)
    specs = load_registry(settings).specs
    return next_step(list(specs.values()), specs[running], settings)


@pytest.mark.parametrize(
    ("budget", "quant"),
    [
        (47, "scout-iq1_s"),
        (48, "scout-iq1_m"),
        (60, "scout-q2_k_xl"),
        (70, "scout-q3_k_xl"),
        (300, "maverick-q4_k_xl"),
    ],
)
def test_the_biggest_llama4_quant_that_fits_is_the_one_offered(budget, quant, tmp_path, no_keys):
    step = step_for(budget, tmp_path)
    assert step.local.name == quant
    running, way = step.lines()
    assert running == "Running SmolLM2 135M Instruct Q4_1 (the embedded model, text only): not Llama 4."
    assert f"launch.py pull {quant} (or Pull in the page's Models tab)" in way
    assert "`" not in way and "`launch.py pull" in step.lines(page=True)[1]


def test_nothing_fits_says_so_and_offers_a_provider(tmp_path, no_keys):
    step = step_for(8, tmp_path)
    assert step.local is None
    way = step.lines()[1]
    assert way.startswith("For Llama 4: no Llama 4 quant fits the 8 GB free here; or use ")
    assert "set OPENROUTER_API_KEY and run launch.py --provider openrouter-scout" in way


def test_a_provider_whose_key_is_set_comes_first(tmp_path, no_keys, monkeypatch):
    monkeypatch.setenv("SAMBANOVA_API_KEY", "sk-x")
    step = step_for(8, tmp_path)
    assert step.hosted.name == "sambanova-maverick"
    assert step.lines()[1].endswith(
        "use Llama 4 Maverick on SambaNova Cloud (launch.py --provider sambanova-maverick)."
    )


def test_nothing_is_said_once_a_llama4_runs(tmp_path):
    assert step_for(60, tmp_path, running="openrouter-scout") is None
