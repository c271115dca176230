"""Model backends behind one protocol: llama.cpp (GGUF), transformers (checkpoint
directories on torch) and OpenAI-compatible servers (vLLM, llama-server, hosted).
Never imports gradio; heavy libraries (llama_cpp, torch, transformers, openai) are
imported inside the backends, when a model loads."""

from engine.config import Settings
from engine.protocol import Engine
from engine.registry import ModelSpec, Registry, load_registry
from engine.types import (
    Capabilities,
    EngineInputError,
    EngineLoadError,
    Final,
    ImagePart,
    Message,
    PromptProgress,
    SamplingParams,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)


def create_engine(spec: ModelSpec, settings: Settings) -> Engine:
    """The backend for a model spec, configured but not loaded."""
    if spec.backend == "llama.cpp" and settings.local_engine == "server":
        from engine.llama_server import server_engine

        return server_engine(spec, settings)
    if spec.backend == "llama.cpp":
        from engine.llamacpp import LlamaCppEngine

        n_gpu_layers = settings.n_gpu_layers
        if n_gpu_layers == "auto":
            from engine.fit import gpu_layers_for

            n_gpu_layers = gpu_layers_for(spec, settings)
        return LlamaCppEngine(
            spec,
            n_gpu_layers=n_gpu_layers,
            n_threads=settings.n_threads,
            state_dir=settings.kv_dir,
            state_max_bytes=int(settings.kv_cache_gb * 1e9),
            image_cache_bytes=settings.image_cache_mb * 2**20,
            n_batch=settings.n_batch,
        )
    if spec.backend == "transformers":
        from engine.transformers_backend import TransformersEngine

        return TransformersEngine(spec, dtype=settings.hf_dtype, prefill_chunk=settings.n_batch)
    if spec.backend == "openai":
        from engine.openai_compat import OpenAIEngine

        return OpenAIEngine(spec)
    raise EngineLoadError(f"{spec.name}: unknown backend {spec.backend!r}")


__all__ = [
    "Capabilities",
    "Engine",
    "EngineInputError",
    "EngineLoadError",
    "Final",
    "ImagePart",
    "Message",
    "ModelSpec",
    "PromptProgress",
    "Registry",
    "SamplingParams",
    "Settings",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Usage",
    "create_engine",
    "load_registry",
]
