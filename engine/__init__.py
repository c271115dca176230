"""Model backends behind one protocol: llama.cpp (GGUF), transformers (checkpoint
directories on torch) and OpenAI-compatible servers (vLLM, llama-server, hosted).
Never imports gradio; heavy libraries (llama_cpp, torch, transformers, openai) are
imported inside the backends, when a model loads."""

from pathlib import Path

from engine.config import EngineOptions
from engine.protocol import Engine
from engine.spec import ModelSpec
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


def create_engine(spec: ModelSpec, options: EngineOptions, *, in_process: bool = False) -> Engine:
    """The backend for a model spec, configured but not loaded.

    A GGUF model is served by a llama-server child (parallel slots, MoE experts in RAM,
    a crash that harms no one): the one way the playground answers with it.
    `in_process` gives llama.cpp inside this process instead, one sequence at a time,
    for what needs its logits (fidelity scoring, parity checks); it never serves chats."""
    if spec.backend == "llama.cpp" and not in_process:
        from engine.llama_server import LlamaServerEngine

        return LlamaServerEngine(
            spec,
            log_dir=options.log_dir or Path("logs"),
            slots=options.slots,
            n_threads=options.n_threads,
            n_batch=options.n_batch,
            n_gpu_layers=options.n_gpu_layers,
            n_cpu_moe=options.n_cpu_moe,
            cpu_moe=options.cpu_moe,
            plan_line=options.plan_line,
            kv_dir=options.kv_dir,
            kv_cache_bytes=options.kv_cache_bytes,
        )
    if spec.backend == "llama.cpp":
        from engine.llamacpp import LlamaCppEngine

        return LlamaCppEngine(
            spec,
            n_gpu_layers=options.n_gpu_layers,
            n_threads=options.n_threads,
            n_batch=options.n_batch,
        )
    if spec.backend == "transformers":
        from engine.transformers_backend import TransformersEngine

        return TransformersEngine(spec, dtype=options.hf_dtype, prefill_chunk=options.n_batch)
    if spec.backend == "openai":
        from engine.openai_compat import OpenAIEngine

        return OpenAIEngine(spec)
    raise EngineLoadError(f"{spec.name}: unknown backend {spec.backend!r}")


__all__ = [
    "Capabilities",
    "Engine",
    "EngineInputError",
    "EngineLoadError",
    "EngineOptions",
    "Final",
    "ImagePart",
    "Message",
    "ModelSpec",
    "PromptProgress",
    "SamplingParams",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Usage",
    "create_engine",
]
