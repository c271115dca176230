"""All runtime settings in one typed place. Environment variables (L4P_*) set the
defaults; launch.py's flags override them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"


def default_data_dir() -> Path:
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home()))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "llama4-playground"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="L4P_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 7860
    data_dir: Path = Field(default_factory=default_data_dir)
    models_dir: Path | None = None  # where preset GGUF files are looked for
    registry_file: Path = ASSETS_DIR / "models.toml"

    model: str | None = None  # preset name (with --endpoint: the served model); None = default
    model_path: Path | None = None
    mmproj: Path | None = None
    hf_path: Path | None = None  # a transformers checkpoint directory
    hf: str | None = None  # "OWNER/REPO[:QUANT]": a GGUF repo, pulled into models_dir if missing
    # "auto": bfloat16 on CUDA, float32 on CPU (where bf16 matmuls are slow or missing).
    hf_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    provider: str | None = None  # a hosted provider or its preset (assets/models.toml)
    endpoint: str | None = None  # an OpenAI-compatible server, e.g. http://gpu-box:8000/v1
    api_key_env: str | None = None  # the environment variable holding its API key
    max_images: int | None = None  # images per request the endpoint accepts
    # Tile grids the endpoint's Llama 4 takes: "meta" (vLLM) or "llama.cpp" (llama-server).
    endpoint_tiles: Literal["meta", "llama.cpp"] | None = None
    # Requests an OpenAI-compatible endpoint gets at once (a preset's max_concurrency wins);
    # the rest wait in that model's lane. Local models answer one at a time.
    endpoint_concurrency: int = Field(default=16, ge=1, le=1024)
    n_ctx: int | None = None  # None = the preset's deployment context
    n_gpu_layers: int | Literal["auto"] = 0  # "auto": as many layers as the free VRAM holds
    n_threads: int | None = None
    # Prompt tokens evaluated per step (llama.cpp's n_batch; transformers' prefill chunk):
    # the page shows how far the prompt is read after each step.
    n_batch: int = Field(default=512, ge=16)
    # Who may reach the page. Anything but loopback needs a login; see app/access.py.
    auth: list[str] = Field(default_factory=list)  # "user:password" entries
    auth_file: Path | None = None  # one "user:password" per line
    share: bool = False  # a public gradio.live link; needs auth too
    # Host names the server answers to besides loopback and --host ("*.example.com" for
    # a domain's names, "*" for any: a proxy in front checks Host); others get 421, which
    # is what stops DNS rebinding. A page served under one of them may also call the
    # server. Env L4P_ALLOWED_HOSTS takes a JSON list; see app/web_guard.py.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Pages of other origins ("https://tool.example:8443", or "*") that may make
    # state-changing requests (POST ...) to this server; every other foreign origin: 403.
    allowed_origins: list[str] = Field(default_factory=list)
    # Logins that may pull, cancel and delete models (app/roles.py); none named: the first
    # login. Env L4P_ADMINS takes a JSON list.
    admins: list[str] = Field(default_factory=list)
    # Failed logins (the page's form, wrong API keys) before a pause: a user name gets
    # `login_attempts`, an address 4x as many; the pause starts at `login_backoff_s` and
    # doubles with each further failure (api/login_throttle.py).
    login_attempts: int = Field(default=5, ge=1)
    login_backoff_s: float = Field(default=30.0, gt=0)
    # Keys for the OpenAI-compatible API at /v1: "KEY", or "USER:KEY" with logins (the
    # chats a key makes belong to USER); see api/keys.py. Env L4P_API_KEYS takes a JSON list.
    api_keys: list[str] = Field(default_factory=list)
    api_key_file: Path | None = None  # one key entry per line
    # The compare tab's leaderboard: each login's own votes, or everyone's together.
    global_leaderboard: bool = False

    # Extra local models for the model pickers: "PATH.gguf" or "PATH.gguf:MMPROJ.gguf";
    # env L4P_EXTRA_MODELS takes a JSON list.
    extra_models: list[str] = Field(default_factory=list)
    # Bytes models may take together, in GB; None = measure free RAM (+ VRAM with -ngl).
    memory_budget_gb: float | None = None

    # Upload and input limits: bad or oversized input is refused with one line.
    max_image_pixels: int = 40_000_000
    max_file_mb: int = 200
    max_text_chars: int = 1_000_000  # one message's text (~250k tokens); long text goes in a document
    # One-line fields (chat titles, searches, page ranges, passwords, model names, stop
    # strings); the system prompt counts as a message.
    max_field_chars: int = Field(default=1_000, ge=1)
    max_messages: int = Field(default=1_000, ge=1)  # messages in one /v1 request
    # One /v1 request all together, checked before any image is decoded or anything
    # stored (api/budget.py): text characters, images, and the pixels their headers declare.
    max_request_chars: int = Field(default=2_000_000, ge=1)
    max_request_images: int = Field(default=20, ge=1)
    max_request_pixels: int = Field(default=200_000_000, ge=1)
    # Request bodies, the API's and the page's (uploads aside: max_file_mb bounds them).
    max_request_mb: int = Field(default=64, ge=1)
    # Documents: pages beyond this are refused, not silently cut; pages go to vision
    # models as images rendered at this DPI, the longer side capped at 3 Llama 4 tiles
    # (llama.cpp tiles at most 3x3; a bigger render is only scaled down again).
    max_doc_pages: int = 2000
    page_dpi: int = 144
    page_max_side_px: int = 1008
    # Documents are read and drawn in worker processes (PyMuPDF is not thread-safe), so
    # one long ingest does not hold another user's page render. None = min(4, CPUs);
    # 0 = in this process, one document at a time. Each worker is capped in address
    # space and replaced after so many tasks, so none grows without bound.
    doc_workers: int | None = Field(default=None, ge=0)
    doc_worker_memory_mb: int = Field(default=4096, ge=256)
    doc_worker_tasks: int = Field(default=200, ge=1)
    # Saved KV state of chats (<data_dir>/kv), least recently used deleted past this; 0 = off.
    kv_cache_gb: float = Field(default=8.0, ge=0)
    # Image embeddings kept in memory so a regenerated or edited turn skips the encoder.
    image_cache_mb: int = Field(default=512, ge=0)

    @property
    def kv_dir(self) -> Path:
        return self.data_dir / "kv"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"
