"""The memory guard counts what llama-server allocates: a full context of KV cache
for every slot (-np N); one context for other backends."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace

import pytest

from config import Settings
from engine.gguf import gguf_kv_bytes_per_token
from engine.server_process import server_binary
from models.catalogue import user_model
from models.engines import engine_for
from models.memory import COMPUTE_SHARE, MemoryGuard, kv_slots, model_cost

ONE_SLOT = Settings(local_slots=1)
SERVER_8 = Settings(local_slots=8)


def test_each_of_the_servers_slots_costs_a_full_context_of_kv(tiny_llama4):
    spec = user_model(*tiny_llama4)
    kv = gguf_kv_bytes_per_token(spec.model_path)
    assert kv > 0
    one, eight = model_cost(spec, ONE_SLOT), model_cost(spec, SERVER_8)
    assert eight - one == pytest.approx(7 * kv * spec.n_ctx * (1 + COMPUTE_SHARE), abs=2)
    assert model_cost(spec) == one  # without settings: one context, as before


def test_models_that_fit_together_with_one_slot_take_turns_with_eight_slots(tiny_llama4, tiny_llama4_seed1):
    specs = [user_model(*tiny_llama4), replace(user_model(*tiny_llama4_seed1), name="tiny-llama4-seed1")]
    room = sum(model_cost(spec, ONE_SLOT) for spec in specs)  # exactly both, one slot each

    def guard(settings: Settings) -> MemoryGuard:
        return MemoryGuard(settings, free_ram=lambda: room, free_vram=lambda: None)

    assert guard(ONE_SLOT).plan(specs).groups == [[0, 1]]
    server = guard(SERVER_8).plan(specs)
    assert server.groups == [[0], [1]] and "one after another" in server.reason


def test_an_endpoint_model_is_not_multiplied(tiny_llama4):
    served = replace(user_model(*tiny_llama4), backend="openai", endpoint="http://127.0.0.1:9/v1")
    assert kv_slots(served, SERVER_8) == 1 and model_cost(served, SERVER_8) == 0


@pytest.mark.skipif(server_binary() is None, reason="llama-server is not built (make setup)")
def test_the_guard_counts_the_positions_llama_server_allocates(tiny_llama4, tmp_path):
    settings = Settings(local_slots=3, data_dir=tmp_path, n_threads=1)
    spec = user_model(*tiny_llama4)
    engine = engine_for(spec, settings)
    engine.load()
    try:
        request = urllib.request.Request(
            f"{engine.process.url}/slots", headers={"Authorization": f"Bearer {engine.process.key}"}
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            held = json.load(reply)
    finally:
        engine.unload()
    assert sum(slot["n_ctx"] for slot in held) == kv_slots(spec, settings) * spec.n_ctx == 3 * spec.n_ctx
