"""The pickers and the Models tab offer a remote model only while its server lists it
(models/availability.py against servers on loopback); the others show why."""

from __future__ import annotations

from app.models_tab import _status, get_more, picker_choices, ready_choices
from engine.spec import ModelSpec
from models.availability import Checker
from tests.fixtures.model_lists import ModelList, dead_url

ACME = {"provider": "acme", "api_key_env": "PICKER_TEST_KEY"}


def remote(name: str, url: str, model: str, **more) -> ModelSpec:
    return ModelSpec(name, f"{name} label", backend="openai", endpoint=url, remote_model=model, **more)


def test_only_ready_remote_models_are_offered_and_the_rest_say_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PICKER_TEST_KEY", "sk-p")
    monkeypatch.delenv("PICKER_TEST_MISSING", raising=False)
    local = tmp_path / "here.gguf"
    local.write_bytes(b"GGUF")
    with ModelList(["meta-llama/llama-4-scout"], key="sk-p") as server:
        specs = [
            ModelSpec("here", "Here", model_path=local),
            remote("up", server.url, "meta-llama/llama-4-scout", **ACME),
            remote("gone", server.url, "meta-llama/llama-4-old", **ACME),
            remote("down", dead_url(), "llama4"),
            remote("nokey", "https://x.invalid/v1", "m", provider="x", api_key_env="PICKER_TEST_MISSING"),
        ]
        checks = Checker().check_all(specs)
    assert [name for _, name in ready_choices(specs, checks)] == ["here", "up"]
    labels = dict((name, label) for label, name in picker_choices(specs, checks))
    assert list(labels) == ["here", "up", "gone", "down", "nokey"]
    assert labels["gone"] == (
        "get more: gone label (no longer served: acme does not list meta-llama/llama-4-old; "
        "its Llama 4 models: meta-llama/llama-4-scout)"
    )
    assert labels["down"].startswith("get more: down label (not reachable: nothing answers at")
    assert labels["nokey"] == "get more: nokey label"  # its missing key is what it lacks, as before
    fold = get_more(specs, checks)
    assert fold.startswith("3 more:") and "- `down` · not reachable: nothing answers at" in fold
    assert "- `nokey` · an API key in $PICKER_TEST_MISSING" in fold
    assert _status(specs[1], None, checks["up"]) == f"ready at {server.url}"
    assert _status(specs[2], None, checks["gone"]).startswith("no longer served: acme")
    # Unchecked (L4P_CHECK_SERVERS=0): offered as before, on what the settings say.
    assert [name for _, name in ready_choices(specs)] == ["here", "down", "up", "gone"]
