"""What the engine needs to run a model, and nothing else: the deployment settings
(config/) are turned into these by models/engines.py, which also resolves "-ngl auto"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineOptions:
    n_gpu_layers: int | str = 0  # -1 or "all": every layer
    n_threads: int | None = None
    n_batch: int = 512  # prompt tokens evaluated per step (llama.cpp n_batch, transformers prefill chunk)
    kv_dir: Path | None = None  # saved KV state of chats; None: not saved
    kv_cache_bytes: int = 0  # least recently used saved state deleted past this
    hf_dtype: str = "auto"
    slots: int = 8  # requests one llama-server child serves at once
    n_cpu_moe: int | None = None  # the first N layers' MoE experts kept in RAM
    cpu_moe: bool = False  # every MoE expert kept in RAM
    log_dir: Path | None = None  # the child's log
    plan_line: str = ""  # how models/ split the model between GPU and RAM, when it chose
