"""GGUF files as llama.cpp sees them: split parts by name, and a few header facts read
without loading weights."""

from __future__ import annotations

import functools
import glob
import re
from pathlib import Path

from engine.types import EngineInputError

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


def read_gguf_facts(path: Path) -> dict:
    """A few header facts of a GGUF file, read without loading weights or decoding the
    vocabulary (once per file version)."""
    try:
        stat = Path(path).stat()
    except OSError:
        raise EngineInputError(f"{path} is not a readable GGUF file") from None
    return dict(_gguf_facts(str(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _gguf_facts(path: str, size: int, mtime_ns: int) -> dict:
    from engine.gguf_header import header_values

    values = header_values(Path(path), hashed=())  # walks the header; arrays skipped unread

    def value(key: str):
        return values.get(key)

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


def checkpoint_bytes(path: Path | None) -> int | None:
    if path is None or not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) or None
