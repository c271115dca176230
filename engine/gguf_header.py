"""What two GGUF files must share to be compared token by token, read from their
headers in well under a second, before any weights load.

gguf-py's reader turns every vocabulary string into its own array (seconds for a
200k-token vocabulary); this walks the key/value section with struct and hashes the
raw bytes of the tokenizer's arrays instead: equal hashes, equal tokenizers."""

from __future__ import annotations

import functools
import hashlib
import mmap
import struct
from pathlib import Path

from engine.types import EngineInputError

# GGUF value types: fixed sizes by type number; 8 = string, 9 = array.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_FORMAT = dict(zip(_FIXED, ("<B", "<b", "<H", "<h", "<I", "<i", "<f", "<?", "<Q", "<q", "<d"), strict=True))
STRING, ARRAY = 8, 9
HASHED = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")
TOKENIZER_FACTS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id")
PROJECTOR_FACTS = (
    "clip.projector_type",
    "clip.vision.projector_type",
    "clip.vision.image_size",
    "clip.vision.patch_size",
    "clip.vision.projection_dim",
    "clip.vision.projector.scale_factor",
)


def header_values(path: Path, hashed: tuple[str, ...] = HASHED) -> dict:
    """Scalar and string values by key; arrays named in `hashed` as 'sha256:...' of
    their raw bytes (other arrays are skipped). One walk per file version: the app's
    header facts and the fidelity check share it."""
    try:
        stat = Path(path).stat()
        values = _cached(str(path), stat.st_size, stat.st_mtime_ns)
    except (OSError, ValueError, KeyError, struct.error, UnicodeDecodeError):
        raise EngineInputError(f"{path} is not a readable GGUF file") from None
    return {k: v for k, v in values.items() if k in hashed or k not in HASHED}


_HASH_MARK = "sha256:"


@functools.lru_cache(maxsize=64)
def _cached(path: str, size: int, mtime_ns: int) -> dict:
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _walk(data, HASHED)


def _walk(data, hashed) -> dict:
    if data[:4] != b"GGUF":
        raise ValueError("no GGUF magic")
    _version, _tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    offset, values = 24, {}
    for _ in range(n_kv):
        key, offset = _string(data, offset)
        (kind,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if kind == ARRAY:
            start = offset
            offset = _skip_array(data, offset)
            if key in hashed:
                values[key] = _HASH_MARK + hashlib.sha256(data[start:offset]).hexdigest()
        elif kind == STRING:
            values[key], offset = _string(data, offset)
        else:
            (values[key],) = struct.unpack_from(_FORMAT[kind], data, offset)
            offset += _FIXED[kind]
    return values


def _string(data, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    end = offset + 8 + length
    return bytes(data[offset + 8 : end]).decode("utf-8"), end


def _skip_array(data, offset: int) -> int:
    kind, count = struct.unpack_from("<IQ", data, offset)
    offset += 12
    if kind in _FIXED:
        return offset + _FIXED[kind] * count
    if kind != STRING:
        raise ValueError("nested arrays")
    unpack = struct.Struct("<Q").unpack_from
    for _ in range(count):
        offset += 8 + unpack(data, offset)[0]
    return offset


def tokenizer_identity(path: Path) -> dict:
    """The tokenizer's vocabulary, merges and token types (hashed) and its kind."""
    values = header_values(path)
    return {key: values.get(key) for key in (*HASHED, *TOKENIZER_FACTS)}


def projector_identity(path: Path) -> dict:
    """The facts that decide how a projector cuts and embeds an image: its type, tile
    and patch size, output width and pixel-shuffle factor."""
    values = header_values(path, hashed=())
    return {key: values[key] for key in PROJECTOR_FACTS if key in values}
