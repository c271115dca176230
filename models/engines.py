"""A configured (not loaded) engine for a catalogue entry: the deployment settings
narrowed to what the engine takes, with "-ngl auto" resolved against this machine."""

from __future__ import annotations

from config import Settings
from engine import Engine, EngineOptions, ModelSpec, create_engine


def engine_options(spec: ModelSpec, settings: Settings) -> EngineOptions:
    n_gpu_layers = settings.n_gpu_layers
    if n_gpu_layers == "auto":
        from models.fit import gpu_layers_for

        n_gpu_layers = gpu_layers_for(spec, settings)
    return EngineOptions(
        n_gpu_layers=n_gpu_layers,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        kv_dir=settings.kv_dir,
        kv_cache_bytes=int(settings.kv_cache_gb * 1e9),
        image_cache_bytes=settings.image_cache_mb * 2**20,
        hf_dtype=settings.hf_dtype,
    )


def engine_for(spec: ModelSpec, settings: Settings) -> Engine:
    return create_engine(spec, engine_options(spec, settings))
