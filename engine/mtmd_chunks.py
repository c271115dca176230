"""mtmd's chunks (text tokens, image embeddings) as the llama.cpp backend uses them:
what each chunk is, the ledger a chunk list fills, and image evaluation that encodes
each image chunk at most once (embeddings are kept in an LRU by image hash)."""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence

import numpy as np

from engine.prefix import EmbeddingCache, Ledger
from engine.types import ImagePart


def chunk_kind(mtmd, chunk) -> str:
    return "text" if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT else "image"


def chunk_entry(mtmd, chunk) -> tuple[str, int, int]:
    """("text", n_tokens, -1) or ("image", n_tokens, index of the image in the prompt)."""
    kind = chunk_kind(mtmd, chunk)
    index = int(mtmd.mtmd_input_chunk_get_id(chunk) or -1) if kind == "image" else -1
    return kind, mtmd.mtmd_input_chunk_get_n_tokens(chunk), index


def chunk_text_tokens(mtmd, chunk) -> list[int]:
    count = ctypes.c_size_t()
    pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
    return [pointer[i] for i in range(count.value)]


def chunk_keys(mtmd, chunks: Sequence, images: Sequence[ImagePart], projector_id: str) -> list[str]:
    """A key per chunk: "" for text, else image sha256 + projector + tile number. A
    tiled image (Llama 4: a chunk per tile group) gives its chunks tile numbers 0, 1, ..."""
    hashes = [hashlib.sha256(image.data).hexdigest() for image in images]
    tiles: dict[int, int] = {}
    keys = []
    for chunk in chunks:
        kind, _, index = chunk_entry(mtmd, chunk)
        if kind == "text":
            keys.append("")
            continue
        tile = tiles.get(index, 0)
        tiles[index] = tile + 1
        keys.append(f"{hashes[index]}:{projector_id}:{tile}")
    return keys


def chunks_ledger(mtmd, chunks: Sequence, keys: Sequence[str]) -> tuple[Ledger, list[int]]:
    """What the KV cache holds once these chunks are evaluated from position 0, and
    the position each chunk starts at."""
    ledger, starts = Ledger(), []
    for chunk, key in zip(chunks, keys, strict=True):
        starts.append(len(ledger))
        if key:
            ledger.add_image(mtmd.mtmd_input_chunk_get_n_pos(chunk), key)
        else:
            ledger.add_text(chunk_text_tokens(mtmd, chunk))
    return ledger, starts


def scoped_key(scope: str, key: str) -> str:
    """An embedding cache key that only requests of `scope` share."""
    return f"{hashlib.sha256(scope.encode()).hexdigest()[:16]}:{key}" if scope else key


class ImageEvaluator:
    """Puts image chunks into the KV cache, running the vision encoder only for chunks
    whose embeddings are not cached. `encodes` counts encoder runs (for tests and
    benchmarks: a follow-up turn about the same images must not add any)."""

    def __init__(self, handler, cache_bytes: int):
        self._handler = handler  # MTMDChatHandler: owns the mtmd context
        self.cache = EmbeddingCache(cache_bytes)
        self.encodes = 0

    @property
    def _mtmd(self):
        return self._handler._mtmd_cpp

    def embeddings(self, llm, chunk, key: str) -> np.ndarray:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        mtmd = self._mtmd
        status = mtmd.mtmd_encode_chunk(self._handler.mtmd_ctx, chunk)
        if status != 0:
            raise RuntimeError(f"image encoding failed (mtmd error {status})")
        self.encodes += 1
        import llama_cpp

        size = mtmd.mtmd_input_chunk_get_n_tokens(chunk) * llama_cpp.llama_model_n_embd_inp(llm.model)
        output = mtmd.mtmd_get_output_embd(self._handler.mtmd_ctx)
        embedding = np.ctypeslib.as_array(output, shape=(size,)).copy()  # the next encode overwrites it
        self.cache.put(key, embedding)
        return embedding

    def decode(self, llm, chunk, key: str, scope: str = "") -> int:
        """Decodes the chunk's embeddings at llm.n_tokens; returns the new position.
        Embeddings are cached per `scope`: an encoder run skipped (a faster answer)
        would tell one user that another sent the same image."""
        import llama_cpp

        embedding = self.embeddings(llm, chunk, scoped_key(scope, key))
        n_past = llm.n_tokens
        new_n_past = llama_cpp.llama_pos(0)
        status = self._mtmd.mtmd_helper_decode_image_chunk(
            self._handler.mtmd_ctx,
            llm._ctx.ctx,
            chunk,
            embedding.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            llama_cpp.llama_pos(n_past),
            llama_cpp.llama_seq_id(0),
            llm.n_batch,
            ctypes.byref(new_n_past),
            self._mtmd.mtmd_helper_post_decode_callback(),
            None,
        )
        if status != 0:
            raise RuntimeError(f"image evaluation failed (mtmd error {status})")
        return new_n_past.value
