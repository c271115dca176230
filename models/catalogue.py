"""The catalogue: which models exist and where their files or servers are.

Presets come from assets/models.toml; a user model comes from --model-path (GGUF),
--hf-path (a transformers checkpoint directory) or --endpoint (an OpenAI-compatible
server). A preset whose file is missing is listed with the exact path expected, and an
endpoint preset with its URL, never an error."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from dataclasses import replace
from pathlib import Path

from config import Settings
from engine.gguf import first_part, read_gguf_facts
from engine.spec import BACKENDS, GB, ModelSpec
from engine.types import EngineInputError
from errors import UserError

LLAMA_LICENCE_URL = "https://github.com/meta-llama/llama-models/blob/main/models/llama4/LICENSE"
# A Llama 4 tile is 144 embeddings; at 16 tiles + the global tile an image costs ~2.5K.
DEFAULT_ENDPOINT_CTX = 131072  # an ad-hoc --endpoint without -c: the server rejects past its own


class Registry:
    def __init__(self, specs: dict[str, ModelSpec], default: str, retired: dict | None = None):
        self.specs = specs
        self.default = default
        # Presets kept in models.toml as documentation only ({name: entry}): never offered.
        self.retired = retired or {}

    def get(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.specs)
            raise EngineInputError(f"unknown model {name!r}; known models: {known}") from None

    def resolve(self, settings: Settings) -> ModelSpec:
        """The model the settings ask for: --endpoint, --hf-path or --model-path beat
        --model, which beats the default."""
        # load_registry made an ad-hoc model the default, so it wins here.
        ad_hoc = settings.model_path or settings.hf_path or settings.endpoint
        chosen = None if ad_hoc else _chosen_name(self.specs, settings, self.retired)
        spec = self.get(chosen or self.default)
        return spec.at_context(settings.n_ctx)

    def add(self, spec: ModelSpec) -> None:
        self.specs[spec.name] = distinct_label(spec, self.specs)


def distinct_label(spec: ModelSpec, specs: dict[str, ModelSpec]) -> ModelSpec:
    """The spec with a label no other model has: two files with the same name inside
    (a copy, another quant's folder) would read alike in a picker, so the name follows."""
    taken = {other.label for name, other in specs.items() if name != spec.name}
    if spec.label not in taken:
        return spec
    return replace(spec, label=f"{spec.label} ({spec.name})")


def vision_hint(runnable: list[ModelSpec]) -> str:
    """What to do when a model cannot see the images given: name those of the models
    that can run now that see, or say how to get one."""
    ready = [s.name for s in runnable if s.vision]
    if not ready:
        return "no model here sees images yet: pull a Llama 4 with its mmproj in the Models tab"
    names = ", ".join(ready[:3]) + (f" or {len(ready) - 3} more" if len(ready) > 3 else "")
    return f"choose a model that sees images: {names}"


def load_registry(settings: Settings) -> Registry:
    try:
        raw = tomllib.loads(settings.registry_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EngineInputError(f"cannot read model registry {settings.registry_file}: {exc}") from None
    entries = raw.get("models", {})
    retired = {name: entry for name, entry in entries.items() if "retired" in entry}
    try:
        specs = {
            name: _preset(name, entry, settings.resolved_models_dir)
            for name, entry in entries.items()
            if name not in retired
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineInputError(f"bad entry in model registry {settings.registry_file}: {exc}") from None
    default = raw.get("default", next(iter(specs)))
    mine: list[ModelSpec] = []
    if settings.endpoint:
        mine = endpoint_models(
            settings.endpoint,
            _chosen_name(specs, settings, retired),
            specs,
            settings.api_key_env,
            settings.max_images,
            settings.endpoint_tiles,
        )
    elif settings.hf_path is not None:
        mine = [hf_model(settings.hf_path)]
    elif settings.model_path is not None:
        mine = [user_model(settings.model_path, settings.mmproj)]
    for spec in mine:
        specs[spec.name] = distinct_label(spec, specs)
    if settings.provider and not mine:
        _chosen_name(specs, settings, retired)  # a model it serves without a preset joins `specs`
    default = mine[0].name if mine else default
    for extra in settings.extra_models:
        spec = user_model(*parse_extra_model(extra))
        name = _unique_name(spec.name, specs)
        specs[name] = distinct_label(replace(spec, name=name), specs)
    return Registry(specs, default, retired)


def hosted_preset(specs: dict[str, ModelSpec], provider: str) -> ModelSpec:
    """What `--provider NAME` means: the hosted preset of that name, or the one preset
    of that provider (models/providers.py)."""
    from models.providers import choose

    return choose(specs, provider)


def _chosen_name(specs: dict[str, ModelSpec], settings: Settings, retired: dict) -> str | None:
    """The model the flags name; with --provider and a --model no preset names, the
    provider's own list is asked and what it serves joins `specs`."""
    if not settings.provider or (settings.model and settings.model in specs):
        return settings.model
    from models.providers import choose

    spec = choose(specs, settings.provider, settings.model, settings.endpoint, retired)
    specs.setdefault(spec.name, spec)
    return spec.name


def parse_extra_model(text: str) -> tuple[Path, Path | None]:
    """'model.gguf' or 'model.gguf:mmproj.gguf' (split at the last ':' before a
    .gguf name, so a Windows drive letter stays part of the path)."""
    head, sep, tail = text.rpartition(":")
    if sep and head and tail.lower().endswith(".gguf") and head.lower().endswith(".gguf"):
        return Path(head), Path(tail)
    return Path(text), None


def _unique_name(name: str, taken: dict) -> str:
    # Two files with the same stem (the same model at two seeds or paths) stay apart.
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate


def _preset(name: str, entry: dict, models_dir: Path) -> ModelSpec:
    backend = entry.get("backend", "llama.cpp")
    if backend not in BACKENDS:
        raise ValueError(f"{name}: unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    base = _package_dir(entry["package"]) if "package" in entry else models_dir
    mmproj = entry.get("mmproj")
    location = {
        "llama.cpp": lambda: first_part(base / entry["file"]),
        "transformers": lambda: base / entry["dir"],
        "openai": lambda: None,
    }[backend]()
    return ModelSpec(
        name=name,
        label=entry.get("label", name),
        model_path=location,
        mmproj_path=base / mmproj if mmproj else None,
        n_ctx=int(entry.get("n_ctx", 8192)),
        max_context=int(entry.get("max_context", entry.get("n_ctx", 8192))),
        size_bytes=int(entry["size_gb"] * GB) if "size_gb" in entry else None,
        mmproj_bytes=int(entry.get("mmproj_gb", 0) * GB),
        kv_bytes_per_token=entry.get("kv_bytes_per_token"),
        family=entry.get("family", ""),
        licence=entry.get("licence", ""),
        backend=backend,
        system_prompt=entry.get("system_prompt", ""),
        sampling=dict(entry.get("sampling", {})),
        has_vision=entry.get("vision"),
        endpoint=entry.get("endpoint", ""),
        remote_model=entry.get("remote_model", ""),
        api_key_env=entry.get("api_key_env", ""),
        max_images=entry.get("max_images"),
        max_concurrency=entry.get("max_concurrency"),
        tiles=_tiles(name, entry.get("tiles", "meta")),
        hf_repo=entry.get("hf_repo", ""),
        hf_file=entry.get("hf_file", ""),
        hf_mmproj=entry.get("hf_mmproj", ""),
        provider=entry.get("provider", ""),
        max_image_bytes=int(entry["max_image_mb"] * 10**6) if "max_image_mb" in entry else None,
        max_image_pixels=entry.get("max_image_pixels"),
        max_output_tokens=entry.get("max_output_tokens"),
    )


def _tiles(name: str, tiles: str) -> str:
    from engine.image_plan import BUDGETS

    if tiles not in BUDGETS:
        raise ValueError(f"{name}: tiles must be one of {', '.join(BUDGETS)}, got {tiles!r}")
    return tiles


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        # Not installed: point at where it would be so `models` can say what is missing.
        return Path(f"<python package {package} not installed>")
    return Path(spec.origin).parent


def user_model(model_path: Path, mmproj: Path | None = None) -> ModelSpec:
    model_path = Path(model_path).expanduser()
    if not model_path.is_file():
        raise EngineInputError(f"model file not found: {model_path}")
    if mmproj is not None and not Path(mmproj).expanduser().is_file():
        raise EngineInputError(f"mmproj file not found: {mmproj}")
    meta = read_gguf_facts(model_path)
    return ModelSpec(
        name=model_path.stem,
        label=meta.get("name") or model_path.stem,
        model_path=model_path,
        mmproj_path=Path(mmproj).expanduser() if mmproj else None,
        n_ctx=min(meta.get("context_length", 8192), 8192),
        max_context=meta.get("context_length", 8192),
        family="llama4" if meta.get("architecture") == "llama4" else meta.get("architecture", ""),
        licence="Llama 4 Community License" if meta.get("architecture") == "llama4" else "",
    )


def hf_model(path: Path) -> ModelSpec:
    """A transformers checkpoint directory (config.json + safetensors + processor files)."""
    path = Path(path).expanduser()
    config_file = path / "config.json"
    if not config_file.is_file():
        raise EngineInputError(f"not a transformers checkpoint (no config.json): {path}")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        raise EngineInputError(f"{config_file} is not readable JSON") from None
    text = config.get("text_config", config)
    context = int(text.get("max_position_embeddings", 8192))
    llama = config.get("model_type") == "llama4"
    return ModelSpec(
        name=path.name,
        label=f"{path.name} (transformers)",
        model_path=path,
        n_ctx=min(context, 8192),
        max_context=context,
        family="llama4" if llama else config.get("model_type", ""),
        licence="Llama 4 Community License" if llama else "",
        backend="transformers",
        has_vision="vision_config" in config,
    )


def endpoint_models(
    url: str,
    model: str | None,
    presets: dict[str, ModelSpec],
    api_key_env: str | None = None,
    max_images: int | None = None,
    tiles: str | None = None,
) -> list[ModelSpec]:
    """The models of an OpenAI-compatible server, the one to use first. Without
    `model`, every model its /v1/models lists; with one, the served model it names
    (its id, or its file's base name); a preset needs no asking."""
    _check_url(url)
    if model and any(s.is_remote and model in (s.name, s.remote_model) for s in presets.values()):
        return [endpoint_model(url, model, presets, api_key_env, max_images, tiles)]
    from models.discovery import find_served, served_models

    try:
        served = served_models(url.rstrip("/"), api_key_env)
    except UserError as exc:
        if model:  # the engine says what is wrong when it connects
            return [endpoint_model(url, model, presets, api_key_env, max_images, tiles)]
        raise EngineInputError(f"{exc}; without that list --endpoint needs --model NAME") from None
    if not model:
        if not served:
            raise EngineInputError(f"{url} serves no models")
        return [endpoint_model(url, m.short_name, {}, api_key_env, max_images, tiles, m) for m in served]
    found = find_served(served, model)
    if found is None and served:
        listed = ", ".join(m.short_name for m in served)
        raise EngineInputError(f"{url} does not serve {model!r}; it serves: {listed}")
    return [endpoint_model(url, model, presets, api_key_env, max_images, tiles, found)]


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise EngineInputError(f"--endpoint must be an http(s) URL, got {url!r}")


def endpoint_model(
    url: str,
    model: str | None,
    presets: dict[str, ModelSpec],
    api_key_env: str | None = None,
    max_images: int | None = None,
    tiles: str | None = None,
    served=None,  # models.discovery.ServedModel: the served id and context it reports
) -> ModelSpec:
    """A model on an OpenAI-compatible server. A preset named `model` (or serving
    `model`) lends its limits; otherwise the limits are what the server reports, or
    what the flags say."""
    _check_url(url)
    if not model:
        raise EngineInputError("--endpoint needs --model NAME: the model the server serves")
    url = url.rstrip("/")
    preset = next(
        (s for s in presets.values() if s.is_remote and model in (s.name, s.remote_model)),
        None,
    )
    if preset is None:
        llama = "llama-4" in model.lower() or "llama4" in model.lower()
        context = (served.max_model_len if served else None) or DEFAULT_ENDPOINT_CTX
        preset = ModelSpec(
            name=model,
            label=f"{model} at {url}",
            n_ctx=context,
            max_context=context,
            family="llama4" if llama else "",
            licence="Llama 4 Community License" if llama else "",
            backend="openai",
            remote_model=served.id if served else model,
            # Without --max-images a non-Llama-4 model is taken as text only: sending it
            # images could be silently ignored.
            has_vision=llama if max_images is None else max_images > 0,
        )
    return replace(
        preset,
        endpoint=url,
        api_key_env=api_key_env if api_key_env is not None else preset.api_key_env,
        max_images=max_images if max_images is not None else preset.max_images,
        tiles=tiles or preset.tiles,
    )
