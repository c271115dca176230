"""Several models answering one prompt through the real backends: together when they
fit in memory, one after another when the memory guard says they do not."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from chat.together import CompareJob, ModelEvent, Notice, Refused, check_jobs, run_comparison
from config import Settings
from documents.parts import ChatMessage
from engine import Final, PromptProgress, TextDelta
from engine.spec import GB
from engine.types import ImagePart
from errors import UserError
from models.catalogue import load_registry, parse_extra_model, vision_hint
from models.manager import ModelManager
from models.memory import MemoryGuard, model_cost

QUESTION = "What is the capital of France?"


@pytest.fixture
def three_models(tiny_llama4, tiny_llama4_seed1):
    """SmolLM2 and the tiny Llama 4 at two seeds, registered as extra models."""
    extras = [f"{m}:{p}" for m, p in (tiny_llama4, tiny_llama4_seed1)]
    return Settings(extra_models=extras)


def jobs_for(registry, names: list[str], text: str = QUESTION) -> list[CompareJob]:
    jobs = []
    for name in names:
        spec = registry.get(name)
        messages = [ChatMessage.text("system", spec.system_prompt)] if spec.system_prompt else []
        params = spec.sampling_params(max_tokens=24, temperature=0.0, seed=1)
        jobs.append(CompareJob(spec, [*messages, ChatMessage.text("user", text)], params))
    return jobs


def run_watching(manager: ModelManager, jobs: list[CompareJob]):
    """The events, and which models were loaded whenever one of them streamed."""
    events, loaded_while_streaming = [], []
    for event in run_comparison(manager, jobs, threading.Event()):
        events.append(event)
        if isinstance(event, ModelEvent) and isinstance(event.event, TextDelta):
            loaded_while_streaming.append(set(manager.loaded_names))
    return events, loaded_while_streaming


def texts_and_finals(events, n: int):
    texts = [""] * n
    finals: list[list] = [[] for _ in range(n)]
    for event in events:
        if isinstance(event, ModelEvent):
            if isinstance(event.event, TextDelta):
                texts[event.index] += event.event.text
            elif not isinstance(event.event, PromptProgress):
                finals[event.index].append(event.event)
    return texts, finals


def test_three_models_answer_together_through_the_real_backends(three_models):
    registry = load_registry(three_models)
    names = ["smollm2-135m", "tiny-llama4", "tiny-llama4-2"]
    assert registry.get("tiny-llama4-2").label.endswith("(tiny-llama4-2)")  # same stem, kept apart
    manager = ModelManager(registry, three_models)
    try:
        events, loaded = run_watching(manager, jobs_for(registry, names))
    finally:
        manager.close()
    assert not any(isinstance(e, Notice) for e in events)  # they fit: no "one after another"
    texts, finals = texts_and_finals(events, 3)
    assert all(len(f) == 1 and isinstance(f[0], Final) for f in finals)  # exactly one end each
    assert "Paris" in texts[0]
    assert texts[1] and texts[2] and texts[1] != texts[2]  # other weights, other (gibberish) text
    assert all(f[0].usage.prompt_tokens > 0 and f[0].usage.ttft_s > 0 for f in finals)
    assert set(names) in loaded  # all three were in memory while answering
    assert manager.loaded_names == []


def test_memory_guard_runs_them_one_after_another_when_the_budget_is_too_small(three_models):
    registry = load_registry(three_models)
    names = ["smollm2-135m", "tiny-llama4"]
    costs = [model_cost(registry.get(name)) for name in names]
    # Room for the bigger one alone, not for both.
    tight = Settings(extra_models=three_models.extra_models, memory_budget_gb=(max(costs) + 1) / GB)
    manager = ModelManager(registry, tight)
    try:
        events, loaded = run_watching(manager, jobs_for(registry, names))
    finally:
        manager.close()
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "one after another" in notices[0]
    assert loaded and all(len(models) == 1 for models in loaded)  # never both in memory
    indexes = [e.index for e in events if isinstance(e, ModelEvent)]
    assert indexes == sorted(indexes)  # the first model finished before the second began
    texts, finals = texts_and_finals(events, 2)
    assert "Paris" in texts[0] and texts[1]
    assert all(f[0].finish_reason in ("stop", "length") for f in finals)


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("L4P_MEMORY_BUDGET_GB", "0.25")
    assert MemoryGuard(Settings()).budget() == int(0.25 * GB)


def test_plan_uses_free_memory_and_what_loaded_models_would_give_back(three_models):
    registry = load_registry(three_models)
    specs = [registry.get("smollm2-135m"), registry.get("tiny-llama4")]
    total = sum(model_cost(spec, three_models) for spec in specs)
    guard = MemoryGuard(three_models, free_ram=lambda: total - 1, free_vram=lambda: None)
    assert guard.plan(specs).groups == [[0], [1]]
    assert guard.plan(specs, resident=1).groups == [[0, 1]]  # unloading frees enough
    unknown = MemoryGuard(three_models, free_ram=lambda: None, free_vram=lambda: None)
    assert unknown.plan(specs).groups == [[0], [1]] and "unknown" in unknown.plan(specs).reason


def test_an_endpoint_model_costs_no_local_memory(three_models):
    registry = load_registry(three_models)
    local = registry.get("smollm2-135m")
    served = replace(local, name="served", backend="openai", endpoint="http://127.0.0.1:9/v1")
    guard = MemoryGuard(
        three_models, free_ram=lambda: model_cost(local, three_models), free_vram=lambda: None
    )
    assert model_cost(served) == 0
    assert guard.plan([local, served]).groups == [[0, 1]]  # it answers beside the local model


def test_an_unreachable_server_is_refused_while_the_local_model_answers(three_models):
    from tests.conftest import free_port

    registry = load_registry(three_models)
    served = replace(
        registry.get("smollm2-135m"),
        name="served",
        label="served",
        backend="openai",
        endpoint=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        remote_model="m",
    )
    registry.add(served)
    manager = ModelManager(registry, three_models)
    try:
        events, _ = run_watching(manager, jobs_for(registry, ["smollm2-135m", "served"]))
    finally:
        manager.close()
    texts, finals = texts_and_finals(events, 2)
    assert "Paris" in texts[0] and isinstance(finals[0][0], Final)
    assert isinstance(finals[1][0], Refused) and finals[1][0].message


def test_a_missing_model_is_refused_and_the_others_still_answer(three_models, tmp_path):
    registry = load_registry(Settings(extra_models=three_models.extra_models, models_dir=tmp_path))
    manager = ModelManager(registry, three_models)
    try:
        events, _ = run_watching(manager, jobs_for(registry, ["scout-q2_k_xl", "tiny-llama4"]))
    finally:
        manager.close()
    _, finals = texts_and_finals(events, 2)
    assert isinstance(finals[0][0], Refused) and "file not found" in finals[0][0].message
    assert isinstance(finals[1][0], Final) and finals[1][0].finish_reason in ("stop", "length")


def test_an_image_for_a_text_only_model_is_refused_before_anything_loads(three_models, write_png):
    registry = load_registry(three_models)
    image = ImagePart(write_png("red.png").read_bytes(), "image/png")
    jobs = jobs_for(registry, ["tiny-llama4", "smollm2-135m"])
    jobs = [CompareJob(j.spec, [ChatMessage("user", (image, *j.messages[-1].parts))], j.params) for j in jobs]
    with pytest.raises(UserError, match="cannot see images"):
        check_jobs(jobs)
    here = [s for s in registry.specs.values() if s.available and not s.is_remote]  # no server answers here
    named = r"cannot see images; choose a model that sees images: tiny-llama4, tiny-llama4-2$"
    with pytest.raises(UserError, match=named):
        check_jobs(jobs, vision_hint(here))


def test_extra_model_paths_split_at_the_mmproj():
    assert parse_extra_model("a/m.gguf:b/p.gguf") == (Path("a/m.gguf"), Path("b/p.gguf"))
    assert parse_extra_model("C:/models/m.gguf")[1] is None
