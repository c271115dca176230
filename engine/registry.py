"""Which models exist, where their files are, and what they cost in memory.

Presets come from assets/models.toml; a user model comes from --model-path (GGUF),
--hf-path (a transformers checkpoint directory) or --endpoint (an OpenAI-compatible
server). A preset whose file is missing is listed with the exact path expected, and an
endpoint preset with its URL, never an error."""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.config import Settings
from engine.types import EngineInputError, SamplingParams

GB = 10**9
LLAMA_LICENCE_URL = "https://github.com/meta-llama/llama-models/blob/main/models/llama4/LICENSE"
VISION_HINT = "choose a vision model such as Llama 4 Scout GGUF with its mmproj"
BACKENDS = ("llama.cpp", "transformers", "openai")
# A Llama 4 tile is 144 embeddings; at 16 tiles + the global tile an image costs ~2.5K.
DEFAULT_ENDPOINT_CTX = 131072  # an ad-hoc --endpoint without -c: the server rejects past its own


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    # llama.cpp: the GGUF file; transformers: the checkpoint directory; openai: unused.
    model_path: Path | None = None
    mmproj_path: Path | None = None
    n_ctx: int = 8192
    max_context: int = 8192
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
    # Hosted providers (assets/models.toml): who serves it (`--provider NAME`), and what
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
            return _checkpoint_bytes(self.model_path) or self.size_bytes
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


class Registry:
    def __init__(self, specs: dict[str, ModelSpec], default: str):
        self.specs = specs
        self.default = default

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
        spec = self.get(self.default if ad_hoc else _chosen_name(self.specs, settings) or self.default)
        if settings.n_ctx:
            spec = replace(spec, n_ctx=settings.n_ctx)
        return spec

    def add(self, spec: ModelSpec) -> None:
        self.specs[spec.name] = spec


def load_registry(settings: Settings) -> Registry:
    try:
        raw = tomllib.loads(settings.registry_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EngineInputError(f"cannot read model registry {settings.registry_file}: {exc}") from None
    try:
        specs = {
            name: _preset(name, entry, settings.resolved_models_dir)
            for name, entry in raw.get("models", {}).items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineInputError(f"bad entry in model registry {settings.registry_file}: {exc}") from None
    default = raw.get("default", next(iter(specs)))
    mine: list[ModelSpec] = []
    if settings.endpoint:
        mine = endpoint_models(
            settings.endpoint,
            _chosen_name(specs, settings),
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
        specs[spec.name] = spec
    default = mine[0].name if mine else default
    for extra in settings.extra_models:
        spec = user_model(*parse_extra_model(extra))
        name = _unique_name(spec.name, specs)
        label = spec.label if name == spec.name else f"{spec.label} ({name})"
        specs[name] = replace(spec, name=name, label=label)
    return Registry(specs, default)


def hosted_preset(specs: dict[str, ModelSpec], provider: str) -> ModelSpec:
    """What `--provider NAME` means: the hosted preset of that name, or the one preset
    of that provider."""
    if provider in specs and specs[provider].provider:
        return specs[provider]
    matches = [spec for spec in specs.values() if spec.provider == provider]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(spec.name for spec in matches)
        raise EngineInputError(f"{provider} serves several presets ({names}); name one with --provider")
    known = ", ".join(sorted({spec.provider for spec in specs.values() if spec.provider}))
    raise EngineInputError(f"unknown provider {provider!r}; hosted providers: {known} (`launch.py models`)")


def _chosen_name(specs: dict[str, ModelSpec], settings: Settings) -> str | None:
    if settings.model or not settings.provider:
        return settings.model
    return hosted_preset(specs, settings.provider).name


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


SPLIT_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def split_name(path: Path, index: int, count: int) -> Path:
    """llama.cpp's name for part `index` of `count` of the GGUF `path` names."""
    return path.with_name(f"{path.name.removesuffix('.gguf')}-{index:05d}-of-{count:05d}.gguf")


def first_part(path: Path) -> Path:
    """`path`, or the first part of a split GGUF saved under its name
    (x.gguf -> x-00001-of-00003.gguf) when only that is on disk."""
    if path.is_file() or not path.parent.is_dir():
        return path
    parts = sorted(path.parent.glob(f"{glob.escape(path.stem)}-00001-of-[0-9][0-9][0-9][0-9][0-9].gguf"))
    return parts[0] if parts else path


def gguf_parts(path: Path) -> list[Path]:
    """Every part of the GGUF whose first part is `path` (just `path` when not split);
    llama.cpp finds the others from the first one's name."""
    match = SPLIT_PART.search(path.name)
    if not match or int(match[1]) != 1:
        return [path]
    stem = path.name[: match.start()]
    count = int(match[2])
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


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
    from engine.discovery import find_served, served_models

    try:
        served = served_models(url.rstrip("/"), api_key_env)
    except EngineInputError as exc:
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
    served=None,  # engine.discovery.ServedModel: the served id and context it reports
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


def read_gguf_facts(path: Path) -> dict:
    """A few header facts of a GGUF file, read without loading weights (once per file
    version: parsing a 200k-token vocabulary takes seconds)."""
    try:
        stat = Path(path).stat()
    except OSError:
        raise EngineInputError(f"{path} is not a readable GGUF file") from None
    return dict(_gguf_facts(str(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _gguf_facts(path: str, size: int, mtime_ns: int) -> dict:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path), "r")
    except Exception:
        raise EngineInputError(f"{path} is not a readable GGUF file") from None

    def value(key: str):
        field = reader.fields.get(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture") or ""
    facts = {"architecture": arch, "name": value("general.name")}
    for key in ("context_length", "block_count", "embedding_length"):
        if (v := value(f"{arch}.{key}")) is not None:
            facts[key] = int(v)
    heads, kv_heads = value(f"{arch}.attention.head_count"), value(f"{arch}.attention.head_count_kv")
    if heads and "embedding_length" in facts:
        facts["head_dim"] = facts["embedding_length"] // int(heads)
        facts["kv_heads"] = int(kv_heads or heads)
    return facts


def gguf_kv_bytes_per_token(path: Path) -> int | None:
    """f16 K and V bytes per token of context, from the GGUF header."""
    if not path.is_file():
        return None
    facts = read_gguf_facts(path)
    if not {"block_count", "kv_heads", "head_dim"} <= facts.keys():
        return None
    return 2 * facts["block_count"] * facts["kv_heads"] * facts["head_dim"] * 2


def _checkpoint_bytes(path: Path | None) -> int | None:
    if path is None or not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) or None
