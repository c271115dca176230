"""Llama 4's image plan: each image's tile grid is decided once, here, Meta's way, and
the image is resized onto exactly that canvas before any backend sees it.

Meta's processor fits an image, without distortion, onto the canvas of square tiles
that needs the least upscaling (or, when none is big enough, the least downscaling),
pads it right and bottom, cuts the canvas into tiles row by row and, when there is
more than one tile, adds an overview: the whole image squashed into one tile. Each
tile becomes (tile/patch)^2 patches, folded 2x2 by pixel shuffle (Scout: 144).

Backends differ in the grids they can take: Meta's processor (transformers, vLLM)
any grid of up to 16 tiles; llama.cpp only the 3x3 family, and it picks among them by
its own rule (llava-uhd's). Handing every backend the image already on its planned
canvas makes them all cut the same tiles from the same pixels: a canvas-sized image
is its own best fit under both rules. The overview is then made from the canvas
(padding included), by every backend alike.

The prompt layout for one image (Meta's `_prompt_split_image`):

    <|image_start|> (tile) <|tile_x_separator|> (tile) <|tile_y_separator|>   one row
                    ...                                <|tile_y_separator|>   each row
                    <|image|> (overview) <|image_end|>

and a one-tile image is `<|image_start|> <|image|> (tile) <|image_end|>`."""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from engine.types import ImagePart, Message

TILE = 336
MAX_TILES = 16
PATCH = 14
PIXEL_SHUFFLE = 2  # 2x2 patches fold into one embedding (pixel_shuffle_ratio 0.5)


@dataclass(frozen=True)
class TileBudget:
    """The tiles a backend can take: their size, and which grids."""

    tile: int = TILE
    max_tiles: int = MAX_TILES
    max_side: int = MAX_TILES  # most tiles along one side (llama.cpp: 3)
    patch: int = PATCH
    merge: int = PIXEL_SHUFFLE

    @property
    def tokens_per_tile(self) -> int:
        return (self.tile // self.patch // self.merge) ** 2

    def canvases(self) -> tuple[tuple[int, int], ...]:
        """(height, width) of every grid this backend takes, in Meta's order."""
        return tuple(
            (h, w)
            for h, w in supported_canvases(self.max_tiles, self.tile)
            if h // self.tile <= self.max_side and w // self.tile <= self.max_side
        )


META = TileBudget()  # Meta's processor: transformers, vLLM
LLAMA_CPP = TileBudget(max_tiles=9, max_side=3)  # clip.cpp: set_llava_uhd_res_candidates(model, 3)
BUDGETS = {"meta": META, "llama.cpp": LLAMA_CPP}


@dataclass(frozen=True)
class ImagePlan:
    rows: int
    cols: int
    fitted: tuple[int, int]  # (height, width) of the image inside the canvas
    budget: TileBudget

    @property
    def canvas(self) -> tuple[int, int]:
        return self.rows * self.budget.tile, self.cols * self.budget.tile

    @property
    def grid(self) -> int:
        return self.rows * self.cols

    @property
    def tiles(self) -> int:
        """Tiles the vision encoder runs on: the grid, plus the overview when tiled."""
        return self.grid + 1 if self.grid > 1 else 1

    @property
    def tokens(self) -> int:
        """Prompt positions this image takes: its embeddings, the separators between
        and after tiles, <|image_start|>, <|image|> and <|image_end|>."""
        separators = self.grid if self.grid > 1 else 0
        return self.tiles * self.budget.tokens_per_tile + separators + 3


def plan_image(width: int, height: int, budget: TileBudget = META) -> ImagePlan:
    canvas = best_canvas((height, width), budget.canvases())
    fitted = fit_size((height, width), no_upscale(canvas, (height, width), budget.tile))
    return ImagePlan(canvas[0] // budget.tile, canvas[1] // budget.tile, fitted, budget)


def image_tokens(width: int, height: int, budget: TileBudget = META) -> int:
    """Prompt positions an image of this size costs a Llama 4 model (0 for no image)."""
    if width <= 0 or height <= 0:
        return 0
    return plan_image(width, height, budget).tokens


def tile_grid(width: int, height: int, budget: TileBudget = META) -> tuple[int, int]:
    """(rows, cols) of tiles an image of this size is cut into."""
    plan = plan_image(width, height, budget)
    return plan.rows, plan.cols


@lru_cache(maxsize=8)
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


def no_upscale(canvas: tuple[int, int], size: tuple[int, int], tile: int) -> tuple[int, int]:
    """Meta upscales only images smaller than one tile, and then only to the tile size."""
    return min(max(size[0], tile), canvas[0]), min(max(size[1], tile), canvas[1])


def fit_size(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """Largest (height, width) inside target with the image's aspect ratio."""
    height, width = size
    scale_h, scale_w = target[0] / height, target[1] / width
    if scale_w < scale_h:
        new_h, new_w = min(int(height * scale_w), target[0]), target[1]
    else:
        new_h, new_w = target[0], min(int(width * scale_h), target[1])
    return max(new_h, 1), max(new_w, 1)


def _factors(n: int) -> set[int]:
    return {d for i in range(1, int(n**0.5) + 1) if n % i == 0 for d in (i, n // i)}


# -- canvases ----------------------------------------------------------------------


class CanvasCache:
    """Planned canvases by source image and budget, least recently used out first: a
    chat re-sends its images every turn, and KV reuse needs the same bytes each time."""

    def __init__(self, max_bytes: int = 128 * 2**20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, TileBudget], ImagePart] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def canvas(self, image: ImagePart, budget: TileBudget) -> ImagePart:
        key = (hashlib.sha256(image.data).hexdigest(), budget)
        with self._lock:
            if (hit := self._items.get(key)) is not None:
                self._items.move_to_end(key)
                return hit
        made = render_canvas(image, budget)
        with self._lock:
            if key not in self._items:
                self._items[key] = made
                self._bytes += len(made.data)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)
        return made


CANVASES = CanvasCache()


def render_canvas(image: ImagePart, budget: TileBudget) -> ImagePart:
    """The image resized (bilinear, as Meta's processor) and padded with black onto
    its planned canvas, as a PNG. EXIF orientation is applied first, as transformers'
    image loader does, so the model sees the picture the way the user does."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(image.data)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    plan = plan_image(picture.width, picture.height, budget)
    fitted_h, fitted_w = plan.fitted
    if picture.size != (fitted_w, fitted_h):
        picture = picture.resize((fitted_w, fitted_h), Image.Resampling.BILINEAR)
    canvas_h, canvas_w = plan.canvas
    canvas = Image.new("RGB", (canvas_w, canvas_h))
    canvas.paste(picture, (0, 0))
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1)
    return replace(image, data=out.getvalue(), mime="image/png", width=canvas_w, height=canvas_h)


def plan_messages(messages: Sequence[Message], budget: TileBudget | None) -> list[Message]:
    """The messages with every image on its planned canvas (unchanged without a budget:
    the model is not a Llama 4)."""
    if budget is None or not any(m.images for m in messages):
        return list(messages)
    return [
        replace(m, parts=tuple(_on_canvas(p, budget) for p in m.parts)) if m.images else m for m in messages
    ]


def _on_canvas(part, budget: TileBudget):
    return CANVASES.canvas(part, budget) if isinstance(part, ImagePart) else part
