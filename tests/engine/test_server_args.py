"""llama-server's command line as the engine builds it from the settings (no child
started: tests/engine/test_llama_server.py runs the real one)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cli.flags import MODEL_FLAGS, add_flags, settings_from
from engine.llama_server import LlamaServerEngine, server_args
from engine.spec import ModelSpec
from models.engines import engine_for


def flag_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


SPEC = ModelSpec(
    name="m", label="M", model_path=Path("/models/m.gguf"), mmproj_path=Path("/models/p.gguf"), n_ctx=4096
)


def test_each_slot_gets_the_models_whole_context():
    args = server_args(SPEC, slots=6)
    assert flag_value(args, "--ctx-size") == str(4096 * 6) and flag_value(args, "--parallel") == "6"
    assert "--no-kv-unified" in args  # llama-server then splits -c evenly among the slots
    assert flag_value(args, "--mmproj") == "/models/p.gguf" and flag_value(args, "--alias") == "m"


def test_gpu_layers_and_expert_offload_flags():
    assert flag_value(server_args(SPEC, n_gpu_layers=-1), "--n-gpu-layers") == "all"
    chosen = server_args(SPEC, n_gpu_layers=20, n_cpu_moe=30)
    assert flag_value(chosen, "--n-cpu-moe") == "30" and flag_value(chosen, "--fit") == "off"
    assert "--cpu-moe" in server_args(SPEC, cpu_moe=True, n_cpu_moe=3)
    assert "--n-cpu-moe" not in server_args(SPEC, cpu_moe=True, n_cpu_moe=3)
    assert "--fit" not in server_args(SPEC, n_gpu_layers="auto")  # llama.cpp fits what we left open


def test_a_gguf_is_served_by_a_llama_server_child_with_the_flags_given(tmp_path):
    parser = argparse.ArgumentParser()
    add_flags(parser, MODEL_FLAGS)
    given = ["-np", "3", "--n-cpu-moe", "12", "-t", "2"]
    given += ["--data-dir", str(tmp_path)]
    settings = settings_from(parser.parse_args(given))
    assert (settings.local_slots, settings.n_cpu_moe) == (3, 12)
    engine = engine_for(SPEC, settings)
    assert isinstance(engine, LlamaServerEngine) and engine.slots == 3
    assert flag_value(engine.args, "--n-cpu-moe") == "12" and flag_value(engine.args, "--threads") == "2"
    assert engine.process.log_path.parent == tmp_path / "logs"


def test_a_slot_cache_is_reused_only_by_the_login_that_filled_it():
    from engine.slot_table import SlotTable

    table = SlotTable(3)
    ann, reuse, warm = table.take("ann", "chat-1")
    assert not reuse and not warm  # a fresh slot holds nothing of anyone's
    table.give_back(ann)
    bob, reuse, _ = table.take("bob", None)
    assert bob != ann and not reuse  # Bob gets another slot, not Ann's
    again, reuse, warm = table.take("ann", "chat-1")
    assert (again, reuse, warm) == (ann, True, True)  # Ann's follow-up comes back to her slot
    third, reuse, _ = table.take("carol", None)
    assert not reuse and third not in (ann, bob)
    # All busy (past the lanes' limit): the server picks, nothing is reused.
    assert table.take("dan", None, wait_s=0.05) == (-1, False, False)
    table.give_back(bob)
    assert table.take("dan", None) == (bob, False, False)  # Bob's slot, but not Bob's cache
    table.forget()
    table.give_back(ann)
    # A restarted server holds nothing: the chat's saved state is restored (not warm).
    assert table.take("ann", "chat-1") == (ann, False, False)


def test_a_turn_waits_for_its_chats_slot_being_saved_and_no_other_request_does():
    import threading

    from engine.slot_table import SlotTable

    table = SlotTable(2)
    ann, _, _ = table.take("ann", "chat-1")
    table.saving(ann)  # the answer is complete, its KV state is being written
    freed = threading.Timer(0.2, table.give_back, (ann,))
    freed.start()
    started = time.monotonic()
    assert table.take("ann", "chat-1") == (ann, True, True)  # warm: nothing to read again
    assert time.monotonic() - started >= 0.15
    freed.join()
    table.saving(ann)
    started = time.monotonic()
    other, _, _ = table.take("ann", "chat-2")  # her other chat (one API key, many chats): at once
    assert other != ann and time.monotonic() - started < 0.15
    table.give_back(other)
    bob, reuse, _ = table.take("bob", "chat-3")  # another login: at once, nothing of hers reused
    assert bob != ann and not reuse and time.monotonic() - started < 0.15
    threading.Timer(0.2, table.give_back, (ann,)).start()
    assert table.take("carol", None)[0] == ann  # all busy: waits for the save to end
