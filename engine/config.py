"""What the engine needs to run a model, and nothing else: the deployment settings
(config/) are turned into these by models/engines.py, which also resolves "-ngl auto"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineOptions:
    n_gpu_layers: int = 0  # -1: every layer
    n_threads: int | None = None
    n_batch: int = 512  # prompt tokens evaluated per step (llama.cpp n_batch, transformers prefill chunk)
    kv_dir: Path | None = None  # saved KV state of chats; None: not saved
    kv_cache_bytes: int = 0  # least recently used saved state deleted past this
    image_cache_bytes: int = 0  # image embeddings kept in memory
    hf_dtype: str = "auto"
