"""What the engine is asked to run: a model's files or server, its context, what it
sees, and its sampling preferences. The catalogue (models/) makes these; the engine
only reads them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.gguf import checkpoint_bytes, gguf_kv_bytes_per_token, gguf_parts
from engine.types import SamplingParams

GB = 10**9
VISION_HINT = "choose a vision model such as Llama 4 Scout GGUF with its mmproj"
BACKENDS = ("llama.cpp", "transformers", "openai")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    # llama.cpp: the GGUF file; transformers: the checkpoint directory; openai: unused.
    model_path: Path | None = None
    mmproj_path: Path | None = None
    n_ctx: int = 8192  # the context this deployment loads (the preset's, or -c)
    max_context: int = 8192  # the model card's maximum
    size_bytes: int | None = None  # published size; the file's own size wins when present
    mmproj_bytes: int = 0
    kv_bytes_per_token: int | None = None
    family: str = ""
    licence: str = ""
    backend: str = "llama.cpp"
    system_prompt: str = ""  # used when the user gives none
    sampling: dict = field(default_factory=dict)  # SamplingParams fields this model prefers
    has_vision: bool | None = None  # set for transformers/openai models; GGUF: has an mmproj
    # OpenAI-compatible endpoints (backend "openai"):
    endpoint: str = ""  # base URL, e.g. http://gpu-box:8000/v1
    remote_model: str = ""  # the model name the server knows
    api_key_env: str = ""  # environment variable holding the API key ("" = none needed)
    max_images: int | None = None  # images per request the server accepts (None = no limit)
    # Requests the server answers at once (its lane's width, chat/lanes.py); None: the
    # --endpoint-concurrency setting. Local models always take one at a time.
    max_concurrency: int | None = None
    # Hosted providers (the catalogue, models/): who serves it (`--provider NAME`), and what
    # one request may carry beyond the context: all its images as base64 data URLs
    # together, in bytes, and each image as sent (on its planned canvas), in pixels.
    provider: str = ""
    max_image_bytes: int | None = None
    max_image_pixels: int | None = None
    max_output_tokens: int | None = None  # the longest answer it gives (None: context only)
    # The tile grids the server's Llama 4 image processor takes (engine/image_plan.py):
    # "meta" (vLLM, transformers: up to 16 tiles) or "llama.cpp" (llama-server: up to 3x3).
    tiles: str = "meta"
    # Where `launch.py pull NAME` gets the files (see hub/): the repo, and the paths in it.
    hf_repo: str = ""
    hf_file: str = ""  # the GGUF, or the first part of a split one
    hf_mmproj: str = ""

    def at_context(self, n_ctx: int | None) -> ModelSpec:
        """This model loaded at `n_ctx` tokens (None: as it is): the one place a
        deployment's context is chosen."""
        return replace(self, n_ctx=n_ctx) if n_ctx else self

    def sampling_params(self, **overrides) -> SamplingParams:
        """The model's preferred sampling, with the caller's non-None values on top."""
        chosen = {**self.sampling, **{k: v for k, v in overrides.items() if v is not None}}
        return SamplingParams(**chosen)

    @property
    def vision(self) -> bool:
        return self.has_vision if self.has_vision is not None else self.mmproj_path is not None

    @property
    def is_llama(self) -> bool:
        return self.family == "llama4"

    @property
    def is_remote(self) -> bool:
        return self.backend == "openai"

    @property
    def available(self) -> bool:
        return not self.missing()

    def missing_files(self) -> list[Path]:
        if self.backend == "transformers":
            config = self.model_path / "config.json"
            return [] if config.is_file() else [config]
        parts = gguf_parts(self.model_path) if self.model_path is not None else []
        return [p for p in [*parts, self.mmproj_path] if p is not None and not p.is_file()]

    def missing(self) -> list[str]:
        """What keeps this model from running here, each as one short phrase."""
        if not self.is_remote:
            return [str(p) for p in self.missing_files()]
        if not self.endpoint:
            return ["an endpoint URL (--endpoint)"]
        if self.api_key_env and not os.environ.get(self.api_key_env):
            return [f"an API key in ${self.api_key_env}"]
        return []

    @property
    def status(self) -> str:
        """One line for model lists: where the model is, or what it lacks."""
        if self.missing():
            return f"missing: {self.missing()[0]}"
        return f"served at {self.endpoint}" if self.is_remote else "on disk"

    def file_bytes(self) -> int | None:
        if self.is_remote:
            return None
        if self.backend == "transformers":
            return checkpoint_bytes(self.model_path) or self.size_bytes
        if self.model_path.is_file():
            mmproj = (
                self.mmproj_path.stat().st_size
                if self.vision and self.mmproj_path.is_file()
                else self.mmproj_bytes
            )
            return sum(part.stat().st_size for part in gguf_parts(self.model_path)) + mmproj
        if self.size_bytes is None:
            return None
        return self.size_bytes + self.mmproj_bytes

    def estimated_memory(self, n_ctx: int | None = None) -> int | None:
        """Weights + f16 KV cache for the context; compute buffers are left out."""
        if self.is_remote:
            return 0  # the server holds the weights
        weights = self.file_bytes()
        if weights is None:
            return None
        kv = self.kv_bytes_per_token
        if kv is None and self.backend == "llama.cpp":
            kv = gguf_kv_bytes_per_token(self.model_path)
        kv = kv or 0
        return weights + kv * (n_ctx or self.n_ctx)
