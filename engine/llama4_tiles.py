"""Llama 4 image tiling arithmetic, shared by the PIL image processor and by
backends that estimate what an image costs in tokens without a tokenizer.

An image is fitted, without distortion, onto the canvas of at most 16 square 336 px
tiles that needs the least scaling; more than one tile adds a global 336 px tile.
Each tile becomes (336/14)^2 patches, folded 2x2 by pixel shuffle: 144 embeddings."""

from __future__ import annotations

import struct
from functools import lru_cache

TILE = 336
MAX_TILES = 16
TOKENS_PER_TILE = (TILE // 14) ** 2 // 4
# <|image_start|>, <|image|> and <|image_end|>, plus a separator after each tile of a grid
IMAGE_FRAME_TOKENS = 3


def tile_grid(width: int, height: int, max_tiles: int = MAX_TILES, tile: int = TILE) -> tuple[int, int]:
    """(rows, cols) of tiles an image of this size is cut into."""
    canvas = best_canvas((height, width), supported_canvases(max_tiles, tile))
    return canvas[0] // tile, canvas[1] // tile


def image_tokens(width: int, height: int) -> int:
    """Prompt tokens one image costs a Llama 4 model (as its processor expands it)."""
    rows, cols = tile_grid(width, height)
    tiles = rows * cols + (1 if rows * cols > 1 else 0)
    separators = rows * cols if rows * cols > 1 else 0
    return tiles * TOKENS_PER_TILE + separators + IMAGE_FRAME_TOKENS


@lru_cache(maxsize=4)
def supported_canvases(max_tiles: int, tile: int) -> tuple[tuple[int, int], ...]:
    """(height, width) of every tile grid with at most max_tiles tiles, grouped by aspect
    ratio in the order transformers uses (the order decides ties)."""
    by_ratio: dict[float, list[tuple[int, int]]] = {}
    for count in range(max_tiles, 0, -1):
        for rows in sorted(_factors(count)):
            by_ratio.setdefault(rows / (count // rows), []).append((rows, count // rows))
    return tuple((r * tile, c * tile) for grids in by_ratio.values() for r, c in grids)


def best_canvas(
    size: tuple[int, int], canvases: tuple[tuple[int, int], ...], to_max: bool = False
) -> tuple[int, int]:
    """The canvas needing the least upscaling (or, if none fits, the least downscaling);
    among equals the smallest, so padding is minimal."""
    height, width = size
    scales = [min(h / height, w / width) for h, w in canvases]
    up = [s for s in scales if s >= 1]
    chosen = (max(up) if to_max else min(up)) if up else max(scales)
    candidates = [c for c, s in zip(canvases, scales, strict=True) if s == chosen]
    return min(candidates, key=lambda c: c[0] * c[1])


# llama.cpp's mtmd tiles differently from Meta's processor: at most a 3x3 grid, and no
# separators. What a page image sent through llama.cpp costs:
LLAMA4_TILE_PX = TILE
LLAMA4_TOKENS_PER_TILE = TOKENS_PER_TILE  # 24x24 patches of 14 px, pixel-shuffled -> 12x12
LLAMA4_MAX_TILES_PER_SIDE = 3  # llama.cpp's grid candidates: 1x2 ... 3x3


def llama4_image_tokens(
    width: int,
    height: int,
    *,
    tile_px: int = LLAMA4_TILE_PX,
    tokens_per_tile: int = LLAMA4_TOKENS_PER_TILE,
    max_tiles_per_side: int = LLAMA4_MAX_TILES_PER_SIDE,
) -> int:
    """Prompt tokens one image costs Llama 4 in llama.cpp's mtmd (Scout: 336 px tiles of
    144 tokens). An image that fits one tile is that tile; a bigger one is resized to the
    best-fitting grid of up to 3x3 tiles, plus one overview tile of the whole image.
    <|image_start|> and <|image_end|> wrap it: tokens = tiles * 144 + 2.
    (Meta's reference processor allows up to 16 tiles; llama.cpp stops at 3x3.)"""
    if width <= 0 or height <= 0:
        return 0
    if width <= tile_px and height <= tile_px:
        return tokens_per_tile + 2
    cols, rows = _best_grid(width, height, tile_px, max_tiles_per_side)
    return (cols * rows + 1) * tokens_per_tile + 2


def _best_grid(width: int, height: int, tile_px: int, max_side: int) -> tuple[int, int]:
    """llava-uhd's select_best_resolution: the grid that keeps the most of the image's
    pixels after fitting it in, then the one that wastes the least canvas."""
    best, best_kept, best_waste = (1, 1), -1, 0
    for cols in range(1, max_side + 1):
        for rows in range(1, max_side + 1):
            if cols == rows == 1:
                continue
            canvas_w, canvas_h = cols * tile_px, rows * tile_px
            scale = _f32(min(_f32(canvas_w / width), _f32(canvas_h / height)))
            kept = min(int(_f32(width * scale)) * int(_f32(height * scale)), width * height)
            waste = canvas_w * canvas_h - kept
            if kept > best_kept or (kept == best_kept and waste < best_waste):
                best, best_kept, best_waste = (cols, rows), kept, waste
    return best


def _f32(x: float) -> float:
    """Round to float32, as the C++ computes, so ties break the same way."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _factors(n: int) -> set[int]:
    return {d for i in range(1, int(n**0.5) + 1) if n % i == 0 for d in (i, n // i)}
