"""A configured (not loaded) engine for a catalogue entry: the deployment settings
narrowed to what the engine takes, with "-ngl auto" resolved against this machine."""

from __future__ import annotations

from config import Settings
from engine import Engine, EngineOptions, ModelSpec, create_engine


def engine_options(spec: ModelSpec, settings: Settings) -> EngineOptions:
    placement = {"n_gpu_layers": settings.n_gpu_layers, "n_cpu_moe": settings.n_cpu_moe}
    placement["cpu_moe"] = settings.cpu_moe
    plan_line = ""
    if settings.n_gpu_layers == "auto":
        plan = None
        if settings.local_engine == "server" and settings.n_cpu_moe is None and not settings.cpu_moe:
            plan = expert_split(spec, settings.local_slots)
        if plan is not None:  # attention and shared weights on the GPU, experts as many as fit
            placement.update(n_gpu_layers=plan.n_gpu_layers, n_cpu_moe=plan.n_cpu_moe, cpu_moe=plan.cpu_moe)
            plan_line = plan.describe()
        else:
            from models.fit import gpu_layers_for

            placement["n_gpu_layers"] = gpu_layers_for(spec, settings)
    return EngineOptions(
        **placement,
        local_engine=settings.local_engine,
        slots=settings.local_slots,
        log_dir=settings.data_dir / "logs",
        plan_line=plan_line,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        kv_dir=settings.kv_dir,
        kv_cache_bytes=int(settings.kv_cache_gb * 1e9),
        image_cache_bytes=settings.image_cache_mb * 2**20,
        hf_dtype=settings.hf_dtype,
    )


def expert_split(spec: ModelSpec, slots: int):
    """The GPU/RAM split of a MoE GGUF on this machine's free memory (models/moe_plan.py);
    None without an NVIDIA GPU to ask, or for a model without experts."""
    from engine.gguf import gguf_parts
    from engine.machine import free_ram_bytes, free_vram_bytes
    from models.moe_plan import Machine, plan_moe, split_layers, tensors_from_gguf

    vram = free_vram_bytes()
    if spec.backend != "llama.cpp" or not vram or spec.model_path is None or not spec.model_path.is_file():
        return None
    tensors = [t for part in gguf_parts(spec.model_path) for t in tensors_from_gguf(part)]
    if not split_layers(tensors).experts:
        return None
    context = (spec.kv_bytes_per_token or 0) * spec.n_ctx * slots
    return plan_moe(tensors, Machine(vram=vram, ram=free_ram_bytes() or 0), context)


def engine_for(spec: ModelSpec, settings: Settings) -> Engine:
    return create_engine(spec, engine_options(spec, settings))
