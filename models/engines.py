"""A configured (not loaded) engine for a catalogue entry: the deployment settings
narrowed to what the engine takes, with "-ngl auto" resolved against this machine."""

from __future__ import annotations

import functools
from pathlib import Path

from config import Settings
from engine import Engine, EngineOptions, ModelSpec, create_engine


def engine_options(spec: ModelSpec, settings: Settings) -> EngineOptions:
    placement = {"n_gpu_layers": settings.n_gpu_layers, "n_cpu_moe": settings.n_cpu_moe}
    placement["cpu_moe"] = settings.cpu_moe
    plan_line = ""
    if settings.n_gpu_layers == "auto":
        plan = None
        if settings.n_cpu_moe is None and not settings.cpu_moe:
            plan = expert_split(spec, settings.local_slots)
        if plan is not None:  # attention and shared weights on the GPU, experts as many as fit
            placement.update(n_gpu_layers=plan.n_gpu_layers, n_cpu_moe=plan.n_cpu_moe, cpu_moe=plan.cpu_moe)
            plan_line = plan.describe()
        else:
            from models.fit import gpu_layers_for

            placement["n_gpu_layers"] = gpu_layers_for(spec, settings)
    return EngineOptions(
        **placement,
        slots=settings.local_slots,
        log_dir=settings.data_dir / "logs",
        plan_line=plan_line,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        kv_dir=settings.kv_dir if settings.kv_cache_gb > 0 else None,
        kv_cache_bytes=int(settings.kv_cache_gb * 1e9),
        hf_dtype=settings.hf_dtype,
    )


def expert_split(spec: ModelSpec, slots: int):
    """The GPU/RAM split of a MoE GGUF on this machine's free memory (models/moe_plan.py);
    None without an NVIDIA GPU to ask, or for a model without experts."""
    from engine.machine import free_ram_bytes, free_vram_bytes

    vram = free_vram_bytes()
    return expert_plan(spec, slots, vram, free_ram_bytes() or 0) if vram else None


def expert_plan(spec: ModelSpec, slots: int, vram: int | None, ram: int):
    """The split of a MoE GGUF on a machine with this free VRAM (None or 0: no GPU) and
    RAM, its KV cache for `slots` full contexts included; None for a model that is not
    a GGUF on disk or has no experts."""
    from models.moe_plan import Machine, plan_moe, split_layers

    if spec.backend != "llama.cpp" or spec.model_path is None or not spec.model_path.is_file():
        return None
    try:
        tensors = _header_tensors(spec.model_path)
    except (OSError, ValueError, IndexError):  # a damaged file: its load says why, in one line
        return None
    if not split_layers(tensors).experts:
        return None
    context = (spec.kv_bytes_per_token or 0) * spec.n_ctx * slots
    return plan_moe(tensors, Machine(vram=vram, ram=ram), context)


def expert_plan_line(spec: ModelSpec, settings: Settings, vram: int | None, ram: int | None) -> str:
    """What `launch.py models` and the Models tab show for a MoE GGUF: "GPU 11.2 GB +
    RAM 35.0 GB, 14 of 48 expert layers on the GPU" ("" for any other model): the split
    llama-server gets (--n-gpu-layers, --n-cpu-moe), its KV cache for every slot counted."""
    plan = expert_plan(spec, settings.local_slots, vram, ram or 0)
    return "" if plan is None else plan.describe()


def _header_tensors(path) -> list[tuple[str, int]]:
    from engine.gguf import gguf_parts

    parts = gguf_parts(path)
    return list(_tensors_of(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts)))


@functools.lru_cache(maxsize=16)
def _tensors_of(versions: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, int], ...]:
    """Every part's (tensor, bytes), read once per file version (tables are redrawn often)."""
    from models.moe_plan import tensors_from_gguf

    return tuple(t for part, _, _ in versions for t in tensors_from_gguf(Path(part)))


def engine_for(spec: ModelSpec, settings: Settings) -> Engine:
    """The engine that serves this model (a GGUF: its llama-server child)."""
    return create_engine(spec, engine_options(spec, settings))


def scoring_engine_for(spec: ModelSpec, settings: Settings) -> Engine:
    """An engine that hands out logits (engine/protocol.py ScoresPrompts): a GGUF in
    this process, since llama-server gives sampled tokens and top-n probabilities
    only. For fidelity scoring, never for chats."""
    return create_engine(spec, engine_options(spec, settings), in_process=True)
