"""Every command's flags, generated from the typed settings (engine/config.py) in this
one table: a flag names a Settings field, and its type, choices and repetition come
from that field. Every command takes the same model flags.

No defaults here: `settings_from` keeps only what was given, so `launch.py --data-dir X
ask` keeps X instead of having the subcommand's default reset it, and the rest comes
from L4P_* variables or the Settings defaults."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from engine.config import Settings


@dataclass(frozen=True)
class Flag:
    field: str  # the Settings field it sets
    names: tuple[str, ...]
    help: str
    metavar: str | None = None


MODEL_FLAGS = (
    Flag("model", ("--model",), "preset name (see `launch.py models`); with --endpoint, the served model"),
    Flag(
        "provider",
        ("--provider",),
        "a hosted Llama 4 provider (groq, together, ...) or one of its presets; the key comes from "
        "the variable `launch.py models` names",
    ),
    Flag("model_path", ("--model-path",), "a GGUF file of your own"),
    Flag("mmproj", ("--mmproj",), "vision projector GGUF for --model-path"),
    Flag("hf_path", ("--hf-path",), "a transformers checkpoint directory (runs on torch, GPUs if any)"),
    Flag("hf", ("--hf",), "a GGUF repo on Hugging Face, pulled if not on disk yet", "REPO[:QUANT]"),
    Flag("hf_dtype", ("--hf-dtype",), "weights dtype for --hf-path"),
    Flag(
        "endpoint",
        ("--endpoint",),
        "an OpenAI-compatible server (vLLM, llama-server), e.g. http://host:8000/v1",
    ),
    Flag("api_key_env", ("--api-key-env",), "environment variable holding the --endpoint API key"),
    Flag("max_images", ("--max-images",), "images per request the --endpoint accepts"),
    Flag(
        "endpoint_tiles",
        ("--endpoint-tiles",),
        "tile grids the --endpoint's Llama 4 takes: meta (vLLM, default) or llama.cpp (llama-server)",
    ),
    Flag(
        "extra_models",
        ("--extra-model",),
        "offer another GGUF in the model pickers (repeatable)",
        "GGUF[:MMPROJ]",
    ),
    Flag(
        "endpoint_concurrency",
        ("--endpoint-concurrency",),
        "requests an endpoint answers at once (default 16; the rest wait in its lane)",
    ),
    Flag("n_ctx", ("-c", "--ctx"), "context size in tokens"),
    Flag(
        "n_gpu_layers",
        ("-ngl", "--n-gpu-layers"),
        "layers on the GPU (-1 = all, auto = as many as the free VRAM holds)",
    ),
    Flag("n_threads", ("-t", "--threads"), "CPU threads"),
    Flag("n_batch", ("-b", "--batch-size"), "prompt tokens read per step; progress shows after each"),
    Flag("memory_budget_gb", ("--memory-budget-gb",), "memory models may take together (default: free RAM)"),
    Flag(
        "doc_workers",
        ("--doc-workers",),
        "processes that read and draw documents (default: up to 4 CPUs; 0 = in this process)",
    ),
    Flag("data_dir", ("--data-dir",), "where sessions, uploads and models live"),
    Flag("models_dir", ("--models-dir",), "where preset GGUF files are looked for"),
)
SERVER_FLAGS = (
    Flag("host", ("--host",), "interface to bind (default 127.0.0.1)"),
    Flag("port", ("--port",), "port (default 7860)"),
    Flag("auth", ("--auth",), "require this login (repeatable); needed off loopback", "USER:PASS"),
    Flag("auth_file", ("--auth-file",), "logins, one user:password per line (# comments)"),
    Flag(
        "admins",
        ("--admin",),
        "a login that may pull and delete models (repeatable; default: the first login)",
        "USER",
    ),
    Flag(
        "login_attempts",
        ("--login-attempts",),
        "failed logins per user (4x per address) before a pause (default 5)",
    ),
    Flag(
        "login_backoff_s",
        ("--login-backoff-s",),
        "the first pause after too many failed logins, doubling after each further one (default 30)",
    ),
    Flag(
        "api_keys",
        ("--api-key",),
        "a key for the API at /v1 (repeatable); USER:KEY with --auth",
        "[USER:]KEY",
    ),
    Flag("api_key_file", ("--api-key-file",), "API keys, one [USER:]KEY per line (# comments)"),
    Flag("share", ("--share",), "public gradio.live link (needs --auth)"),
    Flag(
        "allowed_hosts",
        ("--allowed-host",),
        "also answer to this Host name (repeatable; *.DOMAIN for a domain, * for any): the name "
        "a reverse proxy or a LAN address serves the page under; other names get 421",
        "NAME",
    ),
    Flag(
        "allowed_origins",
        ("--allowed-origin",),
        "let pages of this origin POST to the server (repeatable, e.g. https://tool.example); "
        "other foreign origins get 403",
        "ORIGIN",
    ),
    Flag("max_request_mb", ("--max-request-mb",), "refuse request bodies past this, uploads aside"),
    Flag("max_text_chars", ("--max-text-chars",), "refuse a message or system prompt longer than this"),
    Flag("max_field_chars", ("--max-field-chars",), "refuse a title, search, page range... longer"),
    Flag("max_request_chars", ("--max-request-chars",), "refuse an API request with more text in all"),
    Flag("max_request_images", ("--max-request-images",), "refuse an API request with more images"),
    Flag(
        "max_request_pixels",
        ("--max-request-pixels",),
        "refuse an API request whose images declare more pixels in all (read from their headers)",
    ),
    Flag(
        "global_leaderboard",
        ("--global-leaderboard",),
        "the compare leaderboard counts every login's votes (default: each user sees their own)",
    ),
)
DATA_FLAGS = tuple(flag for flag in MODEL_FLAGS if flag.field == "data_dir")


def add_flags(parser: argparse.ArgumentParser, flags: tuple[Flag, ...], title: str = "model") -> None:
    group = parser.add_argument_group(title, argument_default=argparse.SUPPRESS)
    for flag in flags:
        extra = {"metavar": flag.metavar} if flag.metavar else {}
        group.add_argument(*flag.names, dest=flag.field, help=flag.help, **extra, **_kind(flag))


def _kind(flag: Flag) -> dict:
    """argparse's type/action/choices for the field's annotation."""
    if flag.field == "n_gpu_layers":  # int | "auto"
        return {"type": _gpu_layers}
    kind = Settings.model_fields[flag.field].annotation
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None: the X
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        return {"action": "store_true"}
    if typing.get_origin(kind) is list:
        return {"action": "append", "type": typing.get_args(kind)[0]}
    if typing.get_origin(kind) is typing.Literal:
        return {"choices": typing.get_args(kind)}
    return {"type": kind if kind in (int, float, Path) else str}


def _gpu_layers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def settings_from(args: argparse.Namespace) -> Settings:
    flags = (*MODEL_FLAGS, *SERVER_FLAGS)
    given = {flag.field: value for flag in flags if (value := getattr(args, flag.field, None)) is not None}
    from pydantic import ValidationError

    from engine.types import EngineInputError

    try:
        return Settings(**given)
    except ValidationError as exc:  # a value out of range, from a flag or an L4P_* variable
        problem = exc.errors()[0]
        names = {flag.field: flag.names[-1] for flag in flags}
        field = str(problem["loc"][0]) if problem["loc"] else ""
        raise EngineInputError(f"{names.get(field, field)}: {problem['msg'].lower()}") from None
