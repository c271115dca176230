"""Llama 4 image tiling arithmetic, shared by the PIL image processor and by
backends that estimate what an image costs in tokens without a tokenizer.

An image is fitted, without distortion, onto the canvas of at most 16 square 336 px
tiles that needs the least scaling; more than one tile adds a global 336 px tile.
Each tile becomes (336/14)^2 patches, folded 2x2 by pixel shuffle: 144 embeddings."""

from __future__ import annotations

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


def _factors(n: int) -> set[int]:
    return {d for i in range(1, int(n**0.5) + 1) if n % i == 0 for d in (i, n // i)}
