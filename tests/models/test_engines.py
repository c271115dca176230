"""The MoE placement line `launch.py models` and the Models tab show (models/engines.py):
on the synthetic Scout header of the planner's tests and on the tiny Llama 4 GGUF."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from models import engines
from models.catalogue import user_model
from models.engines import expert_plan, expert_plan_line
from models.moe_plan import GB
from tests.models.test_moe_plan import scout

SPLIT = re.compile(r"GPU (\d+\.\d) GB \+ RAM (\d+\.\d) GB, (\d+) of (\d+) expert layers on the GPU")


@pytest.fixture
def scout_on_disk(tiny_llama4, monkeypatch):
    """A GGUF on disk whose header reads as Scout Q4_K's (48 MoE layers, ~61 GB)."""
    monkeypatch.setattr(engines, "_header_tensors", lambda path: scout("Q4_K"))
    spec = user_model(*tiny_llama4)
    return replace(spec, n_ctx=8192, kv_bytes_per_token=48 * 2 * 8 * 128 * 2)


def test_a_24_gb_gpu_shows_the_split_the_server_engine_runs(scout_on_disk, settings):
    server = settings.model_copy(update={"local_slots": 1})
    line = expert_plan_line(scout_on_disk, server, 24 * GB, 64 * GB)
    match = SPLIT.fullmatch(line)
    assert match, line
    gpu, ram, on_gpu, layers = float(match[1]), float(match[2]), int(match[3]), int(match[4])
    assert layers == 48 and 0 < on_gpu < 48 and gpu <= 24 and ram > 30
    assert line == expert_plan(scout_on_disk, 1, 24 * GB, 64 * GB).describe()


def test_every_slot_s_context_takes_gpu_room_from_the_experts(scout_on_disk, settings):
    one = expert_plan(scout_on_disk, 1, 24 * GB, 64 * GB)
    eight = expert_plan(scout_on_disk, 8, 24 * GB, 64 * GB)
    assert eight.expert_layers_on_gpu < one.expert_layers_on_gpu


def test_a_cpu_only_machine_says_all_in_ram(scout_on_disk, settings):
    line = expert_plan_line(scout_on_disk, settings, None, 128 * GB)
    assert re.fullmatch(r"all in RAM: \d+\.\d GB, none on the GPU", line), line


def test_the_tiny_llama4_gguf_has_a_line_and_a_missing_file_none(tiny_llama4, settings):
    tiny = user_model(*tiny_llama4)
    line = expert_plan_line(tiny, settings, 8 * GB, 16 * GB)
    assert SPLIT.fullmatch(line) and line.endswith("2 of 2 expert layers on the GPU")
    missing = replace(tiny, model_path=tiny.model_path.with_name("absent.gguf"))
    assert expert_plan_line(missing, settings, 8 * GB, 16 * GB) == ""


def test_a_damaged_gguf_has_no_line_rather_than_an_error(tiny_llama4, settings, tmp_path):
    """The Models table (drawn as the playground starts) must not fail on a cut-short
    file: its load says what is wrong, in one line."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_llama4[0].read_bytes()[:-4096])
    spec = user_model(broken)
    assert expert_plan_line(spec, settings, 8 * GB, 16 * GB) == ""
