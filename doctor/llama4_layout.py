"""Does the llama.cpp in use lay Llama 4 images out as Meta's processor does?

Found by doing it, not from a version string: a tiny Llama 4 (doctor/tiny_llama4.py)
is written to a temporary folder, and mtmd tokenizes `A<image>B` with an image of
two tiles. Meta's layout is

    A <|image_start|> (tile) <|tile_x_separator|> (tile) <|tile_y_separator|>
      <|image|> (overview) <|image_end|> B

The llama.cpp that llama-cpp-python 0.3.36 vendors lost the separators and
<|image|> (ggml-org/llama.cpp#21871); `make setup` builds it with our fix
(patches/llama-cpp-python/)."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

EXPECTED = (
    "A",
    "<|image_start|>",
    "[tile]",
    "<|tile_x_separator|>",
    "[tile]",
    "<|tile_y_separator|>",
    "<|image|>",
    "[tile]",
    "<|image_end|>",
    "B",
)
UPSTREAM_ISSUE = "https://github.com/ggml-org/llama.cpp/issues/21871"


@dataclass(frozen=True)
class LayoutReport:
    seen: tuple[str, ...]

    @property
    def correct(self) -> bool:
        return self.seen == EXPECTED

    @property
    def message(self) -> str:
        if self.correct:
            return "llama.cpp lays Llama 4 images out as Meta's processor does (tile separators, <|image|>)"
        return (
            "llama.cpp lays Llama 4 images out wrong (" + " ".join(self.seen) + "); "
            f"rebuild it with our patches: rm -rf .venv && make setup (see {UPSTREAM_ISSUE})"
        )


def check_llama4_layout() -> LayoutReport:
    """Tokenize a two-tile image through the llama.cpp that llama_cpp loads."""
    from doctor.tiny_llama4 import V_IMAGE_SIZE, write_tiny_llama4

    with tempfile.TemporaryDirectory(prefix="l4p-doctor-") as folder:
        model, mmproj = write_tiny_llama4(Path(folder))
        return LayoutReport(_tokenize_two_tiles(model, mmproj, _png(2 * V_IMAGE_SIZE, V_IMAGE_SIZE)))


def _tokenize_two_tiles(model: Path, mmproj: Path, image: bytes) -> tuple[str, ...]:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import MTMDChatHandler

    with _quiet():
        llm = Llama(model_path=str(model), n_ctx=256, n_threads=1, verbose=False)
        try:
            handler = MTMDChatHandler(clip_model_path=str(mmproj), verbose=False)
            handler._init_mtmd_context(llm)
            return _layout(llm, handler, image)
        finally:
            llm.close()


def _layout(llm, handler, image: bytes) -> tuple[str, ...]:
    mtmd = handler._mtmd_cpp
    bitmap = handler._create_bitmap_from_bytes(image)
    chunks = mtmd.mtmd_input_chunks_init()
    try:
        text = mtmd.mtmd_input_text()
        prompt = f"A{mtmd.mtmd_default_marker().decode()}B".encode()
        text.text, text.text_len, text.add_special, text.parse_special = prompt, len(prompt), False, True
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        if mtmd.mtmd_tokenize(handler.mtmd_ctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
            return ("mtmd could not tokenize the image",)
        seen: list[str] = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) != mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                seen.append("[tile]")
                continue
            count = ctypes.c_size_t()
            tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
            seen += [_piece(llm, tokens[t]) for t in range(count.value)]
        return tuple(seen)
    finally:
        mtmd.mtmd_input_chunks_free(chunks)
        mtmd.mtmd_bitmap_free(bitmap)


def _piece(llm, token: int) -> str:
    return llm.detokenize([token], special=True).decode("utf-8", "replace")


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(out, format="PNG")
    return out.getvalue()


@contextlib.contextmanager
def _quiet():
    """llama.cpp and mtmd write their load logs straight to file descriptor 2."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
