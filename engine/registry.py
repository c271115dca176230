"""Which models exist, where their files are, and what they cost in memory.

Presets come from assets/models.toml; a user model comes from --model-path. A
preset whose file is missing is listed with the exact path expected, never an error."""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.config import Settings
from engine.types import EngineInputError, SamplingParams

GB = 10**9
LLAMA_LICENCE_URL = "https://github.com/meta-llama/llama-models/blob/main/models/llama4/LICENSE"
VISION_HINT = "choose a vision model such as Llama 4 Scout GGUF with its mmproj"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    model_path: Path
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

    def sampling_params(self, **overrides) -> SamplingParams:
        """The model's preferred sampling, with the caller's non-None values on top."""
        chosen = {**self.sampling, **{k: v for k, v in overrides.items() if v is not None}}
        return SamplingParams(**chosen)

    @property
    def vision(self) -> bool:
        return self.mmproj_path is not None

    @property
    def is_llama(self) -> bool:
        return self.family == "llama4"

    @property
    def available(self) -> bool:
        return self.model_path.is_file() and (self.mmproj_path is None or self.mmproj_path.is_file())

    def missing_files(self) -> list[Path]:
        paths = [self.model_path, self.mmproj_path]
        return [p for p in paths if p is not None and not p.is_file()]

    def file_bytes(self) -> int | None:
        if self.model_path.is_file():
            mmproj = (
                self.mmproj_path.stat().st_size
                if self.vision and self.mmproj_path.is_file()
                else self.mmproj_bytes
            )
            return self.model_path.stat().st_size + mmproj
        if self.size_bytes is None:
            return None
        return self.size_bytes + self.mmproj_bytes

    def estimated_memory(self, n_ctx: int | None = None) -> int | None:
        """Weights + f16 KV cache for the context; compute buffers are left out."""
        weights = self.file_bytes()
        if weights is None:
            return None
        kv = self.kv_bytes_per_token or _gguf_kv_bytes_per_token(self.model_path) or 0
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
        """The model the settings ask for: --model-path beats --model beats the default."""
        # load_registry made a --model-path model the default, so it wins here.
        spec = self.get(self.default if settings.model_path else settings.model or self.default)
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
    specs = {
        name: _preset(name, entry, settings.resolved_models_dir)
        for name, entry in raw.get("models", {}).items()
    }
    default = raw.get("default", next(iter(specs)))
    if settings.model_path is not None:
        mine = user_model(settings.model_path, settings.mmproj)
        specs[mine.name], default = mine, mine.name
    return Registry(specs, default)


def _preset(name: str, entry: dict, models_dir: Path) -> ModelSpec:
    base = _package_dir(entry["package"]) if "package" in entry else models_dir
    mmproj = entry.get("mmproj")
    return ModelSpec(
        name=name,
        label=entry.get("label", name),
        model_path=base / entry["file"],
        mmproj_path=base / mmproj if mmproj else None,
        n_ctx=int(entry.get("n_ctx", 8192)),
        max_context=int(entry.get("max_context", entry.get("n_ctx", 8192))),
        size_bytes=int(entry["size_gb"] * GB) if "size_gb" in entry else None,
        mmproj_bytes=int(entry.get("mmproj_gb", 0) * GB),
        kv_bytes_per_token=entry.get("kv_bytes_per_token"),
        family=entry.get("family", ""),
        licence=entry.get("licence", ""),
        system_prompt=entry.get("system_prompt", ""),
        sampling=dict(entry.get("sampling", {})),
    )


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


def read_gguf_facts(path: Path) -> dict:
    """A few header facts of a GGUF file, read without loading weights."""
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


def _gguf_kv_bytes_per_token(path: Path) -> int | None:
    if not path.is_file():
        return None
    facts = read_gguf_facts(path)
    if not {"block_count", "kv_heads", "head_dim"} <= facts.keys():
        return None
    return 2 * facts["block_count"] * facts["kv_heads"] * facts["head_dim"] * 2
